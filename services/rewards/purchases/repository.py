"""All SQL of purchases and returns. Every query that reads a brand's data filters by brand."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Table, bindparam, literal, select, true, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.db import table_of
from services.kernel.driver_statements import DriverStatement
from services.rewards.ledger.repository import (
    PROGRAM_XID,
    Balances,
    ProgramVersion,
)
from services.rewards.models import Account, Bucket, LedgerEntry, Program, Purchase, Return

# The ledger lines of purchases and returns name them by the brand's own ids.
SOURCE_PURCHASE = "purchase"  # source_id: the order id
SOURCE_RETURN = "return"  # source_id: the return id


@dataclass(frozen=True, slots=True)
class LockedAccount:
    member_id: uuid.UUID
    member_status: str
    tier_id: uuid.UUID | None
    balances: Balances  # as of the lock: nothing else moves them until the commit


def _lock_statement(by_external_id: bool) -> Select[tuple[object, ...]]:
    """One round trip: the account locked (FOR UPDATE), and the program's version (see
    `ProgramVersion`) to check the process's copy of the reference data against. One row
    always, with NULLs for a missing program or account."""
    programs = table_of(Program)
    accounts = table_of(Account)
    brand_id = bindparam("brand_id", type_=accounts.c.brand_id.type)
    program = (
        select(PROGRAM_XID.label("xid"), programs.c.updated_at)
        .where(programs.c.brand_id == brand_id)
        .subquery("program")
    )
    key = (
        accounts.c.external_id == bindparam("external_id", type_=accounts.c.external_id.type)
        if by_external_id
        else accounts.c.member_id == bindparam("member_id", type_=accounts.c.member_id.type)
    )
    account = (
        select(
            accounts.c.member_id,
            accounts.c.member_status,
            accounts.c.tier_id,
            accounts.c.available,
            accounts.c.pending,
        )
        .where(accounts.c.brand_id == brand_id, key)
        .with_for_update()
        .subquery("account")
    )
    one = select(literal(1).label("one")).subquery("one")
    return select(
        program.c.xid,
        program.c.updated_at,
        account.c.member_id,
        account.c.member_status,
        account.c.tier_id,
        account.c.available,
        account.c.pending,
    ).select_from(one.outerjoin(program, true()).outerjoin(account, true()))


# Built once (bind parameters, not literal values) and run by the driver: every purchase runs
# them.
_LOCK = {
    False: DriverStatement(_lock_statement(False)),
    True: DriverStatement(_lock_statement(True)),
}
_PURCHASES: Table = table_of(Purchase)
# Every column bound: the caller gives each a value (`insert_purchase`).
_INSERT_PURCHASE = DriverStatement(
    insert(_PURCHASES)
    .values({column.key: bindparam(column.key, type_=column.type) for column in _PURCHASES.c})
    .on_conflict_do_nothing(index_elements=[_PURCHASES.c.brand_id, _PURCHASES.c.order_id])
    .returning(_PURCHASES.c.id)
)


class PurchaseRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_account(
        self, brand_id: uuid.UUID, *, member_id: uuid.UUID | None, external_id: str | None
    ) -> tuple[LockedAccount | None, ProgramVersion | None]:
        """The member's account, locked until the transaction ends: one member's purchases run
        one at a time, so each sees the spend (and tier) the previous one left. With it, the
        version of the brand's reference data (None: no program)."""
        parameters: dict[str, object] = {"brand_id": brand_id}
        if member_id is not None:
            parameters["member_id"] = member_id
        else:
            parameters["external_id"] = external_id
        row = await _LOCK[member_id is None].fetch_one(self.session, parameters)
        assert row is not None  # the statement always answers one row
        version = None if row.xid is None else ProgramVersion(row.xid, row.updated_at)
        account = (
            None
            if row.member_id is None
            else LockedAccount(
                row.member_id,
                row.member_status,
                row.tier_id,
                Balances(row.available, row.pending),
            )
        )
        return account, version

    # --- purchases ---

    async def insert_purchase(self, values: dict[str, Any]) -> bool:
        """Inserts the purchase (a value for every column) unless its order id is taken; False
        when it is.

        A concurrent insert of the same order id waits here until that transaction ends: after
        its commit this returns False (the caller replays), after its rollback it inserts.
        """
        return await _INSERT_PURCHASE.fetch_one(self.session, values) is not None

    async def by_order(
        self, brand_id: uuid.UUID, order_id: str, *, for_update: bool = False
    ) -> Purchase | None:
        statement = select(Purchase).where(
            Purchase.brand_id == brand_id, Purchase.order_id == order_id
        )
        if for_update:
            statement = statement.with_for_update()
        statement = statement.execution_options(populate_existing=True)
        return (await self.session.scalars(statement)).one_or_none()

    async def add_returned(self, purchase_id: uuid.UUID, amount_minor: int, points: int) -> None:
        await self.session.execute(
            update(Purchase)
            .where(Purchase.id == purchase_id)
            .values(
                returned_minor=Purchase.returned_minor + amount_minor,
                returned_points=Purchase.returned_points + points,
            )
            .execution_options(synchronize_session=False)
        )

    async def due_for_release(self, now: datetime, limit: int) -> Sequence[Purchase]:
        """Pending purchases whose return window has closed, locked; rows another transaction
        holds (a return in progress) are skipped and picked up by the next run."""
        statement = (
            select(Purchase)
            .where(Purchase.points_bucket == Bucket.PENDING, Purchase.pending_until <= now)
            .order_by(Purchase.pending_until, Purchase.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
        return (await self.session.scalars(statement)).all()

    async def mark_released(self, purchase_id: uuid.UUID) -> None:
        await self.session.execute(
            update(Purchase)
            .where(Purchase.id == purchase_id)
            .values(points_bucket=Bucket.AVAILABLE)
            .execution_options(synchronize_session=False)
        )

    # --- returns ---

    async def return_by_id(self, brand_id: uuid.UUID, return_id: str) -> Return | None:
        statement = select(Return).where(Return.brand_id == brand_id, Return.return_id == return_id)
        return (await self.session.scalars(statement)).one_or_none()

    async def returns_of(self, purchase_id: uuid.UUID) -> Sequence[Return]:
        statement = select(Return).where(Return.purchase_id == purchase_id).order_by(Return.id)
        return (await self.session.scalars(statement)).all()

    async def purchase_by_id(self, purchase_id: uuid.UUID) -> Purchase | None:
        return await self.session.get(Purchase, purchase_id)

    async def insert_return(self, values: dict[str, Any]) -> bool:
        """Inserts the return unless its return id is taken (then False; see insert_purchase)."""
        statement = (
            insert(Return)
            .values(values)
            .on_conflict_do_nothing(index_elements=[Return.brand_id, Return.return_id])
            .returning(Return.id)
        )
        return (await self.session.execute(statement)).one_or_none() is not None

    async def reversal_bucket(self, brand_id: uuid.UUID, return_id: str) -> Bucket | None:
        """The bucket a return's points were taken from (from its ledger line); None if none."""
        statement = select(LedgerEntry.bucket).where(
            LedgerEntry.brand_id == brand_id,
            LedgerEntry.source_type == SOURCE_RETURN,
            LedgerEntry.source_id == return_id,
        )
        return (await self.session.scalars(statement)).first()
