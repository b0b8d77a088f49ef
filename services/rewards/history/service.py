"""Bulk loading of purchase history (purchases, their returns, redemptions): what the online
path would have left, written with COPY.

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

Among the purchases, each member's own happenings, at their times:

- a return (`purchases.service.record_return`): the points its share of the purchase earned
  (`reversed_so_far`) are reversed from `pending` while the purchase's points are pending (the
  release then releases only what is left), else from `available`, the balance allowed below
  zero (later earnings pay it back before opening a lot); the purchase's qualifying spend falls,
  which only the next review acts on; the return row and `purchase.returned`;
- a redemption (`perks.service.redeem`, as the member asks it): the API's checks in its order
  (suspended member, validity window, tier, per-member limit, available points), and when they
  pass, the redemption row, the points spent from the oldest lots and `perk.redeemed`. One the
  API would refuse at that moment writes nothing and is reported (`HistoryReport.refused`).
  Perks whose redemptions depend on other members (limited stock, a code pool) or are never
  redeemed directly (drops, birthday gifts) refuse the load.

Run times come from the jobs' own schedules (`JobSpec.cron`). At one instant, jobs run before a
member's happenings, and in the order release, expiry, reminders, review; then come purchases,
returns, redemptions (of one kind, in input order). The entries' `occurred_at` are what the jobs
would write: the run time for releases, reviews and reminders.

**What is shared with the online path.** The breakdown (calculator and reference snapshot), the
pending window, the ledger's balance rules, lots and event shapes (`ledger.service`:
`balance_change`, `spendable`, `lot_expiry`, `points_event`, `release_movements`), the purchase
event and release reason, the return's checks, points, row, ledger line and event
(`purchases.service`), the redemption's checks, row, ledger line and event (`perks.service`),
tier windows, targets, reasons and event (`tiers.service`), expiry reasons, deadlines and
reminder event (`expiry.service`). Only the bookkeeping (balances, lots, spend, redemptions per
perk) is kept in memory instead of in rows.

**Batches.** The caller commits per batch; a batch must hold *all* purchases, returns and
redemptions of its members (a member's history is replayed from an empty account). Members who
already have purchases, points or a tier are refused (`HistoryNotEmpty`): history comes first,
then live traffic. Everything is checked before anything is written, so a refused batch writes
nothing.
"""

from __future__ import annotations

import uuid
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.kernel.errors import KinfolkError
from services.kernel.events import Event
from services.kernel.ids import new_id
from services.kernel.jobs import JobSpec
from services.rewards.earning import calculator
from services.rewards.earning import service as earning
from services.rewards.earning.reference import Reference, current_reference
from services.rewards.earning.schemas import Breakdown
from services.rewards.errors import (
    HistoryInFuture,
    HistoryNotEmpty,
    MemberNotFound,
    OrderIdReused,
    PerkNotFound,
    PerkNotReplayable,
    PurchaseInFuture,
    PurchaseNotFound,
    ReturnIdReused,
)
from services.rewards.expiry import service as expiry
from services.rewards.expiry.tasks import EXPIRE_POINTS, REMIND_EXPIRING_POINTS
from services.rewards.history.repository import AccountRecord, HistoryRepository
from services.rewards.history.schemas import (
    HistoricLine,
    HistoricPurchase,
    HistoricRedemption,
    HistoricReturn,
    HistoryReport,
    RefusedRedemption,
)
from services.rewards.ledger import service as ledger
from services.rewards.ledger.repository import Balances
from services.rewards.ledger.service import Movement
from services.rewards.models import (
    OUTBOX,
    Bucket,
    DowngradeRule,
    EntryKind,
    ExpiryPolicy,
    Perk,
    PerkKind,
    Program,
    QualificationWindow,
    Tier,
)
from services.rewards.perks import service as perks
from services.rewards.purchases import service as purchases
from services.rewards.purchases.repository import SOURCE_PURCHASE
from services.rewards.purchases.tasks import RELEASE_PENDING_PURCHASES
from services.rewards.tiers import service as tiers
from services.rewards.tiers.tasks import REVIEW_TIERS

_TICK = timedelta(microseconds=1)  # the clock's resolution: "strictly after"
_NEVER = datetime.max.replace(tzinfo=UTC)
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
class _Bought:
    """A purchase that has returns in this load: what they need of it."""

    purchase_id: uuid.UUID
    bought: HistoricPurchase
    points: int
    breakdown: Breakdown
    row: list[object]  # the purchase's record: returned_minor and returned_points grow
    spend_index: int  # its (occurred_at, amount) in the replay's spends
    returns: list[purchases.Returned] = field(default_factory=list)
    returned_minor: int = 0
    returned_points: int = 0


@dataclass(frozen=True, slots=True)
class _Return:
    """A checked return: its amount and lines as the API stores them, and its member."""

    member_id: uuid.UUID
    order_id: str
    return_id: str
    occurred_at: datetime
    amount_minor: int
    lines: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class _Redemption:
    """A checked redemption: the perk it asks for."""

    wish: HistoricRedemption
    perk: Perk

    @property
    def occurred_at(self) -> datetime:
        return self.wish.occurred_at


_Happening = HistoricPurchase | _Return | _Redemption
# At one instant: purchases, then returns (of them, maybe), then redemptions (of their points).
_RANK: dict[type, int] = {HistoricPurchase: 0, _Return: 1, _Redemption: 2}


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
    redemptions: list[tuple[object, ...]] = field(default_factory=list)
    returns: list[tuple[object, ...]] = field(default_factory=list)
    refused: list[RefusedRedemption] = field(default_factory=list)
    points_earned: int = 0
    points_expired: int = 0
    points_redeemed: int = 0
    points_reversed: int = 0


@dataclass(frozen=True, slots=True)
class _ExpiryTerms:
    """The program's expiry settings as plain values: the loop reads them at every step, and an
    ORM row's attributes cost several times a plain object's."""

    days_after_earning: bool  # lot by lot (else inactivity, when `inactivity_months`, or none)
    inactivity_months: int | None  # set only under the inactivity policy
    reminder: timedelta | None  # how long before expiry reminders go out; None: never

    @classmethod
    def of(cls, program: Program) -> _ExpiryTerms:
        inactivity = program.expiry_policy == ExpiryPolicy.INACTIVITY
        return cls(
            days_after_earning=program.expiry_policy == ExpiryPolicy.DAYS_AFTER_EARNING,
            inactivity_months=(program.inactivity_months or None) if inactivity else None,
            reminder=(
                timedelta(days=program.expiry_reminder_days)
                if program.expiry_reminder_days > 0
                else None
            ),
        )


@dataclass(frozen=True, slots=True)
class _Context:
    brand_id: uuid.UUID
    reference: Reference
    rates: calculator.Rates
    now: datetime
    tier_names: dict[uuid.UUID, str]  # for the refusals' messages, as the API words them
    expiry: _ExpiryTerms

    @property
    def program(self) -> Program:
        return self.reference.program


class _Replay:
    """A member's account replayed in memory, happening by happening, in time order."""

    def __init__(
        self,
        context: _Context,
        out: _Out,
        member_id: uuid.UUID,
        created_at: datetime,
        status: str = "active",
    ) -> None:
        self.context = context
        self.out = out
        self.member_id = member_id
        self.created_at = created_at
        self.status = status
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
        # Only for members with returns or redemptions (most have none: kept cheap).
        self.returned: dict[str, _Bought | None] | None = None  # orders with returns
        self.spend_falls: list[datetime] = []  # when returns lowered a window's spend
        self.used: dict[uuid.UUID, int] = {}  # completed redemptions by perk
        # Happenings at one instant: jobs may follow other jobs, never a purchase (see the doc).
        self.floor = datetime.min.replace(tzinfo=UTC)
        self.last_run: dict[Job, datetime] = dict.fromkeys(_JOBS, self.floor)
        self.deadline: datetime | None = None  # the inactivity deadline, for deadline_basis
        self.deadline_basis: tuple[datetime | None, int] | None = None

    # --- the loop ---

    def run(self, happenings: Sequence[_Happening]) -> None:
        """Replays the member's happenings (in time order; see `_RANK` at one instant)."""
        now = self.context.now
        index = 0
        count = len(happenings)
        while True:
            job, at = self._next_job()
            next_at = happenings[index].occurred_at if index < count else None
            if job is not None and at <= now and (next_at is None or at <= next_at):
                self.last_run[job] = at
                self.floor = at
                getattr(self, f"_{job}")(at)
            elif next_at is not None:
                happening = happenings[index]
                if isinstance(happening, HistoricPurchase):
                    self._purchase(happening)
                elif isinstance(happening, _Return):
                    self._return(happening)
                else:
                    self._redeem(happening)
                index += 1
                self.floor = next_at + _TICK
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
        best_at = _NEVER
        for job, when in _WHENS:
            at = when(self)
            if at is not None and at < best_at:
                best, best_at = job, at
        return best, best_at

    def _not_before(self, job: Job, moment: datetime) -> datetime:
        """The earliest moment a run of `job` may still happen for this member's state."""
        return max(moment, self.floor, self.last_run[job] + _TICK)

    # --- ledger bookkeeping (the rules are ledger.service's) ---

    def _post(
        self, movement: Movement, from_lot: _Lot | None = None, *, allow_negative: bool = False
    ) -> None:
        context = self.context
        change = ledger.balance_change(movement, allow_negative=allow_negative)
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
        if self.returned is not None and bought.order_id in self.returned:
            self.returned[bought.order_id] = _Bought(
                purchase_id, bought, points, breakdown, row, len(self.spends)
            )
        self.spends.append((at, bought.amount_minor))
        self._upgrade(bought.order_id, at)

    # --- a return (purchases.service.record_return, with the clock at occurred_at) ---

    def _return(self, back: _Return) -> None:
        assert self.returned is not None
        bought = self.returned[back.order_id]
        assert bought is not None  # checked: the order is this member's, bought before
        purchase = bought.bought
        bought.returns.append(purchases.Returned(back.amount_minor, back.lines))
        after = purchases.reversed_so_far(
            purchase.amount_minor, bought.points, bought.breakdown, bought.returns
        )
        points = max(0, after - bought.returned_points)
        at = back.occurred_at
        row = purchases.new_return(
            self.context.brand_id,
            purchase_id=bought.purchase_id,
            return_id=back.return_id,
            amount_minor=back.amount_minor,
            lines=back.lines,
            points_reversed=points,
            occurred_at=at,
            created_at=at,
        )
        self.out.returns.append(
            (
                row.id,
                row.brand_id,
                row.purchase_id,
                row.return_id,
                row.amount_minor,
                orjson.dumps(row.lines).decode(),
                row.points_reversed,
                row.occurred_at,
                row.created_at,
            )
        )
        if points > 0:
            bucket = bought.row[8]  # points_bucket: pending until released
            assert isinstance(bucket, str)
            self._post(
                purchases.reversal_movement(
                    member_id=self.member_id,
                    bucket=Bucket(bucket),
                    points=points,
                    order_id=purchase.order_id,
                    return_id=back.return_id,
                    currency=purchase.currency,
                    amount=back.amount_minor,
                    returned_total=bought.returned_minor + back.amount_minor,
                    purchase_amount=purchase.amount_minor,
                    occurred_at=at,
                ),
                allow_negative=True,
            )
        bought.returned_minor += back.amount_minor
        bought.returned_points += points
        bought.row[10] = bought.returned_minor  # as `add_returned`
        bought.row[11] = bought.returned_points
        # The purchase's window counts less from now on; the next review may judge it anew.
        self.spends[bought.spend_index] = (
            purchase.occurred_at,
            purchase.amount_minor - bought.returned_minor,
        )
        self.spend_falls.append(at)
        self.out.points_reversed += points
        self.out.events.append(
            purchases.returned_event(
                self.context.brand_id,
                member_id=self.member_id,
                purchase_id=bought.purchase_id,
                order_id=purchase.order_id,
                return_id=back.return_id,
                amount_minor=back.amount_minor,
                currency=purchase.currency,
                lines=back.lines,
                points_reversed=points,
                occurred_at=at,
            )
        )

    # --- a redemption (perks.service.redeem by the member, with the clock at occurred_at) ---

    def _redeem(self, asked: _Redemption) -> None:
        perk, wish = asked.perk, asked.wish
        at = wish.occurred_at
        cost = perk.cost_points
        used = self.used.get(perk.id, 0)
        try:
            # The checks the API makes, in its order (those that cannot change with time,
            # such as a drop or a birthday perk, refused the whole load up front).
            perks.check_status(self.status)
            perks.check_offer(perk, drop_only=False, now=at)
            perks.check_tier(
                perk, self.tier.id if self.tier is not None else None, self.context.tier_names
            )
            perks.check_member(
                perk,
                available=self.available,
                used=used,
                cost=cost,
                codes_available=None,
                channel=perks.Channel.MEMBER,
            )
        except KinfolkError as refusal:
            detail = refusal.detail
            self.out.refused.append(
                RefusedRedemption(
                    key=wish.key,
                    member_id=self.member_id,
                    perk_id=perk.id,
                    occurred_at=at,
                    reason=refusal.code,
                    detail=str(detail["message"] if isinstance(detail, dict) else detail),
                )
            )
            return
        brand_id = self.context.brand_id
        redemption = perks.new_redemption(
            brand_id,
            perk,
            redemption_id=new_id(),
            member_id=self.member_id,
            cost=cost,
            code=None,
            drop_id=None,
            now=at,
            reveal=False,
        )
        self.out.redemptions.append(
            (
                redemption.id,
                redemption.brand_id,
                redemption.member_id,
                redemption.perk_id,
                redemption.points,
                redemption.status.value,
                redemption.code,
                redemption.drop_id,
                redemption.created_at,
                redemption.cancelled_at,
                redemption.code_revealed_at,
            )
        )
        self._post(
            perks.redemption_movement(
                perk, member_id=self.member_id, redemption_id=redemption.id, cost=cost, now=at
            )
        )
        self.out.events.append(
            perks.redeemed_event(
                brand_id,
                perk,
                member_id=self.member_id,
                redemption_id=redemption.id,
                points=cost,
                drop_id=None,
                now=at,
            )
        )
        self.used[perk.id] = used + 1
        self.out.points_redeemed += cost

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
        the window nor the spend in it can fall (purchases only add spend; each return is a
        moment), so a run that keeps the tier at one of them would keep it until the next.
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
        moments += self.spend_falls  # a return lowered some window's spend
        last = self.last_run["review"]
        # A run is never before its moment, so moments after the load's `now` cannot run in it.
        # The first run at or after a moment moves with the moment, so the first moment's run
        # is the first run.
        first = min((moment for moment in moments if last < moment <= now), default=None)
        return None if first is None else _REVIEW.at_or_after(self._not_before("review", first))

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
            returned = due.row[11]  # returned_points: only what returns left is released
            assert isinstance(returned, int)
            remaining = due.points - returned
            if remaining > 0:
                for movement in ledger.release_movements(
                    member_id=self.member_id,
                    points=remaining,
                    reason=purchases.release_reason(due.order_id, remaining),
                    source_type=SOURCE_PURCHASE,
                    source_id=due.order_id,
                    occurred_at=at,
                ):
                    self._post(movement)
            due.row[8] = Bucket.AVAILABLE.value  # points_bucket, as `mark_released`

    # --- expiry (expiry.service.expire_points) ---

    def _deadline(self, months: int) -> datetime:
        # Asked at every step of the loop, and moved only by activity: kept for its basis.
        basis = (self.last_activity_at, months)
        if self.deadline_basis != basis or self.deadline is None:
            self.deadline_basis = basis
            self.deadline = expiry.deadline_after(self.last_activity_at, self.created_at, months)
        return self.deadline

    def _when_expire(self) -> datetime | None:
        terms = self.context.expiry
        if terms.days_after_earning:
            # Lots expire in the order they were earned (one expiry length), so the first open
            # lot with a date is the first due.
            for index in range(self.first_open, len(self.lots)):
                lot = self.lots[index]
                if lot.remaining > 0 and lot.expires_at is not None:
                    if lot.expires_at > self.context.now:  # a run is never before its moment
                        return None
                    return _EXPIRE.at_or_after(self._not_before("expire", lot.expires_at))
            return None
        if terms.inactivity_months:
            if self.available <= 0:
                return None
            deadline = self._deadline(terms.inactivity_months)
            if deadline > self.context.now:  # a run is never before its moment
                return None
            return _EXPIRE.at_or_after(self._not_before("expire", deadline))
        return None

    def _expire(self, at: datetime) -> None:
        terms = self.context.expiry
        if terms.days_after_earning:
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
        months = terms.inactivity_months
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
        terms = self.context.expiry
        days = terms.reminder
        if days is None:
            return None
        if terms.days_after_earning:
            while self.first_to_remind < len(self.lots):
                lot = self.lots[self.first_to_remind]
                if lot.remaining > 0 and lot.reminded_at is None and lot.expires_at is not None:
                    if lot.expires_at - days > self.context.now:  # nor can later lots run
                        return None
                    run = _REMIND.at_or_after(self._not_before("remind", lot.expires_at - days))
                    if run < lot.expires_at:
                        return run
                # Reminded, empty, or expiring before any run left can announce it: never again.
                self.first_to_remind += 1
            return None
        if terms.inactivity_months:
            if self.available <= 0:
                return None
            deadline = self._deadline(terms.inactivity_months)
            if self.inactivity_reminded_for == deadline or deadline - days > self.context.now:
                return None
            run = _REMIND.at_or_after(self._not_before("remind", deadline - days))
            return run if run < deadline else None
        return None

    def _remind(self, at: datetime) -> None:
        terms = self.context.expiry
        assert terms.reminder is not None
        until = at + terms.reminder
        brand_id = self.context.brand_id
        if terms.days_after_earning:
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
        months = terms.inactivity_months
        assert months is not None
        deadline = self._deadline(months)
        if at < deadline <= until and self.available > 0:
            self.inactivity_reminded_for = deadline
            self.out.events.append(
                expiry.reminder_event(brand_id, self.member_id, self.available, deadline, at)
            )


# What `_Replay._next_job` asks at every step, in `_JOBS` order. Kept out of the instances:
# bound methods held by a replay would make each replay a reference cycle, kept (with the
# batch's rows and events it reaches) until the cyclic collector runs, which a bulk load pauses.
_WHENS: tuple[tuple[Job, Callable[[_Replay], datetime | None]], ...] = (
    ("release", _Replay._when_release),
    ("expire", _Replay._when_expire),
    ("remind", _Replay._when_remind),
    ("review", _Replay._when_review),
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


def _moment(context: _Context, moment: datetime, what: str) -> datetime:
    """`moment` in UTC; refuses a naive time and one after now."""
    if moment.tzinfo is None:
        raise ValueError(f"{what}: occurred_at must be timezone-aware.")
    at = moment.astimezone(UTC)
    if at > context.now:
        raise HistoryInFuture(
            f"{what} is dated {at.isoformat()}, after now ({context.now.isoformat()}): "
            "history holds what has happened."
        )
    return at


def _checked_redemptions(
    context: _Context, redemptions_in: Iterable[HistoricRedemption]
) -> list[HistoricRedemption]:
    """The redemptions with their times in UTC; refuses a key twice, naive or future times."""
    checked: list[HistoricRedemption] = []
    keys: set[str] = set()
    for wish in redemptions_in:
        at = _moment(context, wish.occurred_at, f"Redemption {wish.key!r}")
        if wish.key in keys:
            raise ValueError(
                f"Redemption {wish.key!r} appears twice in this history: a key names one "
                "redemption."
            )
        keys.add(wish.key)
        checked.append(wish if wish.occurred_at.tzinfo is UTC else replace(wish, occurred_at=at))
    return checked


def _line_amounts(lines: Iterable[HistoricLine]) -> list[purchases.LineAmount]:
    return [(line.sku, line.quantity, line.amount_minor) for line in lines]


def _checked_returns(
    context: _Context, returns_in: Iterable[HistoricReturn], orders: dict[str, HistoricPurchase]
) -> list[_Return]:
    """The returns, each of a purchase in this load, refused as the API would refuse them
    (checked in time order per purchase, as they would have arrived)."""
    return_ids: set[str] = set()
    by_order: dict[str, list[tuple[HistoricReturn, datetime, int]]] = {}
    for index, back in enumerate(returns_in):
        at = _moment(context, back.occurred_at, f"Return {back.return_id!r}")
        if back.return_id in return_ids:
            raise ReturnIdReused(
                f"Return {back.return_id!r} appears twice in this history: a return id names "
                "one return."
            )
        return_ids.add(back.return_id)
        if back.order_id not in orders:
            raise PurchaseNotFound(
                f"Return {back.return_id!r}: no purchase with order id {back.order_id!r} in this "
                "history (a member's returns are loaded with their purchases)."
            )
        by_order.setdefault(back.order_id, []).append((back, at, index))
    checked: list[tuple[int, _Return]] = []
    for order_id, backs in by_order.items():
        bought = orders[order_id]
        bought_lines = _line_amounts(bought.lines)
        earlier: list[purchases.LineAmount] = []
        returned = 0
        backs.sort(key=lambda item: item[1])  # stable: input order at one instant
        for back, at, index in backs:
            if back.amount_minor is not None and back.amount_minor <= 0:
                raise ValueError(f"Return {back.return_id!r}: amount_minor must be positive.")
            if any(line.quantity <= 0 or line.amount_minor <= 0 for line in back.lines):
                raise ValueError(
                    f"Return {back.return_id!r}: each line's quantity and amount_minor must be "
                    "positive."
                )
            if back.amount_minor is None and not back.lines:
                raise ValueError(f"Return {back.return_id!r}: send amount_minor, lines, or both.")
            lines = _line_amounts(back.lines)
            amount = purchases.return_amount(
                back.amount_minor, sum(line[2] for line in lines), bool(lines)
            )
            purchases.check_returnable(
                order_id=order_id,
                currency=bought.currency,
                bought_at=bought.occurred_at,
                amount_minor=bought.amount_minor,
                returned_minor=returned,
                bought=bought_lines,
                earlier=earlier,
                occurred_at=at,
                amount=amount,
                lines=lines,
            )
            returned += amount
            earlier += lines
            checked.append(
                (
                    index,
                    _Return(
                        member_id=bought.member_id,
                        order_id=order_id,
                        return_id=back.return_id,
                        occurred_at=at,
                        amount_minor=amount,
                        lines=[
                            {
                                "sku": line.sku,
                                "category": line.category,
                                "quantity": line.quantity,
                                "amount_minor": line.amount_minor,
                            }
                            for line in back.lines
                        ],
                    ),
                )
            )
    checked.sort(key=lambda item: item[0])  # input order: the order of returns at one instant
    return [back for _, back in checked]


def _check_replayable(perk: Perk, drop_only: bool) -> None:
    """Refuses perks whose redemptions history cannot replay as the API would."""
    if not perk.active:
        raise PerkNotFound(f"No active perk {perk.id} in this brand.")
    if perk.is_birthday_gift or drop_only:
        # The API refuses these whenever asked: its first offer checks raise (BirthdayGiftOnly,
        # DropOnly) before the validity window, whatever the time.
        perks.check_offer(perk, drop_only=drop_only, now=datetime.min.replace(tzinfo=UTC))
    if perk.inventory_total is not None:
        raise PerkNotReplayable(
            f"Perk {perk.name!r} ({perk.id}) has a limited stock: a history loaded in batches "
            "cannot tell which batch's members got the last units. Load its redemptions live, "
            "or give the perk no stock limit."
        )
    if perk.kind is PerkKind.DISCOUNT_CODE:
        raise PerkNotReplayable(
            f"Perk {perk.name!r} ({perk.id}) hands out codes from its pool: history does not "
            "replay code perks. Load its redemptions live."
        )


def _when(happening: _Happening) -> tuple[datetime, int]:
    return happening.occurred_at, _RANK[type(happening)]


async def load_history(
    session: AsyncSession,
    brand_id: uuid.UUID,
    purchases_in: Iterable[HistoricPurchase],
    *,
    redemptions: Iterable[HistoricRedemption] = (),
    returns: Iterable[HistoricReturn] = (),
    now: datetime | None = None,
) -> HistoryReport:
    """Loads these members' history (all of it, for every member in the batch: purchases,
    returns of them, redemptions) as the online path and its jobs would have left it by `now`
    (default: the clock). Never commits.

    A redemption the API would have refused at its time (too few available points, a tier the
    perk does not allow, its per-member limit reached, the perk not open then, the member
    suspended) is skipped and reported in `refused`, with the API's error code.

    Refuses, writing nothing: a brand without a program (`ProgramNotConfigured`), a member
    without an account or erased (`MemberNotFound`) or with any history already
    (`HistoryNotEmpty`), another currency (`CurrencyMismatch`, `UnknownCurrency`), lines that do
    not add up (`LinesDoNotAddUp`), an order id twice or already in the brand (`OrderIdReused`),
    a purchase after `now` (`PurchaseInFuture`), a redemption or return after `now`
    (`HistoryInFuture`), a naive time, a non-positive amount or a redemption key twice
    (`ValueError`); a perk not in the brand or inactive (`PerkNotFound`), a birthday or drop
    perk (`BirthdayGiftOnly`, `DropOnly`), one with limited stock or codes
    (`PerkNotReplayable`); a return of an order not in this load (`PurchaseNotFound`), a return
    id twice or already in the brand (`ReturnIdReused`), and what the API refuses of a return
    (`ReturnBeforePurchase`, `ReturnExceedsPurchase`, `ReturnLineNotInPurchase`).
    """
    moment = (now or utcnow()).astimezone(UTC)
    reference = await current_reference(session, brand_id)
    program = reference.program
    rates = earning.rates_for(program, program.currency)
    tier_names = {tier.id: tier.name for tier in reference.ladder.tiers}
    context = _Context(brand_id, reference, rates, moment, tier_names, _ExpiryTerms.of(program))
    by_member = _checked(context, purchases_in)
    wishes = _checked_redemptions(context, redemptions)
    returns_in = list(returns)
    backs = (
        _checked_returns(
            context, returns_in, {p.order_id: p for bought in by_member.values() for p in bought}
        )
        if returns_in
        else []
    )
    members = sorted(set(by_member).union(wish.member_id for wish in wishes))
    if not members:
        return HistoryReport(
            purchases=0, ledger_entries=0, points_earned=0, tier_changes=0, events=0
        )

    repository = HistoryRepository(session)
    accounts = {
        account.member_id: account for account in await repository.lock_accounts(brand_id, members)
    }
    for member_id in members:
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
    taken = await repository.taken_return_ids(brand_id, [back.return_id for back in backs])
    if taken:
        raise ReturnIdReused(
            f"{len(taken)} return id(s) of this history are already recorded in this brand "
            f"(e.g. {sorted(taken)[0]!r}): a return id names one return."
        )
    extras: dict[uuid.UUID, list[_Happening]] = {}
    for back in backs:
        extras.setdefault(back.member_id, []).append(back)
    if wishes:
        perk_ids = {wish.perk_id for wish in wishes}
        found = {
            perk.id: (perk, drop_only)
            for perk, drop_only in await repository.perks(brand_id, perk_ids)
        }
        for perk_id in sorted(perk_ids):
            if perk_id not in found:
                raise PerkNotFound(f"No active perk {perk_id} in this brand.")
            _check_replayable(*found[perk_id])
        for wish in wishes:
            extras.setdefault(wish.member_id, []).append(_Redemption(wish, found[wish.perk_id][0]))

    out = _Out()
    for member_id in members:
        account = accounts[member_id]
        replay = _Replay(context, out, member_id, account.created_at, account.member_status)
        bought = by_member.get(member_id, [])
        extra = extras.get(member_id)
        if extra is None:
            replay.run(bought)  # most members: purchases alone, already in time order
            continue
        replay.returned = {
            happening.order_id: None for happening in extra if isinstance(happening, _Return)
        }
        replay.run(sorted([*bought, *extra], key=_when))

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
        redemptions=out.redemptions,
        returns=out.returns,
    )
    await repository.update_accounts(brand_id, out.accounts)
    events = await OUTBOX.copy_many(session, out.events)
    return HistoryReport(
        purchases=len(out.purchases),
        ledger_entries=len(out.entries),
        points_earned=out.points_earned,
        tier_changes=len(out.tier_changes),
        events=events,
        members=len(members),
        lots=len(out.lots),
        points_expired=out.points_expired,
        redemptions=len(out.redemptions),
        points_redeemed=out.points_redeemed,
        returns=len(out.returns),
        points_reversed=out.points_reversed,
        refused=tuple(out.refused),
    )
