"""Tiers: the ladder, qualifying spend, upgrades at once, downgrades in a daily review.

**Qualifying spend** is the sum, over a member's purchases whose `occurred_at` is in the window,
of the amount less what was returned of it. A return lowers the spend of the window its purchase
counted in (not the window the return happened in), and never downgrades at once: only the review
does. Windows are in UTC: the calendar year `[1 Jan, next 1 Jan)`, or the rolling 12 months up to
now.

**Upgrades** happen in the purchase's own transaction: when the window spend reaches a higher
tier's threshold, the member goes straight to the highest tier it reaches (several ranks at once
if need be). A member with no tier gets the entry tier (rank 0), when the brand has one, at their
first purchase even below its threshold. Tier thresholds rise strictly with rank.

**Downgrades** happen only in the daily review (`rewards.review_tiers`, 04:07 UTC), by the rule of
the tier the member holds:

- `never`: kept for good.
- `end_of_window`: judged on the last closed window whose review date (its end + `grace_days`)
  has passed, if the member held the tier before that window closed. Calendar year: the previous
  year, judged from 1 January + grace. Rolling 12 months: the 12 months before each anniversary
  of reaching the tier, judged from the anniversary + grace.
- `spend_drops`: judged on the current window, once `grace_days` have passed since the member
  reached the tier (with a calendar window, early January has little spend: use grace days).

A member judged short goes **straight to the tier the judged spend supports** (the entry tier if
it supports none), not one step at a time; `tier_since` restarts, so the new tier has a full
window before its own review. Every change is appended to `tier_changes` and emits `tier.changed`
with its reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.kernel.ids import new_id
from services.rewards.currencies import format_minor
from services.rewards.errors import (
    DuplicateTierName,
    DuplicateTierRank,
    ProgramNotConfigured,
    TierInUse,
    TierNotFound,
    TierThresholdsOutOfOrder,
)
from services.rewards.events import TierChanged, TierChangedData
from services.rewards.job_runs import RunLimit, in_batches
from services.rewards.ledger import service as ledger
from services.rewards.ledger.members import MemberSource
from services.rewards.models import (
    OUTBOX,
    Account,
    DowngradeRule,
    Program,
    QualificationWindow,
    Tier,
    TierChange,
)
from services.rewards.tiers.repository import TierRepository
from services.rewards.tiers.schemas import (
    KeepTier,
    NextTier,
    TierCreate,
    TierStatus,
    TierSummary,
    TierUpdate,
)

# When the daily review runs (UTC); the job's schedule uses the same numbers.
REVIEW_HOUR = 4
REVIEW_MINUTE = 7
REVIEW_BATCH = 1_000  # members whose spend one query sums


# --- Windows --------------------------------------------------------------------------------


def add_years(moment: datetime, years: int) -> datetime:
    """The same day and time `years` later (29 February becomes 28 February)."""
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:
        return moment.replace(year=moment.year + years, day=28)


def _new_year(year: int) -> datetime:
    return datetime(year, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Window:
    starts_at: datetime
    ends_at: datetime | None  # exclusive; None: up to now (rolling)
    label: str  # "2026", "the last 12 months"


def current_window(kind: QualificationWindow, now: datetime) -> Window:
    if kind == QualificationWindow.CALENDAR_YEAR:
        return Window(_new_year(now.year), _new_year(now.year + 1), str(now.year))
    return Window(add_years(now, -1), None, "the last 12 months")


def next_review(after: datetime) -> datetime:
    """The first daily review run strictly after `after`."""
    run = after.astimezone(UTC).replace(
        hour=REVIEW_HOUR, minute=REVIEW_MINUTE, second=0, microsecond=0
    )
    return run if run > after else run + timedelta(days=1)


def _next_anniversary(since: datetime, now: datetime) -> datetime:
    years = 1
    while (anniversary := add_years(since, years)) <= now:
        years += 1
    return anniversary


def _last_reviewable_anniversary(
    since: datetime, grace: timedelta, now: datetime
) -> datetime | None:
    last = None
    years = 1
    while (anniversary := add_years(since, years)) + grace <= now:
        last = anniversary
        years += 1
    return last


def judged_window(
    kind: QualificationWindow, tier: Tier, since: datetime | None, now: datetime
) -> Window | None:
    """The window the review judges this member on today, or None when no review is due."""
    if since is None or tier.downgrade_rule == DowngradeRule.NEVER:
        return None
    grace = timedelta(days=tier.grace_days)
    if tier.downgrade_rule == DowngradeRule.SPEND_DROPS:
        return current_window(kind, now) if now >= since + grace else None
    if kind == QualificationWindow.CALENDAR_YEAR:
        end = _new_year(now.year)
        if now < end + grace:
            end = _new_year(now.year - 1)
        if since >= end:
            return None  # reached the tier after that window closed: judged at the next one
        return Window(_new_year(end.year - 1), end, str(end.year - 1))
    anniversary = _last_reviewable_anniversary(since, grace, now)
    if anniversary is None:
        return None
    return Window(add_years(anniversary, -1), anniversary, f"the 12 months to {anniversary.date()}")


# --- The ladder -----------------------------------------------------------------------------


class Ladder:
    """A brand's tiers by rank, with the questions upgrades, reviews and status ask of them."""

    def __init__(self, tiers: Sequence[Tier]) -> None:
        self.tiers = sorted(tiers, key=lambda t: t.rank)
        self._by_id = {t.id: t for t in self.tiers}

    def __bool__(self) -> bool:
        return bool(self.tiers)

    def by_id(self, tier_id: uuid.UUID | None) -> Tier | None:
        return self._by_id.get(tier_id) if tier_id is not None else None

    @property
    def entry(self) -> Tier | None:
        return next((t for t in self.tiers if t.rank == 0), None)

    @property
    def lowest(self) -> Tier | None:
        return self.tiers[0] if self.tiers else None

    def highest_for(self, spend: int) -> Tier | None:
        reached = [t for t in self.tiers if t.threshold_minor <= spend]
        return reached[-1] if reached else None

    def above(self, tier: Tier | None) -> Tier | None:
        if tier is None:
            return self.lowest
        return next((t for t in self.tiers if t.rank > tier.rank), None)


def upgrade_target(ladder: Ladder, current: Tier | None, spend: int) -> Tier | None:
    """The tier a member with `spend` in the window moves up to, or None to stay."""
    reached = ladder.highest_for(spend)
    if current is None:
        return reached or ladder.entry
    if reached is not None and reached.rank > current.rank:
        return reached
    return None


def downgrade_target(ladder: Ladder, current: Tier, spend: int) -> Tier | None:
    """The tier a member judged on `spend` moves down to, or None to keep theirs."""
    supported = ladder.highest_for(spend)
    if supported is not None and supported.rank >= current.rank:
        return None
    target = supported or ladder.entry or ladder.lowest
    if target is None or target.rank >= current.rank:
        return None
    return target


async def ladder_of(session: AsyncSession, brand_id: uuid.UUID) -> Ladder:
    return Ladder(await TierRepository(session).ladder(brand_id))


async def window_spend(session: AsyncSession, member_id: uuid.UUID, window: Window) -> int:
    return await TierRepository(session).spend(member_id, window.starts_at, window.ends_at)


# --- Changes --------------------------------------------------------------------------------


async def _change(
    session: AsyncSession,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    current: Tier | None,
    target: Tier,
    *,
    reason: str,
    spend: int,
    now: datetime,
    direction: Literal["up", "down"],
) -> bool:
    repository = TierRepository(session)
    if not await repository.keep(target.id):
        return False  # the tier was deleted meanwhile; the next purchase or review decides
    moved = await repository.move_member(
        member_id,
        from_tier_id=current.id if current is not None else None,
        to_tier_id=target.id,
        since=now,
    )
    if not moved:
        return False  # changed by someone else meanwhile; the next purchase or review decides
    await repository.record_change(
        TierChange(
            id=new_id(),
            brand_id=brand_id,
            member_id=member_id,
            from_tier_id=current.id if current is not None else None,
            to_tier_id=target.id,
            reason=reason,
            window_spend_minor=spend,
            changed_at=now,
        )
    )
    await OUTBOX.add(
        session,
        changed_event(
            brand_id,
            member_id,
            current,
            target,
            reason=reason,
            spend=spend,
            now=now,
            direction=direction,
        ),
    )
    return True


def changed_event(
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    current: Tier | None,
    target: Tier,
    *,
    reason: str,
    spend: int,
    now: datetime,
    direction: Literal["up", "down"],
) -> TierChanged:
    """`tier.changed` for one change (shared with the bulk history loader)."""
    return TierChanged(
        brand_id=brand_id,
        subject_id=member_id,
        occurred_at=now,
        data=TierChangedData(
            member_id=member_id,
            from_tier_id=current.id if current is not None else None,
            from_tier=current.name if current is not None else None,
            to_tier_id=target.id,
            to_tier=target.name,
            direction=direction,
            reason=reason,
            window_spend_minor=spend,
        ),
    )


def upgrade_reason(
    program: Program, window: Window, target: Tier, spend: int, order_id: str
) -> str:
    """Why a purchase moved the member up to `target` (or into the entry tier)."""
    if target.threshold_minor <= spend:
        return (
            f"Spent {format_minor(spend, program.currency)} in {window.label} with order "
            f"{order_id}, reaching {target.name} "
            f"(from {format_minor(target.threshold_minor, program.currency)})"
        )
    return f"Joined at the entry tier {target.name} with order {order_id}"


def review_reason(program: Program, window: Window, current: Tier, spend: int) -> str:
    """Why the review moved the member down from `current`."""
    return (
        f"Tier review: spent {format_minor(spend, program.currency)} in "
        f"{window.label}, below {current.name}'s "
        f"{format_minor(current.threshold_minor, program.currency)}"
    )


async def upgrade_after_purchase(
    session: AsyncSession,
    brand_id: uuid.UUID,
    program: Program,
    ladder: Ladder,
    *,
    member_id: uuid.UUID,
    current_tier_id: uuid.UUID | None,
    order_id: str,
    now: datetime,
) -> Tier | None:
    """Moves the member up if the window spend (this purchase included) reaches a higher tier.

    The caller holds the member's account lock, so concurrent purchases see each other's spend.
    """
    if not ladder:
        return None
    window = current_window(program.qualification_window, now)
    spend = await window_spend(session, member_id, window)
    current = ladder.by_id(current_tier_id)
    target = upgrade_target(ladder, current, spend)
    if target is None:
        return None
    reason = upgrade_reason(program, window, target, spend, order_id)
    changed = await _change(
        session,
        brand_id,
        member_id,
        current,
        target,
        reason=reason,
        spend=spend,
        now=now,
        direction="up",
    )
    return target if changed else None


async def review_tiers(
    session: AsyncSession,
    now: datetime | None = None,
    *,
    batch_size: int = REVIEW_BATCH,
    limit: RunLimit | None = None,
) -> int:
    """The daily review: applies every held tier's downgrade rule (as far as `limit` goes: see
    `rewards.job_runs`); returns how many moved down."""
    now = now or utcnow()
    limit = limit or RunLimit()
    repository = TierRepository(session)
    moved = 0
    for program in limit.brands(await repository.brands_with_tiers()):
        if limit.stop_before(program):
            break
        moved += await _review_brand(session, program, now, batch_size, limit)
    return moved


async def _review_brand(
    session: AsyncSession, program: Program, now: datetime, batch_size: int, limit: RunLimit
) -> int:
    """One brand's members, a batch at a time: each batch grouped by the window its members'
    tiers are judged on, and their spend in it summed in one query per window."""
    repository = TierRepository(session)
    ladder = await ladder_of(session, program.brand_id)
    moved = 0

    async def fetch(after: uuid.UUID | None) -> list[tuple[uuid.UUID, uuid.UUID, datetime | None]]:
        return await repository.tiered_members(program.brand_id, after, batch_size)

    async def handle(rows: list[tuple[uuid.UUID, uuid.UUID, datetime | None]]) -> None:
        nonlocal moved
        due: dict[Window, list[tuple[uuid.UUID, Tier]]] = {}
        for member_id, tier_id, since in rows:
            tier = ladder.by_id(tier_id)
            if tier is None:
                continue
            window = judged_window(program.qualification_window, tier, since, now)
            if window is not None:
                due.setdefault(window, []).append((member_id, tier))
        for window, members in due.items():
            spends = await repository.spend_by_member(
                [member_id for member_id, _ in members], window.starts_at, window.ends_at
            )
            moved += await _review_batch(session, program, ladder, window, members, spends, now)

    await in_batches(fetch, handle, batch_size, program.brand_id, limit, member_of=lambda r: r[0])
    return moved


async def _review_batch(
    session: AsyncSession,
    program: Program,
    ladder: Ladder,
    window: Window,
    members: Sequence[tuple[uuid.UUID, Tier]],
    spends: dict[uuid.UUID, int],
    now: datetime,
) -> int:
    moved = 0
    for member_id, current in members:
        spend = spends.get(member_id, 0)
        target = downgrade_target(ladder, current, spend)
        if target is None:
            continue
        reason = review_reason(program, window, current, spend)
        if await _change(
            session,
            program.brand_id,
            member_id,
            current,
            target,
            reason=reason,
            spend=spend,
            now=now,
            direction="down",
        ):
            moved += 1
    return moved


# --- Status ---------------------------------------------------------------------------------


def _summary(tier: Tier) -> TierSummary:
    return TierSummary.model_validate(tier)


async def status(
    session: AsyncSession,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    now: datetime | None = None,
    *,
    members: MemberSource | None,
) -> TierStatus:
    """Where a member stands: tier, spend in the window, what reaching the next and keeping
    this one take, and when the window closes."""
    program = await ledger.program_for(session, brand_id)
    account = await ledger.account_for(session, brand_id, member_id=member_id, members=members)
    return await status_of(session, program, account, now)


async def status_of(
    session: AsyncSession, program: Program, account: Account, now: datetime | None = None
) -> TierStatus:
    """`status`, of a program and an account already read."""
    now = now or utcnow()
    member_id = account.member_id
    ladder = await ladder_of(session, program.brand_id)
    window = current_window(program.qualification_window, now)
    spend = await window_spend(session, member_id, window)
    current = ladder.by_id(account.tier_id)
    above = ladder.above(current)
    next_tier = (
        NextTier(
            tier=_summary(above),
            remaining_minor=max(0, above.threshold_minor - spend),
            by=window.ends_at,
        )
        if above is not None
        else None
    )
    keep = (
        await _keep(session, program, current, account.tier_since, spend, now, member_id)
        if current is not None
        else None
    )
    return TierStatus(
        member_id=member_id,
        tier=_summary(current) if current is not None else None,
        since=account.tier_since if current is not None else None,
        currency=program.currency,
        qualification_window=program.qualification_window,
        window_starts_at=window.starts_at,
        window_closes_at=window.ends_at,
        spend_minor=spend,
        next_tier=next_tier,
        keep=keep,
    )


async def _keep(
    session: AsyncSession,
    program: Program,
    tier: Tier,
    since: datetime | None,
    spend: int,
    now: datetime,
    member_id: uuid.UUID,
) -> KeepTier:
    grace = timedelta(days=tier.grace_days)
    threshold = tier.threshold_minor
    if tier.downgrade_rule == DowngradeRule.NEVER:
        return KeepTier(
            rule=tier.downgrade_rule,
            threshold_minor=threshold,
            spend_minor=spend,
            remaining_minor=0,
            by=None,
            reviewed_at=None,
        )
    if tier.downgrade_rule == DowngradeRule.SPEND_DROPS:
        review = next_review(max(now, (since or now) + grace))
        return KeepTier(
            rule=tier.downgrade_rule,
            threshold_minor=threshold,
            spend_minor=spend,
            remaining_minor=max(0, threshold - spend),
            by=review,
            reviewed_at=review,
        )
    if program.qualification_window == QualificationWindow.CALENDAR_YEAR:
        closes = _new_year(now.year + 1)
        keep_spend = spend
    else:
        closes = _next_anniversary(since or now, now)
        keep_spend = await TierRepository(session).spend(member_id, add_years(closes, -1), closes)
    return KeepTier(
        rule=tier.downgrade_rule,
        threshold_minor=threshold,
        spend_minor=keep_spend,
        remaining_minor=max(0, threshold - keep_spend),
        by=closes,
        reviewed_at=closes + grace,
    )


# --- Tier CRUD ------------------------------------------------------------------------------


async def list_tiers(session: AsyncSession, brand_id: uuid.UUID) -> Sequence[Tier]:
    return await TierRepository(session).ladder(brand_id)


async def get_tier(session: AsyncSession, brand_id: uuid.UUID, tier_id: uuid.UUID) -> Tier:
    tier = await TierRepository(session).get(brand_id, tier_id)
    if tier is None:
        raise TierNotFound(f"No tier {tier_id} in this brand.")
    return tier


async def _locked_ladder(session: AsyncSession, brand_id: uuid.UUID) -> Sequence[Tier]:
    """The brand's tiers, with the program row locked so tier edits run one at a time (and
    marked changed, so cached copies of the ladder are reloaded)."""
    repository = TierRepository(session)
    if await ledger.reference_changed(session, brand_id) is None:
        raise ProgramNotConfigured(
            "This brand has no loyalty program yet: configure it with PUT /rewards/v1/program."
        )
    return await repository.ladder(brand_id)


def _check_ladder(
    others: Sequence[Tier], *, name: str, rank: int, threshold: int, program: Program | None
) -> None:
    for other in others:
        if other.rank == rank:
            raise DuplicateTierRank(
                f"Tier {other.name!r} already has rank {rank}: pick another rank, or move that "
                "tier first."
            )
        if other.name == name:
            raise DuplicateTierName(f"A tier named {name!r} already exists: pick another name.")
    currency = program.currency if program is not None else ""
    for other in others:
        lower, higher = (other, None) if other.rank < rank else (None, other)
        if lower is not None and lower.threshold_minor >= threshold:
            raise TierThresholdsOutOfOrder(
                f"Rank {rank} needs a threshold above {lower.name!r} (rank {lower.rank}, "
                f"{format_minor(lower.threshold_minor, currency)}); got "
                f"{format_minor(threshold, currency)}."
            )
        if higher is not None and higher.threshold_minor <= threshold:
            raise TierThresholdsOutOfOrder(
                f"Rank {rank} needs a threshold below {higher.name!r} (rank {higher.rank}, "
                f"{format_minor(higher.threshold_minor, currency)}); got "
                f"{format_minor(threshold, currency)}."
            )


async def create_tier(session: AsyncSession, brand_id: uuid.UUID, payload: TierCreate) -> Tier:
    others = await _locked_ladder(session, brand_id)
    program = await ledger.program_for(session, brand_id)
    _check_ladder(
        others,
        name=payload.name,
        rank=payload.rank,
        threshold=payload.threshold_minor,
        program=program,
    )
    tier = Tier(id=new_id(), brand_id=brand_id, created_at=utcnow(), **payload.model_dump())
    await TierRepository(session).add(tier)
    return tier


async def update_tier(
    session: AsyncSession, brand_id: uuid.UUID, tier_id: uuid.UUID, payload: TierUpdate
) -> Tier:
    ladder = await _locked_ladder(session, brand_id)
    tier = next((t for t in ladder if t.id == tier_id), None)
    if tier is None:
        raise TierNotFound(f"No tier {tier_id} in this brand.")
    changes = payload.model_dump(exclude_unset=True)
    program = await ledger.program_for(session, brand_id)
    _check_ladder(
        [t for t in ladder if t.id != tier_id],
        name=changes.get("name", tier.name),
        rank=changes.get("rank", tier.rank),
        threshold=changes.get("threshold_minor", tier.threshold_minor),
        program=program,
    )
    for field, value in changes.items():
        setattr(tier, field, value)
    await TierRepository(session).save(tier)
    return tier


async def delete_tier(session: AsyncSession, brand_id: uuid.UUID, tier_id: uuid.UUID) -> None:
    ladder = await _locked_ladder(session, brand_id)
    tier = next((t for t in ladder if t.id == tier_id), None)
    if tier is None:
        raise TierNotFound(f"No tier {tier_id} in this brand.")
    repository = TierRepository(session)
    # Lock the row before checking: a purchase moving a member into this tier holds it (FOR KEY
    # SHARE) until it commits, so the check below then sees that member.
    await repository.get(brand_id, tier_id, for_update=True)
    if await repository.in_use(tier_id):
        raise TierInUse(
            f"{tier.name!r} is held or was held by members, or perks, campaigns or drops name "
            "it: it stays. Rename it or change its threshold instead."
        )
    await repository.delete(tier)
