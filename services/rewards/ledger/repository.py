"""All SQL of the ledger core: accounts (the member projection and cached sums), entries, lots."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.pagination import PageRequest, keyset
from services.rewards.models import Account, Bucket, LedgerEntry, Lot, Program


def _column_values(row: LedgerEntry | Lot) -> dict[str, object]:
    """The row's set columns; unset ones (None) are left to their server defaults."""
    values = {column.key: getattr(row, column.key) for column in type(row).__table__.columns}
    return {key: value for key, value in values.items() if value is not None}


@dataclass(frozen=True, slots=True)
class Balances:
    available: int
    pending: int


class LedgerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- program ---

    async def program(self, brand_id: uuid.UUID) -> Program | None:
        return await self.session.get(Program, brand_id)

    async def save_program(self, brand_id: uuid.UUID, settings: dict[str, object]) -> Program:
        statement = insert(Program).values(brand_id=brand_id, **settings)
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[Program.brand_id],
                set_={**settings, "updated_at": func.now()},
            )
        )
        program = await self.session.get(Program, brand_id, populate_existing=True)
        assert program is not None
        return program

    # --- accounts ---

    async def account(self, brand_id: uuid.UUID, member_id: uuid.UUID) -> Account | None:
        account = await self.session.get(Account, member_id)
        return account if account is not None and account.brand_id == brand_id else None

    async def current_account(self, member_id: uuid.UUID) -> Account | None:
        """The account as the database has it now (a copy in the session is refreshed)."""
        return await self.session.get(Account, member_id, populate_existing=True)

    async def account_by_external_id(self, brand_id: uuid.UUID, external_id: str) -> Account | None:
        result = await self.session.scalars(
            select(Account).where(Account.brand_id == brand_id, Account.external_id == external_id)
        )
        return result.one_or_none()

    async def lock_account(self, brand_id: uuid.UUID, member_id: uuid.UUID) -> Account | None:
        """The account row, locked until the transaction ends: serialises one member's writes."""
        result = await self.session.scalars(
            select(Account)
            .where(Account.member_id == member_id, Account.brand_id == brand_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return result.one_or_none()

    async def upsert_account(
        self,
        *,
        brand_id: uuid.UUID,
        member_id: uuid.UUID,
        external_id: str | None,
        birthday: date | None,
        member_status: str,
    ) -> None:
        values = {
            "member_id": member_id,
            "brand_id": brand_id,
            "external_id": external_id,
            "birthday": birthday,
            "member_status": member_status,
        }
        statement = insert(Account).values(values)
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[Account.member_id],
                set_={
                    "external_id": statement.excluded.external_id,
                    "birthday": statement.excluded.birthday,
                    "member_status": statement.excluded.member_status,
                },
                where=Account.brand_id == brand_id,
            )
        )

    async def move_balances(
        self,
        member_id: uuid.UUID,
        *,
        available: int,
        pending: int,
        lifetime: int,
        floor: int | None,
        touch_activity_at: datetime | None,
    ) -> Balances | None:
        """Adds to the cached sums in one statement; None when `available` would drop below `floor`.

        The condition and the change are one UPDATE, so concurrent redemptions can never take a
        balance below zero, whatever their interleaving.
        """
        condition = [Account.member_id == member_id, Account.pending + pending >= 0]
        if floor is not None:
            condition.append(Account.available + available >= floor)
        values: dict[str, object] = {
            "available": Account.available + available,
            "pending": Account.pending + pending,
            "lifetime_earned": Account.lifetime_earned + lifetime,
        }
        if touch_activity_at is not None:
            # Never backwards: an event delivered late must not make a member look inactive.
            values["last_activity_at"] = func.greatest(Account.last_activity_at, touch_activity_at)
        row = (
            await self.session.execute(
                update(Account)
                .where(*condition)
                .values(values)
                .returning(Account.available, Account.pending)
                .execution_options(synchronize_session=False)
            )
        ).one_or_none()
        return None if row is None else Balances(row.available, row.pending)

    # --- entries and lots ---

    async def append(self, entry: LedgerEntry) -> None:
        # A Core INSERT: the ORM's unit of work costs more CPU than the row on this hot path,
        # and nothing reads the entry back through the session.
        await self.session.execute(insert(LedgerEntry).values(_column_values(entry)))

    async def add_lot(self, lot: Lot) -> None:
        await self.session.execute(insert(Lot).values(_column_values(lot)))

    async def take_from_lots(
        self, member_id: uuid.UUID, points: int, first: Sequence[uuid.UUID] = ()
    ) -> int:
        """Spends `points` from open lots, oldest first; returns how many were found in lots.

        Lots named in `first` are taken before any other (expiry empties exactly the lots that
        are due, even when an older lot expires later). The rows are locked in (earned_at, id)
        order either way, the order every writer uses, so two writers never deadlock on lots.
        """
        lots = (
            await self.session.execute(
                select(Lot.id, Lot.remaining)
                .where(Lot.member_id == member_id, Lot.remaining > 0)
                .order_by(Lot.earned_at, Lot.id)
                .with_for_update()
            )
        ).all()
        if first:
            preferred = set(first)
            lots = sorted(lots, key=lambda lot: lot.id not in preferred)  # stable: FIFO otherwise
        left = points
        for lot in lots:
            if left == 0:
                break
            taken = min(left, lot.remaining)
            await self.session.execute(
                update(Lot)
                .where(Lot.id == lot.id)
                .values(remaining=Lot.remaining - taken)
                .execution_options(synchronize_session=False)
            )
            left -= taken
        return points - left

    async def entries(
        self, brand_id: uuid.UUID, member_id: uuid.UUID, page: PageRequest
    ) -> Sequence[LedgerEntry]:
        statement = select(LedgerEntry).where(
            LedgerEntry.brand_id == brand_id, LedgerEntry.member_id == member_id
        )
        result = await self.session.scalars(
            keyset(statement, LedgerEntry.id, page, newest_first=True)
        )
        return result.all()

    async def sums_from_entries(self, member_id: uuid.UUID) -> Balances:
        """The balances as the ledger itself says: what the cached sums must always equal."""
        row = (
            await self.session.execute(
                select(
                    func.coalesce(
                        func.sum(LedgerEntry.points).filter(LedgerEntry.bucket == Bucket.AVAILABLE),
                        0,
                    ),
                    func.coalesce(
                        func.sum(LedgerEntry.points).filter(LedgerEntry.bucket == Bucket.PENDING), 0
                    ),
                ).where(LedgerEntry.member_id == member_id)
            )
        ).one()
        return Balances(int(row[0]), int(row[1]))
