"""The ledger's rules: the one way points move.

`post()` appends an entry, moves the cached balances in the same transaction (refusing to take
available points below zero unless the caller allows it, which only returns do), keeps lots
(spent oldest first, paying back a negative balance before anything else), and writes the event.
Every other part of rewards (purchases, redemptions, expiry, activity) moves points through it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from prometheus_client import Gauge
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.kernel.ids import new_id
from services.rewards.errors import InsufficientPoints, MemberNotFound, ProgramNotConfigured
from services.rewards.events import (
    PointsAdjusted,
    PointsEarned,
    PointsExpired,
    PointsMovement,
    PointsPending,
    PointsRedeemed,
)
from services.rewards.ledger.members import MemberSource
from services.rewards.ledger.repository import BalanceChange, Balances, Drift, LedgerRepository
from services.rewards.ledger.schemas import (
    AdjustmentCreate,
    AdjustmentRead,
    BalanceRead,
    ProgramSettings,
)
from services.rewards.models import (
    OUTBOX,
    Account,
    Bucket,
    EntryKind,
    ExpiryPolicy,
    LedgerEntry,
    Lot,
    Program,
)

# Kinds that count as the member being active (the inactivity expiry rule looks at these).
_ACTIVE_KINDS = frozenset({EntryKind.EARN, EntryKind.REDEEM})

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Movement:
    """What to post: signed points into one bucket, with the reason the member will read."""

    member_id: uuid.UUID
    kind: EntryKind
    bucket: Bucket
    points: int
    reason: str
    source_type: str
    source_id: str | None
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class Posted:
    entry_id: uuid.UUID
    balances: Balances


async def program_for(session: AsyncSession, brand_id: uuid.UUID) -> Program:
    program = await LedgerRepository(session).program(brand_id)
    if program is None:
        raise ProgramNotConfigured(
            "This brand has no loyalty program yet: configure it with PUT /rewards/v1/program."
        )
    return program


async def account_for(
    session: AsyncSession,
    brand_id: uuid.UUID,
    *,
    member_id: uuid.UUID | None = None,
    external_id: str | None = None,
    members: MemberSource | None,
) -> Account:
    """The member's account, by id or by the brand's external id; 404 when rewards has none
    (and `members`, when given, has no such member either: see `ledger.members`).

    `members` has no default, here and in every function that passes it on: a request names
    it (`MembersDep`), so that a member created a moment ago is not answered 404; a job or a
    consumer passes None, working only on accounts that exist. Each caller decides, and a new
    route that forgets is a type error rather than a 404 in production."""
    account = await _account(session, brand_id, member_id, external_id)
    if (
        account is None
        and members is not None
        and await members.open_account(
            session, brand_id, member_id=member_id, external_id=external_id
        )
    ):
        account = await _account(session, brand_id, member_id, external_id)
    if account is None or account.member_status == "erased":
        raise _not_found(member_id, external_id)
    return account


async def _account(
    session: AsyncSession,
    brand_id: uuid.UUID,
    member_id: uuid.UUID | None,
    external_id: str | None,
) -> Account | None:
    repository = LedgerRepository(session)
    if member_id is not None:
        return await repository.account(brand_id, member_id)
    return await repository.account_by_external_id(brand_id, external_id or "")


def _not_found(member_id: uuid.UUID | None, external_id: str | None) -> MemberNotFound:
    reference = member_id if member_id is not None else f"external id {external_id!r}"
    return MemberNotFound(f"No member {reference} in this brand.")


@dataclass(frozen=True, slots=True)
class Standing:
    """Who a simulation is for: an account's member, tier and status, or a member the members
    service has and rewards has not opened an account for yet (no tier, nothing earned)."""

    member_id: uuid.UUID
    tier_id: uuid.UUID | None
    member_status: str


async def standing_of(
    session: AsyncSession,
    brand_id: uuid.UUID,
    members: MemberSource,
    *,
    member_id: uuid.UUID | None = None,
    external_id: str | None = None,
) -> Standing:
    """The member's standing, read without writing (a newcomer's account is not opened, as
    `account_for` would); 404 as there."""
    account = await _account(session, brand_id, member_id, external_id)
    if account is not None and account.member_status != "erased":
        return Standing(account.member_id, account.tier_id, account.member_status)
    if account is None:
        found = await members.find(session, brand_id, member_id=member_id, external_id=external_id)
        if found is not None and found.status != "erased":
            return Standing(found.member_id, None, found.status)
    raise _not_found(member_id, external_id)


async def configure_program(
    session: AsyncSession, brand_id: uuid.UUID, settings: ProgramSettings
) -> Program:
    # Writing the program row is itself a change of its version (see `reference_changed`).
    return await LedgerRepository(session).save_program(brand_id, settings.model_dump())


async def reference_changed(session: AsyncSession, brand_id: uuid.UUID) -> Program | None:
    """Call in the transaction of every change to a brand's tiers, earning rules or campaigns.

    Processes keep a copy of that reference data with the program (`earning.reference`) and
    check the program's version on every purchase; this gives it a new version, so the next
    purchase after the commit, in any process, reloads. It also locks the program row until
    the transaction ends: one brand's reference changes run one at a time. Returns the program
    (None when the brand has none yet: nothing is cached without one).
    """
    return await LedgerRepository(session).touch_program(brand_id)


async def balances_of(session: AsyncSession, account: Account) -> BalanceRead:
    return BalanceRead(
        member_id=account.member_id,
        available=account.available,
        pending=account.pending,
        lifetime_earned=account.lifetime_earned,
    )


async def adjust(
    session: AsyncSession,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    adjustment: AdjustmentCreate,
    members: MemberSource | None,
) -> AdjustmentRead:
    """A staff correction, with the reason the member will see; it cannot overdraw."""
    account = await account_for(session, brand_id, member_id=member_id, members=members)
    program = await program_for(session, brand_id)
    posted = await post(
        session,
        brand_id,
        program,
        Movement(
            member_id=account.member_id,
            kind=EntryKind.ADJUST,
            bucket=Bucket.AVAILABLE,
            points=adjustment.points,
            reason=adjustment.reason,
            source_type="staff",
            source_id=None,
            occurred_at=utcnow(),
        ),
    )
    await session.refresh(account)
    return AdjustmentRead(entry_id=posted.entry_id, balance=await balances_of(session, account))


def lot_expiry(program: Program, earned_at: datetime) -> datetime | None:
    """When points earned at `earned_at` expire lot by lot; None when the policy is not per lot."""
    if program.expiry_policy == ExpiryPolicy.DAYS_AFTER_EARNING and program.expiry_days:
        return earned_at + timedelta(days=program.expiry_days)
    return None


PointsEvent = PointsEarned | PointsPending | PointsRedeemed | PointsExpired | PointsAdjusted


def _event_for(movement: Movement) -> type[PointsEvent]:
    if movement.kind == EntryKind.EARN:
        return PointsEarned if movement.bucket == Bucket.AVAILABLE else PointsPending
    if movement.kind == EntryKind.REDEEM:
        return PointsRedeemed
    if movement.kind == EntryKind.EXPIRE:
        return PointsExpired
    return PointsAdjusted


def balance_change(movement: Movement, *, allow_negative: bool = False) -> BalanceChange:
    """What one movement adds to the account's cached sums (and the floor it must respect).

    Pure, so the bulk history loader (`rewards.history`) keeps its in-memory sums by the same
    rules as `post()`.
    """
    into_available = movement.bucket == Bucket.AVAILABLE
    counts_as_earned = (
        into_available
        and movement.points > 0
        and movement.kind
        in (
            EntryKind.EARN,
            EntryKind.RELEASE,
        )
    )
    return BalanceChange(
        available=movement.points if into_available else 0,
        pending=0 if into_available else movement.points,
        lifetime=movement.points if counts_as_earned else 0,
        floor=None if allow_negative or movement.points > 0 or not into_available else 0,
        touch_activity_at=movement.occurred_at if movement.kind in _ACTIVE_KINDS else None,
    )


def points_event(
    brand_id: uuid.UUID, movement: Movement, entry_id: uuid.UUID, after: Balances
) -> PointsEvent:
    """The event an entry emits, with the balances right after it."""
    return _event_for(movement)(
        brand_id=brand_id,
        subject_id=movement.member_id,
        occurred_at=movement.occurred_at,
        data=PointsMovement(
            member_id=movement.member_id,
            entry_id=entry_id,
            kind=movement.kind,
            bucket=movement.bucket,
            points=movement.points,
            reason=movement.reason,
            source_type=movement.source_type,
            source_id=movement.source_id,
            available=after.available,
            pending=after.pending,
        ),
    )


async def post(
    session: AsyncSession,
    brand_id: uuid.UUID,
    program: Program,
    movement: Movement,
    *,
    allow_negative: bool = False,
    from_lots: Sequence[uuid.UUID] = (),
    locked: Balances | None = None,
) -> Posted:
    """Append one entry and move the balances it changes; the caller's transaction commits it.

    A debit takes from the oldest lots, or first from `from_lots` when given (expiry names the
    lots that are due).

    A caller that holds the member's account lock may pass the balances it read under it
    (`locked`): nothing else can move them before the commit, so the entry and its lot are
    known up front and written with the balance change in one round trip.
    """
    if movement.points == 0:
        raise ValueError("a ledger entry moves a non-zero number of points")
    repository = LedgerRepository(session)
    into_available = movement.bucket == Bucket.AVAILABLE
    change = balance_change(movement, allow_negative=allow_negative)
    entry = LedgerEntry(
        id=new_id(),
        brand_id=brand_id,
        member_id=movement.member_id,
        kind=movement.kind,
        bucket=movement.bucket,
        points=movement.points,
        reason=movement.reason,
        source_type=movement.source_type,
        source_id=movement.source_id,
        occurred_at=movement.occurred_at,
    )
    credit = into_available and movement.points > 0
    balances: Balances | None
    if locked is not None:
        expected = Balances(locked.available + change.available, locked.pending + change.pending)
        lot = _lot_for(brand_id, program, movement, entry.id, expected) if credit else None
        balances = await repository.move_and_append(movement.member_id, change, entry, lot)
        if balances is not None and balances != expected:
            raise RuntimeError(
                f"member {movement.member_id}: balances moved to {balances}, not {expected}: "
                "the caller did not hold the account lock it claimed"
            )
    else:
        balances = await repository.move_balances(movement.member_id, change)
        if balances is not None:
            lot = _lot_for(brand_id, program, movement, entry.id, balances) if credit else None
            await repository.append(entry, lot)
    if balances is None:
        raise InsufficientPoints(
            f"The member has too few {movement.bucket.value} points for this ({-movement.points})."
        )
    if into_available and movement.points < 0:
        # Spending takes from the oldest lots; whatever no lot covers is a negative balance.
        await repository.take_from_lots(movement.member_id, -movement.points, from_lots)
    await OUTBOX.add(session, points_event(brand_id, movement, entry.id, balances))
    return Posted(entry.id, balances)


def spendable(points: int, after_available: int) -> int:
    """How much of a credit of `points` to `available` opens a spendable lot (0: none).

    A negative balance (a return after the points were spent) is paid back first: only what
    is left over becomes a spendable lot.
    """
    before = after_available - points
    return points if before >= 0 else max(0, after_available)


def _lot_for(
    brand_id: uuid.UUID,
    program: Program,
    movement: Movement,
    entry_id: uuid.UUID,
    after: Balances,
) -> Lot | None:
    """The spendable lot a credit to `available` opens, if any (see `spendable`)."""
    points = spendable(movement.points, after.available)
    if points == 0:
        return None
    return Lot(
        id=new_id(),
        brand_id=brand_id,
        member_id=movement.member_id,
        entry_id=entry_id,
        points=points,
        remaining=points,
        earned_at=movement.occurred_at,
        expires_at=lot_expiry(program, movement.occurred_at),
    )


def release_movements(
    *,
    member_id: uuid.UUID,
    points: int,
    reason: str,
    source_type: str,
    source_id: str | None,
    occurred_at: datetime,
) -> tuple[Movement, Movement]:
    """The pair of entries that make pending points available: out of pending, into available."""
    # Two constructions: `dataclasses.replace` costs as much again, and every purchase of a
    # bulk history load is released.
    out_of_pending, into_available = (
        Movement(
            member_id=member_id,
            kind=EntryKind.RELEASE,
            bucket=bucket,
            points=signed,
            reason=reason,
            source_type=source_type,
            source_id=source_id,
            occurred_at=occurred_at,
        )
        for bucket, signed in ((Bucket.PENDING, -points), (Bucket.AVAILABLE, points))
    )
    return out_of_pending, into_available


async def release_pending(
    session: AsyncSession,
    brand_id: uuid.UUID,
    program: Program,
    *,
    member_id: uuid.UUID,
    points: int,
    reason: str,
    source_type: str,
    source_id: str | None,
    occurred_at: datetime,
) -> Posted:
    """Pending points become available: a pair of entries, so both buckets still sum up."""
    out_of_pending, into_available = release_movements(
        member_id=member_id,
        points=points,
        reason=reason,
        source_type=source_type,
        source_id=source_id,
        occurred_at=occurred_at,
    )
    await post(session, brand_id, program, out_of_pending)
    return await post(session, brand_id, program, into_available)


async def ledger_matches(session: AsyncSession, member_id: uuid.UUID) -> bool:
    """The invariant, for one member: the cached balances equal the sums of their entries."""
    return not await LedgerRepository(session).drifted_accounts(member_ids=[member_id])


# --- The nightly audit ------------------------------------------------------------------------

# How many drifted accounts one audit reads and names; past it, it says "at least".
AUDIT_LIMIT = 1_000

DRIFTED_ACCOUNTS = Gauge(
    "kinfolk_rewards_ledger_drifted_accounts",
    "Accounts whose cached balances differed from the sum of their ledger entries at the last "
    f"audit (`rewards.audit_ledger`, nightly; at most {AUDIT_LIMIT}). Anything but 0 is a bug.",
)


async def audit_ledger(session: AsyncSession, *, brand_id: uuid.UUID | None = None) -> int:
    """The invariant, for every account (of one brand, or of all): its cached available and
    pending balances equal the sums of its entries. Every account that breaks it is logged at
    error level with both figures, and the count goes to DRIFTED_ACCOUNTS; returns the count.

    Nothing is corrected: which side is right (a lost entry, or a cached sum written wrong)
    is for a person to find out, and an automatic fix would hide the bug that caused it.
    """
    drifted: list[Drift] = await LedgerRepository(session).drifted_accounts(
        brand_id, limit=AUDIT_LIMIT
    )
    for drift in drifted:
        log.error(
            "rewards.ledger_drift",
            brand_id=str(drift.brand_id),
            member_id=str(drift.member_id),
            cached_available=drift.cached.available,
            cached_pending=drift.cached.pending,
            entries_available=drift.entries.available,
            entries_pending=drift.entries.pending,
        )
    DRIFTED_ACCOUNTS.set(len(drifted))
    log.info(
        "rewards.ledger_audited",
        brand_id=str(brand_id) if brand_id is not None else "all",
        drifted=len(drifted),
        capped=len(drifted) == AUDIT_LIMIT,
    )
    return len(drifted)
