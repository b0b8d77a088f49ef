"""Points expiry rules. Nothing here commits: the job (or request) around it does.

Policies (`programs.expiry_policy`):

- `none`: points never expire. Lots may still carry an `expires_at` from an earlier policy; it is
  ignored while the policy is `none`.
- `days_after_earning`: every lot carries `expires_at = earned_at + expiry_days`, set when it was
  earned (a later change of `expiry_days` applies to points earned afterwards: what a member was
  told stays true; points earned while the policy was `none` never expire lot by lot). Spending
  takes the oldest lots first, so what expires is whatever is left of a lot once it is due. The
  job expires each due lot with its own ledger entry (`kind=expire`, `source_type="lot"`,
  `source_id=<lot id>`, `occurred_at=<the lot's expires_at>`), emptying exactly that lot.
- `inactivity` (the Sephora rule): when `inactivity_months` calendar months (UTC; 31 Jan + 1 month
  is 28/29 Feb) have passed since the member's last activity, the whole available balance expires
  in one entry (`source_type="inactivity"`, `occurred_at=<that deadline>`). Activity is an earn or
  a redemption (`accounts.last_activity_at`, kept by `ledger.service.post`): a purchase, even one
  whose points are still pending, an activity award, a perk redeemed. Staff adjustments, refunds
  and releases are not activity. A member who has never been active counts from when rewards
  first knew them (`accounts.created_at`); points given to a member who is already past the
  deadline (a staff adjustment, say) expire at the next run.

Never more than the member has: expiry takes at most the available balance, so a zero or negative
balance (after a return) expires nothing, and it never overdraws. The account row is locked before
the member's lots are read, so a concurrent redemption or a second run of the job sees the result;
a lot that has expired is empty and is never expired again: running the job twice is harmless.

An erased member's points expire like anyone's (their ledger stays, under their id only), but
they get no reminders.

Reminders (`points.expiring_soon`, not sent for erased members): once per lot for lot-by-lot
expiry (`lots.reminded_at`), for lots expiring within `expiry_reminder_days` from now; once per
deadline for inactivity (`accounts.inactivity_reminded_for`), when the deadline is within
`expiry_reminder_days` (activity moves the deadline, and a later lapse is announced again). The
reminder carries the points and when they expire. `expiry_reminder_days = 0` sends none.

Both jobs take `now` (default: the clock), visit brands with an expiring policy, and members in
batches of `batch_size` in member id order, locking their accounts in that order.
"""

from __future__ import annotations

import calendar
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.rewards.events import ExpiringSoonData, PointsExpiringSoon
from services.rewards.expiry.repository import ERASED, ExpiringGroup, ExpiryRepository
from services.rewards.job_runs import RunLimit, in_batches, itself
from services.rewards.ledger.service import Movement, post
from services.rewards.models import OUTBOX, Account, Bucket, EntryKind, ExpiryPolicy, Program

log = structlog.get_logger(__name__)

BATCH_SIZE = 500
# How many expiry dates a member's summary lists.
NEXT_DATES = 5


@dataclass(frozen=True, slots=True)
class ExpiryRun:
    """What one run of the expiry job did."""

    members: int = 0  # members who lost points
    entries: int = 0  # `expire` ledger entries written
    points: int = 0  # points expired in total

    def __add__(self, other: ExpiryRun) -> ExpiryRun:
        return ExpiryRun(
            self.members + other.members, self.entries + other.entries, self.points + other.points
        )


@dataclass(frozen=True, slots=True)
class ExpiringSoon:
    """What a member has expiring within the program's reminder window."""

    policy: ExpiryPolicy
    window_days: int
    points: int
    next: list[ExpiringGroup]
    inactivity_expires_at: datetime | None


def add_months(moment: datetime, months: int) -> datetime:
    """`moment` plus calendar months, in UTC, the day clamped to the month's end."""
    moment = moment.astimezone(UTC)
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def inactivity_deadline(account: Account, months: int) -> datetime:
    """When the member's whole balance expires unless they are active before then."""
    return deadline_after(account.last_activity_at, account.created_at, months)


def deadline_after(
    last_activity_at: datetime | None, created_at: datetime, months: int
) -> datetime:
    """The inactivity deadline from the last activity, or from when rewards first knew the
    member if they were never active."""
    return add_months(last_activity_at or created_at, months)


def lot_expiry_reason(earned_at: datetime) -> str:
    return f"Expired: points earned on {earned_at.astimezone(UTC):%Y-%m-%d}"


def inactivity_reason(months: int) -> str:
    return f"Expired after {months} months without activity"


def _utc(now: datetime | None) -> datetime:
    moment = utcnow() if now is None else now
    if moment.tzinfo is None:
        raise ValueError("`now` must be timezone-aware")
    return moment.astimezone(UTC)


# --- Expiry -----------------------------------------------------------------------------------


async def expire_points(
    session: AsyncSession,
    *,
    now: datetime | None = None,
    batch_size: int = BATCH_SIZE,
    limit: RunLimit | None = None,
) -> ExpiryRun:
    """The daily job: expire whatever is due at `now` in every brand, through the ledger (as
    far as `limit` goes: see `RunLimit`)."""
    moment = _utc(now)
    limit = limit or RunLimit()
    total = ExpiryRun()
    for program in limit.brands(await ExpiryRepository(session).programs_with_expiry()):
        if limit.stop_before(program):
            break
        if program.expiry_policy == ExpiryPolicy.DAYS_AFTER_EARNING:
            run = await _expire_lots(session, program, moment, batch_size, limit)
        elif program.expiry_policy == ExpiryPolicy.INACTIVITY and program.inactivity_months:
            run = await _expire_inactive(session, program, moment, batch_size, limit)
        else:
            continue
        if run.entries:
            log.info(
                "rewards.points_expired",
                brand_id=str(program.brand_id),
                policy=program.expiry_policy.value,
                members=run.members,
                points=run.points,
            )
        total += run
    return total


async def _expire_lots(
    session: AsyncSession, program: Program, now: datetime, batch_size: int, limit: RunLimit
) -> ExpiryRun:
    repository = ExpiryRepository(session)
    brand_id = program.brand_id
    run = ExpiryRun()

    async def fetch(after: uuid.UUID | None) -> list[uuid.UUID]:
        return await repository.members_with_due_lots(brand_id, now, after, batch_size)

    async def handle(member_ids: list[uuid.UUID]) -> None:
        nonlocal run
        for account in await repository.lock_accounts(brand_id, member_ids):
            run += await _expire_due_lots(session, program, account, now)

    await in_batches(fetch, handle, batch_size, brand_id, limit, member_of=itself)
    return run


async def _expire_due_lots(
    session: AsyncSession, program: Program, account: Account, now: datetime
) -> ExpiryRun:
    """Empty the member's due lots, never taking more than the available balance."""
    budget = max(account.available, 0)
    entries = points = 0
    for lot in await ExpiryRepository(session).due_lots(account.member_id, now):
        taken = min(lot.remaining, budget)
        if taken <= 0:
            # Lots and balance disagree (they cannot, unless edited by hand): expire no more.
            log.warning(
                "rewards.expiry_lots_exceed_balance",
                member_id=str(account.member_id),
                available=account.available,
            )
            break
        await post(
            session,
            program.brand_id,
            program,
            Movement(
                member_id=account.member_id,
                kind=EntryKind.EXPIRE,
                bucket=Bucket.AVAILABLE,
                points=-taken,
                reason=lot_expiry_reason(lot.earned_at),
                source_type="lot",
                source_id=str(lot.id),
                occurred_at=lot.expires_at,
            ),
            from_lots=[lot.id],
        )
        budget -= taken
        entries += 1
        points += taken
    return ExpiryRun(members=1 if entries else 0, entries=entries, points=points)


async def _expire_inactive(
    session: AsyncSession, program: Program, now: datetime, batch_size: int, limit: RunLimit
) -> ExpiryRun:
    repository = ExpiryRepository(session)
    brand_id = program.brand_id
    months = program.inactivity_months
    assert months is not None
    run = ExpiryRun()

    async def fetch(after: uuid.UUID | None) -> list[uuid.UUID]:
        return await repository.inactive_members(brand_id, months, now, after, batch_size)

    async def handle(member_ids: list[uuid.UUID]) -> None:
        nonlocal run
        for account in await repository.lock_accounts(brand_id, member_ids):
            deadline = inactivity_deadline(account, months)
            # Checked again under the lock: the member may have been active meanwhile.
            if deadline > now or account.available <= 0:
                continue
            await post(
                session,
                brand_id,
                program,
                Movement(
                    member_id=account.member_id,
                    kind=EntryKind.EXPIRE,
                    bucket=Bucket.AVAILABLE,
                    points=-account.available,
                    reason=inactivity_reason(months),
                    source_type="inactivity",
                    source_id=deadline.date().isoformat(),
                    occurred_at=deadline,
                ),
            )
            run += ExpiryRun(members=1, entries=1, points=account.available)

    await in_batches(fetch, handle, batch_size, brand_id, limit, member_of=itself)
    return run


# --- Reminders --------------------------------------------------------------------------------


async def remind_expiring_points(
    session: AsyncSession,
    *,
    now: datetime | None = None,
    batch_size: int = BATCH_SIZE,
    limit: RunLimit | None = None,
) -> int:
    """The daily job: announce points expiring within each program's reminder window, once
    (as far as `limit` goes: see `RunLimit`).

    Returns how many `points.expiring_soon` events it wrote.
    """
    moment = _utc(now)
    limit = limit or RunLimit()
    sent = 0
    for program in limit.brands(await ExpiryRepository(session).programs_with_expiry()):
        if program.expiry_reminder_days <= 0:
            continue
        if limit.stop_before(program):
            break
        until = moment + timedelta(days=program.expiry_reminder_days)
        if program.expiry_policy == ExpiryPolicy.DAYS_AFTER_EARNING:
            sent += await _remind_lots(session, program, moment, until, batch_size, limit)
        elif program.expiry_policy == ExpiryPolicy.INACTIVITY and program.inactivity_months:
            sent += await _remind_inactive(session, program, moment, until, batch_size, limit)
    return sent


def reminder_event(
    brand_id: uuid.UUID, member_id: uuid.UUID, points: int, expires_at: datetime, now: datetime
) -> PointsExpiringSoon:
    return PointsExpiringSoon(
        brand_id=brand_id,
        subject_id=member_id,
        occurred_at=now,
        data=ExpiringSoonData(member_id=member_id, points=points, expires_at=expires_at),
    )


async def _remind_lots(
    session: AsyncSession,
    program: Program,
    now: datetime,
    until: datetime,
    batch_size: int,
    limit: RunLimit,
) -> int:
    repository = ExpiryRepository(session)
    brand_id = program.brand_id
    sent = 0

    async def fetch(after: uuid.UUID | None) -> list[uuid.UUID]:
        return await repository.members_with_lots_to_remind(brand_id, now, until, after, batch_size)

    async def handle(member_ids: list[uuid.UUID]) -> None:
        nonlocal sent
        accounts = await repository.lock_accounts(brand_id, member_ids)
        reachable = [a.member_id for a in accounts if a.member_status != ERASED]
        if not reachable:
            return
        lots = await repository.mark_lots_reminded(reachable, now, until)
        await OUTBOX.add_many(
            session,
            [
                reminder_event(brand_id, lot.member_id, lot.remaining, lot.expires_at, now)
                for lot in lots
            ],
        )
        sent += len(lots)

    await in_batches(fetch, handle, batch_size, brand_id, limit, member_of=itself)
    return sent


async def _remind_inactive(
    session: AsyncSession,
    program: Program,
    now: datetime,
    until: datetime,
    batch_size: int,
    limit: RunLimit,
) -> int:
    repository = ExpiryRepository(session)
    brand_id = program.brand_id
    months = program.inactivity_months
    assert months is not None
    sent = 0

    async def fetch(after: uuid.UUID | None) -> list[uuid.UUID]:
        return await repository.members_to_remind_of_inactivity(
            brand_id, months, now, until, after, batch_size
        )

    async def handle(member_ids: list[uuid.UUID]) -> None:
        nonlocal sent
        for account in await repository.lock_accounts(brand_id, member_ids):
            deadline = inactivity_deadline(account, months)
            if (
                not now < deadline <= until
                or account.available <= 0
                or account.member_status == ERASED
                or account.inactivity_reminded_for == deadline
            ):
                continue
            await repository.mark_inactivity_reminded(account.member_id, deadline)
            await OUTBOX.add(
                session,
                reminder_event(brand_id, account.member_id, account.available, deadline, now),
            )
            sent += 1

    await in_batches(fetch, handle, batch_size, brand_id, limit, member_of=itself)
    return sent


# --- What a member sees -----------------------------------------------------------------------


async def expiring_soon(
    session: AsyncSession, program: Program, account: Account, *, now: datetime | None = None
) -> ExpiringSoon:
    """Points that expire within the reminder window (overdue ones the job has not run for
    included), with the next dates; under `inactivity`, also the date the balance lapses."""
    moment = _utc(now)
    window = program.expiry_reminder_days
    until = moment + timedelta(days=window)
    points, groups = 0, list[ExpiringGroup]()
    lapses_at: datetime | None = None
    if program.expiry_policy == ExpiryPolicy.DAYS_AFTER_EARNING:
        points, groups = await ExpiryRepository(session).expiring_lots(
            account.member_id, until, NEXT_DATES
        )
    elif (
        program.expiry_policy == ExpiryPolicy.INACTIVITY
        and program.inactivity_months
        and account.available > 0
    ):
        lapses_at = inactivity_deadline(account, program.inactivity_months)
        if lapses_at <= until:
            points, groups = account.available, [ExpiringGroup(lapses_at, account.available)]
    return ExpiringSoon(
        policy=program.expiry_policy,
        window_days=window,
        points=min(points, max(account.available, 0)),
        next=groups,
        inactivity_expires_at=lapses_at,
    )
