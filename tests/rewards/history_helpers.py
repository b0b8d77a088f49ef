"""Helpers for the bulk history tests: everything rewards holds about one member, without ids,
to compare a member loaded in bulk with one who went through the online path."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.rewards.expiry.service import expire_points, remind_expiring_points
from services.rewards.models import (
    OUTBOX,
    Account,
    LedgerEntry,
    Lot,
    Perk,
    Purchase,
    Redemption,
    Return,
    Tier,
    TierChange,
)
from services.rewards.tiers.service import REVIEW_HOUR, REVIEW_MINUTE, review_tiers


def ceil_to_5_minutes(moment: datetime) -> datetime:
    """The release job's first run at or after `moment` (every 5 minutes)."""
    floor = moment.replace(minute=moment.minute - moment.minute % 5, second=0, microsecond=0)
    return floor if floor == moment else floor + timedelta(minutes=5)


def anonymous(value: Any) -> Any:
    """Ids differ between the two brands: every UUID (as text) becomes a placeholder."""
    if isinstance(value, dict):
        return {key: anonymous(item) for key, item in value.items()}
    if isinstance(value, list):
        return [anonymous(item) for item in value]
    if isinstance(value, str):
        try:
            uuid.UUID(value)
        except ValueError:
            return value
        return "<id>"
    return value


async def member_state(session: AsyncSession, member_id: uuid.UUID) -> dict[str, Any]:
    """Everything rewards holds about one member, without ids."""
    tier_names = {t.id: t.name for t in (await session.scalars(select(Tier))).all()}
    account = (
        await session.execute(select(Account).where(Account.member_id == member_id))
    ).scalar_one()
    await session.refresh(account)
    lots = (
        await session.scalars(
            select(Lot).where(Lot.member_id == member_id).order_by(Lot.earned_at, Lot.id)
        )
    ).all()
    lot_earned = {str(lot.id): lot.earned_at.isoformat() for lot in lots}
    redemptions = (
        await session.execute(
            select(Redemption, Perk.name)
            .join(Perk, Perk.id == Redemption.perk_id)
            .where(Redemption.member_id == member_id)
            .order_by(Redemption.created_at, Redemption.id)
        )
    ).all()
    # A redemption's ledger line names it: compare it by its perk and time.
    redeemed = {str(r.id): f"{name}@{r.created_at.isoformat()}" for r, name in redemptions}
    entries = (
        await session.scalars(
            select(LedgerEntry).where(LedgerEntry.member_id == member_id).order_by(LedgerEntry.id)
        )
    ).all()
    changes = (
        await session.scalars(
            select(TierChange)
            .where(TierChange.member_id == member_id)
            .order_by(TierChange.changed_at, TierChange.id)
        )
    ).all()
    bought = (
        await session.scalars(
            select(Purchase).where(Purchase.member_id == member_id).order_by(Purchase.occurred_at)
        )
    ).all()
    returns = (
        await session.execute(
            select(Return, Purchase.order_id)
            .join(Purchase, Purchase.id == Return.purchase_id)
            .where(Purchase.member_id == member_id)
            .order_by(Return.occurred_at, Return.return_id)
        )
    ).all()
    table = OUTBOX.table
    events = (
        await session.execute(
            select(table.c.type, table.c.occurred_at, table.c.payload)
            .where(table.c.subject_id == member_id)
            .order_by(table.c.id)
        )
    ).all()

    def source(entry: LedgerEntry) -> str | None:
        if entry.source_type == "lot" and entry.source_id:
            return lot_earned[entry.source_id]  # an expiry names its lot: by when it was earned
        if entry.source_type == "redemption" and entry.source_id:
            return redeemed[entry.source_id]
        return entry.source_id

    return {
        "account": (
            account.available,
            account.pending,
            account.lifetime_earned,
            account.last_activity_at,
            tier_names.get(account.tier_id) if account.tier_id else None,
            account.tier_since,
            account.inactivity_reminded_for,
        ),
        "tier_changes": [
            (
                tier_names.get(c.from_tier_id) if c.from_tier_id else None,
                tier_names.get(c.to_tier_id) if c.to_tier_id else None,
                c.reason,
                c.window_spend_minor,
                c.changed_at,
            )
            for c in changes
        ],
        "entries": [
            (e.kind, e.bucket, e.points, e.reason, e.source_type, source(e), e.occurred_at)
            for e in entries
        ],
        "lots": [
            (lot.points, lot.remaining, lot.earned_at, lot.expires_at, lot.reminded_at)
            for lot in lots
        ],
        "purchases": [
            (
                p.order_id,
                p.amount_minor,
                p.currency,
                p.lines,
                p.points,
                p.points_bucket,
                p.pending_until,
                p.returned_minor,
                p.returned_points,
                anonymous(p.breakdown),
                p.occurred_at,
                p.created_at,
            )
            for p in bought
        ],
        "returns": [
            (
                order_id,
                r.return_id,
                r.amount_minor,
                r.lines,
                r.points_reversed,
                r.occurred_at,
                r.created_at,
            )
            for r, order_id in returns
        ],
        "redemptions": [
            (
                name,
                r.points,
                r.status,
                r.code,
                r.drop_id,
                r.created_at,
                r.cancelled_at,
                r.code_revealed_at,
            )
            for r, name in redemptions
        ],
        "events": [(t, at, anonymous(payload["data"])) for t, at, payload in events],
    }


Timeline = list[tuple[datetime, int, Callable[[], Awaitable[Any]]]]


async def run_with_daily_jobs(
    session: AsyncSession, timeline: Timeline, first: datetime, now: datetime
) -> None:
    """Runs the happenings of `timeline` (time, rank at one instant, call) with the daily jobs
    at their scheduled times from `first`'s day on (expiry 02:05, reminders 02:35, the tier
    review), in time order, up to `now`: the online path's year, for the side-by-side tests."""
    day = first.replace(hour=0, minute=0, second=0, microsecond=0)
    while day <= now:
        expire_at = day.replace(hour=2, minute=5)
        remind_at = day.replace(hour=2, minute=35)
        review_at = day.replace(hour=REVIEW_HOUR, minute=REVIEW_MINUTE)
        timeline.append((expire_at, 1, lambda at=expire_at: expire_points(session, now=at)))
        timeline.append(
            (remind_at, 2, lambda at=remind_at: remind_expiring_points(session, now=at))
        )
        timeline.append((review_at, 3, lambda at=review_at: review_tiers(session, now=at)))
        day += timedelta(days=1)
    for at, _, happen in sorted(timeline, key=lambda item: (item[0], item[1])):
        if at <= now:
            await happen()
