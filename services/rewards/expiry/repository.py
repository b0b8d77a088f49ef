"""All SQL of points expiry: which members have points due or about to be due, and their lots.

Members are always visited in ascending `member_id` order and their account rows locked in that
order (`lock_accounts`) before any of their lots are touched. Every other writer locks one account
before its lots, so the expiry and reminder jobs never deadlock with redemptions, purchases or
each other.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, DateTime, Row, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.rewards.models import Account, ExpiryPolicy, Lot, Program

ERASED = "erased"


@dataclass(frozen=True, slots=True)
class DueLot:
    id: uuid.UUID
    member_id: uuid.UUID
    points: int
    remaining: int
    earned_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class ExpiringGroup:
    expires_at: datetime
    points: int


def inactivity_anchor() -> ColumnElement[datetime]:
    """Since when the inactivity clock runs: the last activity, or the account's creation."""
    return func.coalesce(Account.last_activity_at, Account.created_at)


def inactivity_deadline_sql(months: int) -> ColumnElement[datetime]:
    """`anchor + months` as calendar months in UTC, whatever the session's time zone.

    PostgreSQL clamps the day to the month's end (31 Jan + 1 month = 28/29 Feb), like
    `expiry.service.add_months`, so SQL and Python agree on every date.
    """
    local = func.timezone("UTC", inactivity_anchor()) + func.make_interval(0, months)
    return func.timezone("UTC", local, type_=DateTime(timezone=True))


class ExpiryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def programs_with_expiry(self) -> Sequence[Program]:
        result = await self.session.scalars(
            select(Program)
            .where(Program.expiry_policy != ExpiryPolicy.NONE)
            .order_by(Program.brand_id)
        )
        return result.all()

    async def lock_accounts(
        self, brand_id: uuid.UUID, member_ids: Sequence[uuid.UUID]
    ) -> Sequence[Account]:
        """The accounts, fresh and locked until the transaction ends, in member id order."""
        result = await self.session.scalars(
            select(Account)
            .where(Account.brand_id == brand_id, Account.member_id.in_(member_ids))
            .order_by(Account.member_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return result.all()

    # --- lot by lot ---

    async def members_with_due_lots(
        self, brand_id: uuid.UUID, now: datetime, after: uuid.UUID | None, limit: int
    ) -> list[uuid.UUID]:
        statement = select(Lot.member_id).where(
            Lot.brand_id == brand_id, Lot.remaining > 0, Lot.expires_at <= now
        )
        if after is not None:
            statement = statement.where(Lot.member_id > after)
        result = await self.session.scalars(
            statement.group_by(Lot.member_id).order_by(Lot.member_id).limit(limit)
        )
        return list(result.all())

    async def due_lots(self, member_id: uuid.UUID, now: datetime) -> list[DueLot]:
        rows = await self.session.execute(
            select(*_LOT)
            .where(Lot.member_id == member_id, Lot.remaining > 0, Lot.expires_at <= now)
            .order_by(Lot.expires_at, Lot.earned_at, Lot.id)
        )
        return [_due_lot(row) for row in rows]

    async def members_with_lots_to_remind(
        self,
        brand_id: uuid.UUID,
        now: datetime,
        until: datetime,
        after: uuid.UUID | None,
        limit: int,
    ) -> list[uuid.UUID]:
        statement = (
            select(Lot.member_id)
            .join(Account, Account.member_id == Lot.member_id)
            .where(
                Lot.brand_id == brand_id,
                *_to_remind(now, until),
                Account.member_status != ERASED,
            )
        )
        if after is not None:
            statement = statement.where(Lot.member_id > after)
        result = await self.session.scalars(
            statement.group_by(Lot.member_id).order_by(Lot.member_id).limit(limit)
        )
        return list(result.all())

    async def mark_lots_reminded(
        self, member_ids: Sequence[uuid.UUID], now: datetime, until: datetime
    ) -> list[DueLot]:
        """Claims the reminders of these members' lots: only lots this statement marked return.

        A concurrent run waits on the rows, then finds them marked: each lot is announced once.
        """
        rows = await self.session.execute(
            update(Lot)
            .where(Lot.member_id.in_(member_ids), *_to_remind(now, until))
            .values(reminded_at=now)
            .returning(*_LOT)
            .execution_options(synchronize_session=False)
        )
        return sorted((_due_lot(row) for row in rows), key=lambda lot: (lot.expires_at, lot.id))

    async def expiring_lots(
        self, member_id: uuid.UUID, until: datetime, limit: int
    ) -> tuple[int, list[ExpiringGroup]]:
        """Open lots expiring by `until` (overdue ones included): their sum, and the first dates."""
        due = (Lot.member_id == member_id, Lot.remaining > 0, Lot.expires_at <= until)
        total = await self.session.scalar(
            select(func.coalesce(func.sum(Lot.remaining), 0)).where(*due)
        )
        rows = await self.session.execute(
            select(Lot.expires_at, func.sum(Lot.remaining))
            .where(*due)
            .group_by(Lot.expires_at)
            .order_by(Lot.expires_at)
            .limit(limit)
        )
        groups = [
            ExpiringGroup(expires_at, int(points))
            for expires_at, points in rows
            if expires_at is not None
        ]
        return int(total or 0), groups

    # --- inactivity ---

    async def inactive_members(
        self,
        brand_id: uuid.UUID,
        months: int,
        now: datetime,
        after: uuid.UUID | None,
        limit: int,
    ) -> list[uuid.UUID]:
        statement = select(Account.member_id).where(
            Account.brand_id == brand_id,
            Account.available > 0,
            inactivity_deadline_sql(months) <= now,
        )
        if after is not None:
            statement = statement.where(Account.member_id > after)
        result = await self.session.scalars(statement.order_by(Account.member_id).limit(limit))
        return list(result.all())

    async def members_to_remind_of_inactivity(
        self,
        brand_id: uuid.UUID,
        months: int,
        now: datetime,
        until: datetime,
        after: uuid.UUID | None,
        limit: int,
    ) -> list[uuid.UUID]:
        deadline = inactivity_deadline_sql(months)
        statement = select(Account.member_id).where(
            Account.brand_id == brand_id,
            Account.available > 0,
            Account.member_status != ERASED,
            deadline > now,
            deadline <= until,
            Account.inactivity_reminded_for.is_distinct_from(deadline),
        )
        if after is not None:
            statement = statement.where(Account.member_id > after)
        result = await self.session.scalars(statement.order_by(Account.member_id).limit(limit))
        return list(result.all())

    async def mark_inactivity_reminded(self, member_id: uuid.UUID, deadline: datetime) -> None:
        await self.session.execute(
            update(Account)
            .where(Account.member_id == member_id)
            .values(inactivity_reminded_for=deadline)
            .execution_options(synchronize_session=False)
        )


def _to_remind(now: datetime, until: datetime) -> tuple[ColumnElement[bool], ...]:
    return (
        Lot.remaining > 0,
        Lot.reminded_at.is_(None),
        Lot.expires_at > now,
        Lot.expires_at <= until,
    )


_LOT = (Lot.id, Lot.member_id, Lot.points, Lot.remaining, Lot.earned_at, Lot.expires_at)


def _due_lot(row: Row[uuid.UUID, uuid.UUID, int, int, datetime, datetime | None]) -> DueLot:
    id_, member_id, points, remaining, earned_at, expires_at = row
    assert expires_at is not None  # every query here filters on it
    return DueLot(id_, member_id, points, remaining, earned_at, expires_at)
