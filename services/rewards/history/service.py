"""Bulk loading of purchase history: what the online path would have left, written with COPY.

**What a load stands for.** Each purchase is replayed as if `POST /rewards/v1/purchases` had
recorded it *when it happened* (the clock at its `occurred_at`), with the scheduled jobs having
run at their times in between, up to `now`:

- the purchase: points from `earning.service.breakdown_for()` (the member's tier at that moment,
  the rules, the campaigns live then), into `pending` for `program.pending_days` (the return
  window; with the clock at `occurred_at` it is always open) or into `available` with a lot; the
  purchase row and `purchase.recorded`; an upgrade at once when the window spend (as of that
  moment) reaches a higher tier, exactly as `tiers.upgrade_after_purchase` (entry tier at the
  first purchase, several ranks at once);
- the release job (`rewards.release_pending_purchases`, every 5 minutes): at the first run at or
  after `pending_until`, the pair of `release` entries, a lot, and the purchase flipped to
  `available`; a purchase whose window closes after `now` stays pending, and the real job
  releases it later;
- the expiry job (`rewards.expire_points`, daily 02:05 UTC): `days_after_earning` lots due by a
  run expire at that run (entries dated the lot's `expires_at`); under `inactivity` the whole
  available balance expires at the first run after the deadline, as `expiry.service` does;
- the reminder job (`rewards.remind_expiring_points`, daily 02:35): `points.expiring_soon` for
  lots (or the inactivity deadline) within `expiry_reminder_days`, once, marking
  `lots.reminded_at` / `accounts.inactivity_reminded_for`;
- the tier review (`rewards.review_tiers`, daily 04:07): every run at which the member's tier
  could be judged differently (a window closing, a grace period ending, a purchase leaving a
  rolling window) is evaluated with `tiers.judged_window` / `downgrade_target`; other days give
  the same answer, so they are skipped, not simulated.

Run times come from the jobs' own schedules (`JobSpec.cron`). At one instant, jobs run before a
purchase, and in the order release, expiry, reminders, review. The entries' `occurred_at` are
what the jobs would write: the run time for releases, reviews and reminders.

**What is shared with the online path.** The breakdown (calculator and reference snapshot), the
pending window, the ledger's balance rules, lots and event shapes (`ledger.service`:
`balance_change`, `spendable`, `lot_expiry`, `points_event`, `release_movements`), the purchase
event and release reason (`purchases.service`), tier windows, targets, reasons and event
(`tiers.service`), expiry reasons, deadlines and reminder event (`expiry.service`). Only the
bookkeeping (balances, lots, spend) is kept in memory instead of in rows.

**Batches.** The caller commits per batch; a batch must hold *all* purchases of its members (a
member's history is replayed from an empty account). Members who already have purchases, points
or a tier are refused (`HistoryNotEmpty`): history comes first, then live traffic. Everything is
checked before anything is written, so a refused batch writes nothing.
"""

from __future__ import annotations

import uuid
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.kernel.events import Event
from services.kernel.ids import new_id
from services.kernel.jobs import JobSpec
from services.rewards.earning import calculator
from services.rewards.earning import service as earning
from services.rewards.earning.reference import Reference, current_reference
from services.rewards.errors import (
    HistoryNotEmpty,
    MemberNotFound,
    OrderIdReused,
    PurchaseInFuture,
)
from services.rewards.expiry import service as expiry
from services.rewards.expiry.tasks import EXPIRE_POINTS, REMIND_EXPIRING_POINTS
from services.rewards.history.repository import AccountRecord, HistoryRepository
from services.rewards.history.schemas import HistoricPurchase, HistoryReport
from services.rewards.ledger import service as ledger
from services.rewards.ledger.repository import Balances
from services.rewards.ledger.service import Movement
from services.rewards.models import (
    OUTBOX,
    Bucket,
    DowngradeRule,
    EntryKind,
    ExpiryPolicy,
    Program,
    QualificationWindow,
    Tier,
)
from services.rewards.purchases import service as purchases
from services.rewards.purchases.repository import SOURCE_PURCHASE
from services.rewards.purchases.tasks import RELEASE_PENDING_PURCHASES
from services.rewards.tiers import service as tiers
from services.rewards.tiers.tasks import REVIEW_TIERS

_TICK = timedelta(microseconds=1)  # the clock's resolution: "strictly after"
_DAY = timedelta(days=1)
_ERASED = "erased"


# --- When the jobs run ----------------------------------------------------------------------


class _Runs:
    """The run times of a daily-or-more-often job, from its cron schedule: first at or after."""

    def __init__(self, job: JobSpec) -> None:
        schedule = job.cron
        assert schedule is not None, f"{job.name} has no schedule"
        if schedule.month is not None or schedule.day is not None or schedule.weekday is not None:
            raise NotImplementedError(f"{job.name}: only daily schedules are replayed")

        def values(value: int | frozenset[int] | None, every: int) -> list[int]:
            if value is None:
                return list(range(every))
            return sorted(value) if isinstance(value, frozenset) else [value]

        self._offsets = [
            timedelta(hours=h, minutes=m, seconds=s)
            for h in values(schedule.hour, 24)
            for m in values(schedule.minute, 60)
            for s in values(schedule.second, 60)
        ]

    def at_or_after(self, moment: datetime) -> datetime:
        day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        index = bisect_left(self._offsets, moment - day)
        if index < len(self._offsets):
            return day + self._offsets[index]
        return day + _DAY + self._offsets[0]


_RELEASE = _Runs(RELEASE_PENDING_PURCHASES)
_EXPIRE = _Runs(EXPIRE_POINTS)
_REMIND = _Runs(REMIND_EXPIRING_POINTS)
_REVIEW = _Runs(REVIEW_TIERS)

Job = Literal["release", "expire", "remind", "review"]
_JOBS: tuple[Job, ...] = ("release", "expire", "remind", "review")  # order at one instant


# --- One member's replay ----------------------------------------------------------------------


@dataclass(slots=True)
class _Lot:
    id: uuid.UUID
    entry_id: uuid.UUID
    points: int
    remaining: int
    earned_at: datetime
    expires_at: datetime | None
    reminded_at: datetime | None = None


@dataclass(slots=True)
class _Pending:
    release_at: datetime  # the release job's first run at or after pending_until
    order_id: str
    points: int
    row: list[object]  # the purchase's record: its bucket flips when released


@dataclass(slots=True)
class _Out:
    """Everything one batch writes, as records in the repository's column orders."""

    purchases: list[list[object]] = field(default_factory=list)
    entries: list[tuple[object, ...]] = field(default_factory=list)
    lots: list[_Lot] = field(default_factory=list)
    lot_members: list[uuid.UUID] = field(default_factory=list)
    tier_changes: list[tuple[object, ...]] = field(default_factory=list)
    accounts: list[AccountRecord] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    points_earned: int = 0
    points_expired: int = 0


@dataclass(frozen=True, slots=True)
class _Context:
    brand_id: uuid.UUID
    reference: Reference
    rates: calculator.Rates
    now: datetime

    @property
    def program(self) -> Program:
        return self.reference.program


class _Replay:
    """A member's account replayed in memory, happening by happening, in time order."""

    def __init__(
        self, context: _Context, out: _Out, member_id: uuid.UUID, created_at: datetime
    ) -> None:
        self.context = context
        self.out = out
        self.member_id = member_id
        self.created_at = created_at
        self.available = 0
        self.pending = 0
        self.lifetime = 0
        self.last_activity_at: datetime | None = None
        self.tier: Tier | None = None
        self.tier_since: datetime | None = None
        self.inactivity_reminded_for: datetime | None = None
        self.lots: list[_Lot] = []
        self.first_open = 0  # lots before it are empty (spent and expired oldest first)
        self.first_to_remind = 0  # lots before it are reminded, empty, or never will be
        self.waiting: deque[_Pending] = deque()
        self.spends: list[tuple[datetime, int]] = []  # (occurred_at, amount) recorded so far
        # Happenings at one instant: jobs may follow other jobs, never a purchase (see the doc).
        self.floor = datetime.min.replace(tzinfo=UTC)
        self.last_run: dict[Job, datetime] = dict.fromkeys(_JOBS, self.floor)

    # --- the loop ---

    def run(self, bought: Sequence[HistoricPurchase]) -> None:
        now = self.context.now
        index = 0
        while True:
            job, at = self._next_job()
            next_purchase = bought[index].occurred_at if index < len(bought) else None
            if job is not None and at <= now and (next_purchase is None or at <= next_purchase):
                self.last_run[job] = at
                self.floor = at
                getattr(self, f"_{job}")(at)
            elif next_purchase is not None:
                self._purchase(bought[index])
                index += 1
                self.floor = next_purchase + _TICK
            else:
                break
        self.out.accounts.append(
            (
                self.member_id,
                self.tier.id if self.tier is not None else None,
                self.tier_since,
                self.available,
                self.pending,
                self.lifetime,
                self.last_activity_at,
                self.inactivity_reminded_for,
            )
        )

    def _next_job(self) -> tuple[Job | None, datetime]:
        best: Job | None = None
        best_at = datetime.max.replace(tzinfo=UTC)
        for job in _JOBS:
            at = getattr(self, f"_when_{job}")()
            if at is not None and at < best_at:
                best, best_at = job, at
        return best, best_at

    def _not_before(self, job: Job, moment: datetime) -> datetime:
        """The earliest moment a run of `job` may still happen for this member's state."""
        return max(moment, self.floor, self.last_run[job] + _TICK)

    # --- ledger bookkeeping (the rules are ledger.service's) ---

    def _post(self, movement: Movement, from_lot: _Lot | None = None) -> None:
        context = self.context
        change = ledger.balance_change(movement)
        if change.floor is not None and self.available + change.available < change.floor:
            raise AssertionError("a replayed movement overdraws: the replay is wrong")
        entry_id = new_id()
        self.out.entries.append(
            (
                entry_id,
                context.brand_id,
                self.member_id,
                movement.kind.value,
                movement.bucket.value,
                movement.points,
                movement.reason,
                movement.source_type,
                movement.source_id,
                movement.occurred_at,
            )
        )
        self.available += change.available
        self.pending += change.pending
        self.lifetime += change.lifetime
        touched = change.touch_activity_at
        if touched is not None and (
            self.last_activity_at is None or touched > self.last_activity_at
        ):
            self.last_activity_at = touched
        if movement.bucket == Bucket.AVAILABLE and movement.points > 0:
            points = ledger.spendable(movement.points, self.available)
            if points:
                lot = _Lot(
                    id=new_id(),
                    entry_id=entry_id,
                    points=points,
                    remaining=points,
                    earned_at=movement.occurred_at,
                    expires_at=ledger.lot_expiry(context.program, movement.occurred_at),
                )
                self.lots.append(lot)
                self.out.lots.append(lot)
                self.out.lot_members.append(self.member_id)
        elif movement.bucket == Bucket.AVAILABLE:
            self._take(-movement.points, from_lot)
        self.out.events.append(
            ledger.points_event(
                context.brand_id, movement, entry_id, Balances(self.available, self.pending)
            )
        )

    def _take(self, points: int, first: _Lot | None) -> None:
        """Spends from the named lot first, then the oldest (`take_from_lots`)."""
        left = points
        if first is not None:
            taken = min(left, first.remaining)
            first.remaining -= taken
            left -= taken
        index = self.first_open
        while left > 0 and index < len(self.lots):
            lot = self.lots[index]
            taken = min(left, lot.remaining)
            lot.remaining -= taken
            left -= taken
            index += 1
        while self.first_open < len(self.lots) and self.lots[self.first_open].remaining == 0:
            self.first_open += 1

    # --- a purchase (purchases.service.record_purchase, with the clock at occurred_at) ---

    def _purchase(self, bought: HistoricPurchase) -> None:
        context = self.context
        program = context.program
        at = bought.occurred_at
        breakdown = earning.breakdown_for(
            context.reference,
            context.rates,
            order_id=bought.order_id,
            amount_minor=bought.amount_minor,
            lines=bought.lines,
            occurred_at=at,
            tier=self.tier,
            member=True,
        )
        points = breakdown.points
        pending_until = earning.pending_until(program, at, at) if points > 0 else None
        bucket = Bucket.PENDING if pending_until is not None else Bucket.AVAILABLE
        purchase_id = new_id()
        lines = [
            {
                "sku": line.sku,
                "category": line.category,
                "quantity": line.quantity,
                "amount_minor": line.amount_minor,
            }
            for line in bought.lines
        ]
        row: list[object] = [
            purchase_id,
            context.brand_id,
            self.member_id,
            bought.order_id,
            bought.amount_minor,
            bought.currency,
            orjson.dumps(lines).decode(),
            points,
            bucket.value,
            pending_until,
            0,
            0,
            breakdown.model_dump_json(),
            at,
            at,
        ]
        self.out.purchases.append(row)
        self.out.points_earned += points
        if points > 0:
            self._post(
                Movement(
                    member_id=self.member_id,
                    kind=EntryKind.EARN,
                    bucket=bucket,
                    points=points,
                    reason=breakdown.reason,
                    source_type=SOURCE_PURCHASE,
                    source_id=bought.order_id,
                    occurred_at=at,
                )
            )
        if pending_until is not None:
            self.waiting.append(
                _Pending(_RELEASE.at_or_after(pending_until), bought.order_id, points, row)
            )
        self.out.events.append(
            purchases.recorded_event(
                context.brand_id,
                purchase_id=purchase_id,
                member_id=self.member_id,
                order_id=bought.order_id,
                amount_minor=bought.amount_minor,
                currency=bought.currency,
                lines=lines,
                points=points,
                bucket=bucket,
                occurred_at=at,
            )
        )
        self.spends.append((at, bought.amount_minor))
        self._upgrade(bought.order_id, at)

    # --- tiers (tiers.service: upgrade_after_purchase, review_tiers) ---

    def _spend(self, starts_at: datetime, ends_at: datetime | None) -> int:
        return sum(
            amount
            for occurred_at, amount in self.spends
            if occurred_at >= starts_at and (ends_at is None or occurred_at < ends_at)
        )

    def _upgrade(self, order_id: str, at: datetime) -> None:
        ladder = self.context.reference.ladder
        if not ladder:
            return
        program = self.context.program
        window = tiers.current_window(program.qualification_window, at)
        spend = self._spend(window.starts_at, window.ends_at)
        target = tiers.upgrade_target(ladder, self.tier, spend)
        if target is not None:
            reason = tiers.upgrade_reason(program, window, target, spend, order_id)
            self._change(target, reason, spend, at, "up")

    def _change(
        self, target: Tier, reason: str, spend: int, at: datetime, direction: Literal["up", "down"]
    ) -> None:
        current = self.tier
        brand_id = self.context.brand_id
        self.out.tier_changes.append(
            (
                new_id(),
                brand_id,
                self.member_id,
                current.id if current is not None else None,
                target.id,
                reason,
                spend,
                at,
            )
        )
        self.out.events.append(
            tiers.changed_event(
                brand_id,
                self.member_id,
                current,
                target,
                reason=reason,
                spend=spend,
                now=at,
                direction=direction,
            )
        )
        self.tier, self.tier_since = target, at

    def _when_review(self) -> datetime | None:
        """The next review run whose judgement may differ from the last one's.

        A review judges the tier on a window's spend; between the moments listed here neither
        the window nor the spend in it can fall (purchases only add spend), so a run that keeps
        the tier at one of them would keep it until the next.
        """
        tier, since = self.tier, self.tier_since
        ladder = self.context.reference.ladder
        lowest = ladder.lowest
        if (
            tier is None
            or since is None
            or tier.downgrade_rule == DowngradeRule.NEVER
            or (lowest is not None and tier.rank <= lowest.rank)  # nowhere lower to go
        ):
            return None
        kind = self.context.program.qualification_window
        grace = timedelta(days=tier.grace_days)
        now = self.context.now
        moments: list[datetime] = []
        if tier.downgrade_rule == DowngradeRule.SPEND_DROPS:
            moments.append(since + grace)
            if kind == QualificationWindow.CALENDAR_YEAR:
                moments += [_new_year(year) for year in range(since.year + 1, now.year + 1)]
            else:
                for occurred_at, _ in self.spends:
                    leaves = tiers.add_years(occurred_at, 1)  # out of the rolling window
                    moments += [leaves - _DAY, leaves, leaves + _DAY]
        elif kind == QualificationWindow.CALENDAR_YEAR:
            moments += [_new_year(year) + grace for year in range(since.year + 1, now.year + 2)]
        else:
            years = 1
            while (anniversary := tiers.add_years(since, years)) <= now:
                moments.append(anniversary + grace)
                years += 1
        last = self.last_run["review"]
        runs = [
            _REVIEW.at_or_after(self._not_before("review", moment))
            for moment in moments
            if moment > last
        ]
        return min(runs, default=None)

    def _review(self, at: datetime) -> None:
        tier, since = self.tier, self.tier_since
        assert tier is not None
        program = self.context.program
        window = tiers.judged_window(program.qualification_window, tier, since, at)
        if window is None:
            return
        spend = self._spend(window.starts_at, window.ends_at)
        target = tiers.downgrade_target(self.context.reference.ladder, tier, spend)
        if target is not None:
            self._change(
                target, tiers.review_reason(program, window, tier, spend), spend, at, "down"
            )

    # --- releases (purchases.service.release_due) ---

    def _when_release(self) -> datetime | None:
        # Windows have one length, so the first purchase waiting is the first due.
        return self.waiting[0].release_at if self.waiting else None

    def _release(self, at: datetime) -> None:
        while self.waiting and self.waiting[0].release_at <= at:
            due = self.waiting.popleft()
            for movement in ledger.release_movements(
                member_id=self.member_id,
                points=due.points,
                reason=purchases.release_reason(due.order_id, due.points),
                source_type=SOURCE_PURCHASE,
                source_id=due.order_id,
                occurred_at=at,
            ):
                self._post(movement)
            due.row[8] = Bucket.AVAILABLE.value  # points_bucket, as `mark_released`

    # --- expiry (expiry.service.expire_points) ---

    def _deadline(self, months: int) -> datetime:
        return expiry.deadline_after(self.last_activity_at, self.created_at, months)

    def _when_expire(self) -> datetime | None:
        program = self.context.program
        if program.expiry_policy == ExpiryPolicy.DAYS_AFTER_EARNING:
            # Lots expire in the order they were earned (one expiry length), so the first open
            # lot with a date is the first due.
            for lot in self.lots[self.first_open :]:
                if lot.remaining > 0 and lot.expires_at is not None:
                    return _EXPIRE.at_or_after(self._not_before("expire", lot.expires_at))
            return None
        if program.expiry_policy == ExpiryPolicy.INACTIVITY and program.inactivity_months:
            if self.available <= 0:
                return None
            deadline = self._deadline(program.inactivity_months)
            return _EXPIRE.at_or_after(self._not_before("expire", deadline))
        return None

    def _expire(self, at: datetime) -> None:
        program = self.context.program
        if program.expiry_policy == ExpiryPolicy.DAYS_AFTER_EARNING:
            due = sorted(
                (
                    lot
                    for lot in self.lots[self.first_open :]
                    if lot.remaining > 0 and lot.expires_at is not None and lot.expires_at <= at
                ),
                key=lambda lot: (lot.expires_at, lot.earned_at, lot.id),
            )
            budget = max(self.available, 0)
            for lot in due:
                taken = min(lot.remaining, budget)
                if taken <= 0:
                    break
                assert lot.expires_at is not None
                self._post(
                    Movement(
                        member_id=self.member_id,
                        kind=EntryKind.EXPIRE,
                        bucket=Bucket.AVAILABLE,
                        points=-taken,
                        reason=expiry.lot_expiry_reason(lot.earned_at),
                        source_type="lot",
                        source_id=str(lot.id),
                        occurred_at=lot.expires_at,
                    ),
                    from_lot=lot,
                )
                budget -= taken
                self.out.points_expired += taken
            return
        months = program.inactivity_months
        assert months is not None
        deadline = self._deadline(months)
        if deadline > at or self.available <= 0:
            return
        self.out.points_expired += self.available
        self._post(
            Movement(
                member_id=self.member_id,
                kind=EntryKind.EXPIRE,
                bucket=Bucket.AVAILABLE,
                points=-self.available,
                reason=expiry.inactivity_reason(months),
                source_type="inactivity",
                source_id=deadline.date().isoformat(),
                occurred_at=deadline,
            )
        )

    # --- reminders (expiry.service.remind_expiring_points) ---

    def _when_remind(self) -> datetime | None:
        program = self.context.program
        days = timedelta(days=program.expiry_reminder_days)
        if program.expiry_reminder_days <= 0:
            return None
        if program.expiry_policy == ExpiryPolicy.DAYS_AFTER_EARNING:
            while self.first_to_remind < len(self.lots):
                lot = self.lots[self.first_to_remind]
                if lot.remaining > 0 and lot.reminded_at is None and lot.expires_at is not None:
                    run = _REMIND.at_or_after(self._not_before("remind", lot.expires_at - days))
                    if run < lot.expires_at:
                        return run
                # Reminded, empty, or expiring before any run left can announce it: never again.
                self.first_to_remind += 1
            return None
        if program.expiry_policy == ExpiryPolicy.INACTIVITY and program.inactivity_months:
            deadline = self._deadline(program.inactivity_months)
            if self.available <= 0 or self.inactivity_reminded_for == deadline:
                return None
            run = _REMIND.at_or_after(self._not_before("remind", deadline - days))
            return run if run < deadline else None
        return None

    def _remind(self, at: datetime) -> None:
        program = self.context.program
        until = at + timedelta(days=program.expiry_reminder_days)
        brand_id = self.context.brand_id
        if program.expiry_policy == ExpiryPolicy.DAYS_AFTER_EARNING:
            due = sorted(
                (
                    lot
                    for lot in self.lots[self.first_to_remind :]
                    if lot.remaining > 0
                    and lot.reminded_at is None
                    and lot.expires_at is not None
                    and at < lot.expires_at <= until
                ),
                key=lambda lot: (lot.expires_at, lot.id),
            )
            for lot in due:
                assert lot.expires_at is not None
                lot.reminded_at = at
                self.out.events.append(
                    expiry.reminder_event(
                        brand_id, self.member_id, lot.remaining, lot.expires_at, at
                    )
                )
            return
        months = program.inactivity_months
        assert months is not None
        deadline = self._deadline(months)
        if at < deadline <= until and self.available > 0:
            self.inactivity_reminded_for = deadline
            self.out.events.append(
                expiry.reminder_event(brand_id, self.member_id, self.available, deadline, at)
            )


def _new_year(year: int) -> datetime:
    return datetime(year, 1, 1, tzinfo=UTC)


# --- The load -------------------------------------------------------------------------------


def _checked(
    context: _Context, purchases_in: Iterable[HistoricPurchase]
) -> dict[uuid.UUID, list[HistoricPurchase]]:
    """The purchases by member, each member's in time order; refuses what the API would, and
    what has not happened yet."""
    program = context.program
    by_member: dict[uuid.UUID, list[HistoricPurchase]] = {}
    order_ids: set[str] = set()
    currencies: set[str] = set()
    for bought in purchases_in:
        if bought.occurred_at.tzinfo is None:
            raise ValueError(f"Order {bought.order_id!r}: occurred_at must be timezone-aware.")
        occurred_at = bought.occurred_at.astimezone(UTC)
        if occurred_at > context.now:
            raise PurchaseInFuture(
                f"Order {bought.order_id!r} is dated {occurred_at.isoformat()}, after now "
                f"({context.now.isoformat()}): history holds what has happened."
            )
        if bought.currency not in currencies:
            earning.rates_for(program, bought.currency)  # refuses another currency
            currencies.add(bought.currency)
        if bought.amount_minor <= 0:
            raise ValueError(f"Order {bought.order_id!r}: amount_minor must be positive.")
        earning.check_lines(bought.amount_minor, bought.lines)
        if bought.order_id in order_ids:
            raise OrderIdReused(
                f"Order {bought.order_id!r} appears twice in this history: an order id names "
                "one purchase."
            )
        order_ids.add(bought.order_id)
        if bought.occurred_at.tzinfo is not UTC:
            # Stored and announced in UTC, as the API's `as_utc` does.
            bought = replace(bought, occurred_at=occurred_at)
        by_member.setdefault(bought.member_id, []).append(bought)
    for bought_by_one in by_member.values():
        bought_by_one.sort(key=lambda p: p.occurred_at)  # stable: input order at one instant
    return by_member


async def load_history(
    session: AsyncSession,
    brand_id: uuid.UUID,
    purchases_in: Iterable[HistoricPurchase],
    *,
    now: datetime | None = None,
) -> HistoryReport:
    """Loads these members' purchase history (all of it, for every member in the batch) as the
    online path and its jobs would have left it by `now` (default: the clock). Never commits.

    Refuses, writing nothing: a brand without a program (`ProgramNotConfigured`), a member
    without an account or erased (`MemberNotFound`) or with any history already
    (`HistoryNotEmpty`), another currency (`CurrencyMismatch`, `UnknownCurrency`), lines that do
    not add up (`LinesDoNotAddUp`), an order id twice or already in the brand (`OrderIdReused`),
    a purchase after `now` (`PurchaseInFuture`), a naive time or a non-positive amount
    (`ValueError`).
    """
    moment = (now or utcnow()).astimezone(UTC)
    reference = await current_reference(session, brand_id)
    program = reference.program
    rates = earning.rates_for(program, program.currency)
    context = _Context(brand_id, reference, rates, moment)
    by_member = _checked(context, purchases_in)
    if not by_member:
        return HistoryReport(
            purchases=0, ledger_entries=0, points_earned=0, tier_changes=0, events=0
        )

    repository = HistoryRepository(session)
    accounts = {
        account.member_id: account
        for account in await repository.lock_accounts(brand_id, sorted(by_member))
    }
    for member_id in by_member:
        account = accounts.get(member_id)
        if account is None or account.member_status == _ERASED:
            raise MemberNotFound(f"No member {member_id} in this brand.")
        if account.has_history:
            raise HistoryNotEmpty(
                f"Member {member_id} already has purchases, points or a tier: load a member's "
                "history before anything else happens to them, all of it in one batch."
            )
    order_ids = [p.order_id for bought in by_member.values() for p in bought]
    taken = await repository.taken_order_ids(brand_id, order_ids)
    if taken:
        raise OrderIdReused(
            f"{len(taken)} order id(s) of this history are already recorded in this brand "
            f"(e.g. {sorted(taken)[0]!r}): an order id names one purchase."
        )

    out = _Out()
    for member_id in sorted(by_member):
        _Replay(context, out, member_id, accounts[member_id].created_at).run(by_member[member_id])

    await repository.write(
        purchases=out.purchases,
        entries=out.entries,
        lots=[
            (
                lot.id,
                brand_id,
                member_id,
                lot.entry_id,
                lot.points,
                lot.remaining,
                lot.earned_at,
                lot.expires_at,
                lot.reminded_at,
            )
            for lot, member_id in zip(out.lots, out.lot_members, strict=True)
        ],
        tier_changes=out.tier_changes,
    )
    await repository.update_accounts(brand_id, out.accounts)
    events = await OUTBOX.copy_many(session, out.events)
    return HistoryReport(
        purchases=len(out.purchases),
        ledger_entries=len(out.entries),
        points_earned=out.points_earned,
        tier_changes=len(out.tier_changes),
        events=events,
        members=len(by_member),
        lots=len(out.lots),
        points_expired=out.points_expired,
    )
