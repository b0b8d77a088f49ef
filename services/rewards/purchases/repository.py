"""All SQL of purchases and returns. Every query that reads a brand's data filters by brand."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.rewards.models import Account, Bucket, LedgerEntry, Purchase, Return

# The ledger lines of purchases and returns name them by the brand's own ids.
SOURCE_PURCHASE = "purchase"  # source_id: the order id
SOURCE_RETURN = "return"  # source_id: the return id


class PurchaseRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_account(
        self, brand_id: uuid.UUID, *, member_id: uuid.UUID | None, external_id: str | None
    ) -> Account | None:
        """The member's account, locked until the transaction ends: one member's purchases run
        one at a time, so each sees the spend (and tier) the previous one left."""
        statement = select(Account).where(Account.brand_id == brand_id)
        if member_id is not None:
            statement = statement.where(Account.member_id == member_id)
        else:
            statement = statement.where(Account.external_id == external_id)
        statement = statement.with_for_update().execution_options(populate_existing=True)
        return (await self.session.scalars(statement)).one_or_none()

    # --- purchases ---

    async def insert_purchase(self, values: dict[str, Any]) -> bool:
        """Inserts the purchase unless its order id is taken; False when it is.

        A concurrent insert of the same order id waits here until that transaction ends: after
        its commit this returns False (the caller replays), after its rollback it inserts.
        """
        statement = (
            insert(Purchase)
            .values(values)
            .on_conflict_do_nothing(index_elements=[Purchase.brand_id, Purchase.order_id])
            .returning(Purchase.id)
        )
        return (await self.session.execute(statement)).one_or_none() is not None

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
