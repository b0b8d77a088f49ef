"""Booking sessions, the waitlist, paying in points and cancelling. Functions here never commit.

**Booking** (`book`) takes the session row lock (`SELECT ... FOR UPDATE`) first, so bookings of
one session run one at a time: the seat count read under the lock is the truth, capacity is never
exceeded, and waitlist numbers follow the order in which requests got the lock (their arrival).
Then it checks, in this order: the session exists in the brand (404 `SessionNotFound`), is not
cancelled (409 `SessionCancelled`) and has not started (409 `SessionStarted`); the seats asked
are within `max_seats_per_booking` (422 `TooManySeats`); the early-access window lets this
member's tier in (403 `EarlyAccessOnly`); the member has no live booking or waitlist place on it
(409 `AlreadyBooked`). Any refusal rolls back the whole request: nothing is written.

- Seats free: a free session's booking is `confirmed` at once (`experience.booked`); a priced
  one is `awaiting_payment`, holds its seats, and asks rewards for price x seats points
  (`experience.payment_requested`). Rewards answers with `points.redeemed` (then `confirmed`,
  `experience.booked`) or `points.payment_declined` (then `payment_declined`: seats freed,
  waitlist moved up). Unanswered after `PAYMENT_WINDOW` the job makes it `payment_expired`.
- Full: the member joins the waitlist (201, status `waitlisted`, `waitlist_position`,
  `experience.waitlisted`), or with `join_waitlist: false` is refused (409 `SessionFull`).

**The waitlist moves up** in the same transaction as anything that frees seats (a cancellation,
a declined or expired payment, a larger capacity): in arrival order, every waiting entry whose
seats fit in what is free is promoted, as if it had just booked (confirmed, or awaiting payment
for a priced session), and its `experience.booked` says `promoted_from_waitlist: true`. An
entry too large for the seats left is skipped, not blocking those behind it.

**Cancelling.** A member may cancel their live booking or waitlist place until the session
starts (409 `SessionStarted` after, 409 `AlreadyCheckedIn` once attended, 409 `BookingNotActive`
if it already ended). A confirmed, paid booking cancelled at least `cancellation_cutoff_hours`
before the start refunds every point paid; later it is still cancelled (seats freed for the
waitlist) but refunds nothing. `experience.cancelled` carries `refund_points` for rewards. A
session cancelled by its host or staff cancels every booking and waitlist place with a full
refund of what was paid, each with its own `experience.cancelled`. When a member is erased
(`services.community.erasure`), their live bookings end as their own cancellation would, and the
sessions they host that have not started are cancelled as a host cancels them.

**Late payments.** If rewards takes the points after the booking ended (cancelled, declined or
expired while awaiting payment), a second `experience.cancelled` with reason `late_payment`
gives every one of those points back.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.access import Actor
from services.community.experiences.access import may_manage, require_manager
from services.community.experiences.errors import (
    AlreadyBooked,
    AlreadyCheckedIn,
    BookingNotActive,
    BookingNotFound,
    EarlyAccessOnly,
    SessionCancelled,
    SessionFull,
    SessionStarted,
    TooManySeats,
)
from services.community.experiences.events import (
    BookedData,
    CancelledData,
    CancelReason,
    ExperienceBooked,
    ExperienceCancelled,
    ExperiencePaymentRequested,
    ExperienceWaitlisted,
    PaymentRequestedData,
    SessionCancelledData,
    SessionCancelledEvent,
    WaitlistedData,
)
from services.community.experiences.lookup import session_and_experience
from services.community.experiences.models import (
    ACTIVE_STATUSES,
    HOLDING_STATUSES,
    Booking,
    BookingStatus,
    CancelledBy,
    Experience,
    ExperienceSession,
    PlaceKind,
    SessionStatus,
)
from services.community.experiences.repository import ExperienceRepository
from services.community.experiences.schemas import BookingCreate, BookingRead
from services.community.members.repository import CommunityMemberRepository
from services.community.members.service import is_suspended
from services.community.models import OUTBOX, CommunityMember
from services.kernel.clock import utcnow
from services.kernel.ids import new_id
from services.kernel.pagination import PageRequest

log = structlog.get_logger(__name__)

# How long a priced booking holds its seats waiting for rewards to take the points.
PAYMENT_WINDOW = timedelta(minutes=15)


# --- Booking ----------------------------------------------------------------------------------


def check_bookable(
    row: ExperienceSession, member: CommunityMember, seats: int, now: datetime
) -> None:
    if row.status == SessionStatus.CANCELLED:
        raise SessionCancelled(f"This session was cancelled: {row.cancel_reason or 'no reason'}.")
    if row.starts_at <= now:
        raise SessionStarted(
            f"This session started at {row.starts_at.isoformat()}; book an upcoming one."
        )
    if seats > row.max_seats_per_booking:
        raise TooManySeats(
            f"A booking of this session may take at most {row.max_seats_per_booking} seat(s); "
            f"{seats} were asked."
        )
    opens = row.general_booking_opens_at
    if opens is not None and now < opens and member.tier_id not in row.early_access_tier_ids:
        raise EarlyAccessOnly(
            {
                "message": "Only early-access tiers may book this session before general "
                "booking opens.",
                "general_booking_opens_at": opens.isoformat(),
            }
        )


async def book(
    session: AsyncSession,
    member: CommunityMember,
    session_id: uuid.UUID,
    payload: BookingCreate,
    now: datetime | None = None,
) -> BookingRead:
    now = now or utcnow()
    repository = ExperienceRepository(session)
    row, experience = await session_and_experience(session, member.brand_id, session_id, lock=True)
    check_bookable(row, member, payload.seats, now)
    existing = await repository.live_booking(row.id, member.member_id)
    if existing is not None:
        raise already_booked(existing)
    booking = new_booking(member, row, experience, payload.seats, now)
    if row.capacity - row.seats_taken >= payload.seats:
        row.seats_taken += payload.seats
        await _hold_seats(session, booking, row, experience, now)
        await repository.add(booking)
        return BookingRead.of(booking)
    if not payload.join_waitlist:
        raise session_full(row, payload.seats)
    row.waitlist_counter += 1
    booking.status = BookingStatus.WAITLISTED
    booking.waitlist_number = row.waitlist_counter
    await repository.add(booking)
    position = (await repository.waitlist_positions([booking]))[booking.id]
    await OUTBOX.add(session, waitlisted_event(booking, position, now))
    return BookingRead.of(booking, position)


def already_booked(existing: Booking) -> AlreadyBooked:
    return AlreadyBooked(
        {
            "message": "You already have a booking for this session; cancel it to book again.",
            "booking_id": str(existing.id),
            "status": existing.status.value,
        }
    )


def session_full(row: ExperienceSession, seats: int) -> SessionFull:
    return SessionFull(
        f"{row.capacity - row.seats_taken} seat(s) left, {seats} asked; "
        "book with join_waitlist true to wait for a seat."
    )


def new_booking(
    member: CommunityMember,
    row: ExperienceSession,
    experience: Experience,
    seats: int,
    now: datetime,
) -> Booking:
    """A member's booking of `seats` made at `now`, before it holds seats or waits (online and
    by the bulk loader)."""
    return Booking(
        id=new_id(),
        brand_id=member.brand_id,
        session_id=row.id,
        experience_id=experience.id,
        member_id=member.member_id,
        seats=seats,
        points=(row.price_points or 0) * seats,
        paid_points=0,
        refund_points=0,
        promoted=False,
        waitlist_number=None,
        payment_due_at=None,
        confirmed_at=None,
        cancelled_at=None,
        cancelled_by=None,
        checked_in_at=None,
        check_in_method=None,
        created_at=now,
        updated_at=now,
    )


def waitlisted_event(booking: Booking, position: int, now: datetime) -> ExperienceWaitlisted:
    return ExperienceWaitlisted(
        brand_id=booking.brand_id,
        subject_id=booking.member_id,
        occurred_at=now,
        data=WaitlistedData(**_booking_fields(booking), position=position),
    )


def booked_event(booking: Booking, row: ExperienceSession, now: datetime) -> ExperienceBooked:
    return ExperienceBooked(
        brand_id=booking.brand_id,
        subject_id=booking.member_id,
        occurred_at=now,
        data=BookedData(
            **_booking_fields(booking),
            points=booking.paid_points,
            promoted_from_waitlist=booking.promoted,
            starts_at=row.starts_at,
        ),
    )


def cancelled_event(
    booking: Booking,
    previous: BookingStatus,
    reason: CancelReason,
    refund_points: int,
    now: datetime,
) -> ExperienceCancelled:
    return ExperienceCancelled(
        brand_id=booking.brand_id,
        subject_id=booking.member_id,
        occurred_at=now,
        data=CancelledData(
            **_booking_fields(booking),
            previous_status=previous,
            reason=reason,
            refund_points=refund_points,
        ),
    )


def _booking_fields(booking: Booking) -> dict[str, object]:
    return {
        "booking_id": booking.id,
        "member_id": booking.member_id,
        "session_id": booking.session_id,
        "experience_id": booking.experience_id,
        "seats": booking.seats,
    }


async def _hold_seats(
    session: AsyncSession,
    booking: Booking,
    row: ExperienceSession,
    experience: Experience,
    now: datetime,
) -> None:
    """The booking now holds its seats (already counted in `seats_taken`): confirmed if free,
    else awaiting the points from rewards."""
    booking.updated_at = now
    if booking.points == 0:
        await _confirm(session, booking, row, now)
        return
    booking.status = BookingStatus.AWAITING_PAYMENT
    booking.payment_due_at = now + PAYMENT_WINDOW
    await OUTBOX.add(
        session,
        ExperiencePaymentRequested(
            brand_id=booking.brand_id,
            subject_id=booking.member_id,
            occurred_at=now,
            data=PaymentRequestedData(
                booking_id=booking.id,
                member_id=booking.member_id,
                session_id=booking.session_id,
                experience_id=booking.experience_id,
                points=booking.points,
                title=experience.title,
            ),
        ),
    )


async def _confirm(
    session: AsyncSession, booking: Booking, row: ExperienceSession, now: datetime
) -> None:
    confirm(booking, now)
    await OUTBOX.add(session, booked_event(booking, row, now))


def confirm(booking: Booking, now: datetime) -> None:
    booking.status = BookingStatus.CONFIRMED
    booking.confirmed_at = now
    booking.payment_due_at = None
    booking.updated_at = now


async def promote_waitlist(
    session: AsyncSession, row: ExperienceSession, experience: Experience, now: datetime
) -> None:
    """Move the waitlist up into the seats free now (call with the session row locked), in
    arrival order, skipping entries that do not fit and members who may not act now."""
    if row.status != SessionStatus.SCHEDULED or row.starts_at <= now:
        return
    free = row.capacity - row.seats_taken
    if free <= 0:
        return
    waiting = await ExperienceRepository(session).waitlist(row.id)
    members = await CommunityMemberRepository(session).many(
        experience.brand_id, [entry.member_id for entry in waiting]
    )
    for entry in to_promote(waiting, members, free, now):
        row.seats_taken += entry.seats
        entry.promoted = True
        await _hold_seats(session, entry, row, experience, now)
    await ExperienceRepository(session).flush()


def to_promote(
    waiting: Sequence[Booking],
    members: Mapping[uuid.UUID, CommunityMember],
    free: int,
    now: datetime,
) -> list[Booking]:
    """The waitlist entries (given in arrival order) that move up into `free` seats."""
    promoted: list[Booking] = []
    for entry in waiting:
        member = members.get(entry.member_id)
        if entry.seats > free or member is None or is_suspended(member, now):
            # Too big for the free seats, or a member who may not act now (suspended or erased):
            # they keep their place, and those behind them move up.
            continue
        free -= entry.seats
        promoted.append(entry)
        if free == 0:
            break
    return promoted


# --- Ending bookings --------------------------------------------------------------------------


async def _end(
    session: AsyncSession,
    booking: Booking,
    row: ExperienceSession,
    *,
    status: BookingStatus,
    reason: CancelReason,
    refund_points: int,
    cancelled_by: CancelledBy | None,
    now: datetime,
) -> None:
    """End a live booking: free its seats (if it held any) and tell rewards what to refund.
    The caller moves the waitlist up afterwards."""
    previous = end_booking(
        booking,
        row,
        status=status,
        refund_points=refund_points,
        cancelled_by=cancelled_by,
        now=now,
    )
    await _emit_cancelled(session, booking, previous, reason, refund_points, now)


def end_booking(
    booking: Booking,
    row: ExperienceSession,
    *,
    status: BookingStatus,
    refund_points: int,
    cancelled_by: CancelledBy | None,
    now: datetime,
) -> BookingStatus:
    """The booking ends: its seats (if it held any) are freed. Returns its status before."""
    previous = booking.status
    if previous in HOLDING_STATUSES:
        row.seats_taken -= booking.seats
    booking.status = status
    booking.refund_points = refund_points
    booking.payment_due_at = None
    booking.cancelled_at = now
    booking.cancelled_by = cancelled_by
    booking.updated_at = now
    return previous


async def _emit_cancelled(
    session: AsyncSession,
    booking: Booking,
    previous: BookingStatus,
    reason: CancelReason,
    refund_points: int,
    now: datetime,
) -> None:
    await OUTBOX.add(session, cancelled_event(booking, previous, reason, refund_points, now))


def refund_due(booking: Booking, row: ExperienceSession, now: datetime) -> int:
    """What a member's own cancellation gives back: all points paid if at least the cut-off
    before the start, else nothing."""
    cutoff = row.starts_at - timedelta(hours=row.cancellation_cutoff_hours)
    if booking.status != BookingStatus.CONFIRMED or now >= cutoff:
        return 0
    return booking.paid_points


async def _locked_booking(
    session: AsyncSession, brand_id: uuid.UUID, booking_id: uuid.UUID
) -> tuple[Booking, ExperienceSession, Experience] | None:
    """The booking with its session and experience, locked in the usual order (session, then
    booking): the booking is read once unlocked to learn its session."""
    repository = ExperienceRepository(session)
    found = await repository.booking(brand_id, booking_id)
    if found is None:
        return None
    row, experience = await session_and_experience(session, brand_id, found.session_id, lock=True)
    booking = await repository.booking(brand_id, booking_id, lock=True)
    assert booking is not None  # bookings are never deleted
    return booking, row, experience


async def cancel_booking(
    session: AsyncSession,
    member: CommunityMember,
    booking_id: uuid.UUID,
    now: datetime | None = None,
) -> BookingRead:
    now = now or utcnow()
    locked = await _locked_booking(session, member.brand_id, booking_id)
    if locked is None or locked[0].member_id != member.member_id:
        raise BookingNotFound(f"You have no booking {booking_id}.")
    booking, row, experience = locked
    check_cancellable(booking, row, now)
    await _cancel_as_member(session, booking, row, experience, now)
    return BookingRead.of(booking)


async def _cancel_as_member(
    session: AsyncSession,
    booking: Booking,
    row: ExperienceSession,
    experience: Experience,
    now: datetime,
) -> None:
    """The member's own cancellation: refunded if before the cut-off, and the waitlist moves up
    into the seats it held."""
    await _end(
        session,
        booking,
        row,
        status=BookingStatus.CANCELLED,
        reason=CancelReason.MEMBER,
        refund_points=refund_due(booking, row, now),
        cancelled_by=CancelledBy.MEMBER,
        now=now,
    )
    await ExperienceRepository(session).flush()
    await promote_waitlist(session, row, experience, now)


def check_cancellable(booking: Booking, row: ExperienceSession, now: datetime) -> None:
    """A member may cancel a live booking or waitlist place, not attended, before the start."""
    if booking.status not in ACTIVE_STATUSES:
        raise BookingNotActive(f"This booking is already {booking.status.value}.")
    if booking.checked_in_at is not None:
        raise AlreadyCheckedIn("You were checked in at this session; it cannot be cancelled.")
    if row.starts_at <= now:
        raise SessionStarted(
            f"This session started at {row.starts_at.isoformat()}; it can no longer be cancelled."
        )


async def cancel_session(
    session: AsyncSession,
    actor: Actor,
    session_id: uuid.UUID,
    reason: str | None,
    now: datetime | None = None,
) -> tuple[ExperienceSession, Experience]:
    """Cancel a session and every booking and waitlist place on it, refunding all points paid.
    Cancelling a cancelled session again changes nothing."""
    now = now or utcnow()
    row, experience = await session_and_experience(session, actor.brand_id, session_id, lock=True)
    require_manager(actor, experience)
    if row.status == SessionStatus.CANCELLED:
        return row, experience
    if row.starts_at <= now:
        raise SessionStarted(f"This session started at {row.starts_at.isoformat()}.")
    await _cancel_locked_session(session, row, experience, reason, now)
    return row, experience


async def _cancel_locked_session(
    session: AsyncSession,
    row: ExperienceSession,
    experience: Experience,
    reason: str | None,
    now: datetime,
) -> None:
    """Cancel a scheduled session that has not started (its row locked by the caller), with
    every booking and waitlist place on it."""
    row.status = SessionStatus.CANCELLED
    row.cancel_reason = reason
    row.cancelled_at = now
    row.updated_at = now
    live = await ExperienceRepository(session).active_bookings(row.id)
    for booking in live:
        await _end(
            session,
            booking,
            row,
            status=BookingStatus.CANCELLED,
            reason=CancelReason.SESSION_CANCELLED,
            refund_points=booking.paid_points if booking.status == BookingStatus.CONFIRMED else 0,
            cancelled_by=CancelledBy.HOST,
            now=now,
        )
    await ExperienceRepository(session).flush()
    await OUTBOX.add(
        session,
        SessionCancelledEvent(
            brand_id=row.brand_id,
            subject_id=experience.host_member_id,
            occurred_at=now,
            data=SessionCancelledData(
                session_id=row.id,
                experience_id=experience.id,
                title=experience.title,
                kind=experience.kind,
                tags=list(experience.tags),
                host_member_id=experience.host_member_id,
                starts_at=row.starts_at,
                ends_at=row.ends_at,
                time_zone=row.time_zone,
                online=row.place_kind == PlaceKind.ONLINE,
                capacity=row.capacity,
                price_points=row.price_points,
                reason=reason,
                bookings_cancelled=len(live),
            ),
        ),
    )


async def cancel_session_of_erased_host(
    session: AsyncSession,
    brand_id: uuid.UUID,
    session_id: uuid.UUID,
    reason: str,
    now: datetime,
) -> None:
    """The host was erased: their session is cancelled as if they had cancelled it themselves
    (every guest refunded in full, each told by `experience.cancelled`). One that already
    started or was cancelled stays as it is."""
    row, experience = await session_and_experience(session, brand_id, session_id, lock=True)
    if row.status == SessionStatus.CANCELLED or row.starts_at <= now:
        return
    await _cancel_locked_session(session, row, experience, reason, now)


async def cancel_booking_of_erased_member(
    session: AsyncSession, brand_id: uuid.UUID, booking_id: uuid.UUID, now: datetime
) -> None:
    """The member was erased: their live booking or waitlist place on a session that has not
    started ends as their own cancellation would (refunded if before the cut-off), and the
    waitlist moves up into the seats it held. Anything else stays as it is."""
    locked = await _locked_booking(session, brand_id, booking_id)
    if locked is None:
        return
    booking, row, experience = locked
    if (
        booking.status not in ACTIVE_STATUSES
        or booking.checked_in_at is not None
        or row.starts_at <= now
    ):
        return
    await _cancel_as_member(session, booking, row, experience, now)


# --- Payments (rewards' answers) --------------------------------------------------------------


async def payment_taken(
    session: AsyncSession,
    brand_id: uuid.UUID,
    booking_id: uuid.UUID,
    points: int,
    now: datetime | None = None,
) -> None:
    """Rewards took `points` for the booking: confirm it, or, if it ended meanwhile, give the
    points back (`experience.cancelled`, reason `late_payment`)."""
    now = now or utcnow()
    locked = await _locked_booking(session, brand_id, booking_id)
    if locked is None:
        log.warning("experience_payment_for_unknown_booking", booking_id=str(booking_id))
        return
    booking, row, _ = locked
    if booking.paid_points:
        log.warning("experience_booking_paid_twice", booking_id=str(booking_id), points=points)
        return
    booking.paid_points = points
    booking.updated_at = now
    if booking.status == BookingStatus.AWAITING_PAYMENT:
        await _confirm(session, booking, row, now)
    else:
        booking.refund_points = points
        await _emit_cancelled(
            session, booking, booking.status, CancelReason.LATE_PAYMENT, points, now
        )
    await ExperienceRepository(session).flush()


async def _end_unpaid(
    session: AsyncSession,
    brand_id: uuid.UUID,
    booking_id: uuid.UUID,
    status: BookingStatus,
    reason: CancelReason,
    now: datetime,
) -> bool:
    locked = await _locked_booking(session, brand_id, booking_id)
    if locked is None or locked[0].status != BookingStatus.AWAITING_PAYMENT:
        return False  # unknown, or answered (paid, cancelled) meanwhile
    booking, row, experience = locked
    await _end(
        session,
        booking,
        row,
        status=status,
        reason=reason,
        refund_points=0,
        cancelled_by=None,
        now=now,
    )
    await ExperienceRepository(session).flush()
    await promote_waitlist(session, row, experience, now)
    return True


async def payment_declined(
    session: AsyncSession,
    brand_id: uuid.UUID,
    booking_id: uuid.UUID,
    now: datetime | None = None,
) -> None:
    """Rewards refused the points: the booking ends, its seats go to the waitlist."""
    await _end_unpaid(
        session,
        brand_id,
        booking_id,
        BookingStatus.PAYMENT_DECLINED,
        CancelReason.PAYMENT_DECLINED,
        now or utcnow(),
    )


async def expire_overdue_payments(
    session: AsyncSession, now: datetime | None = None, limit: int = 500
) -> int:
    """The job: bookings whose payment rewards has not answered within `PAYMENT_WINDOW` end as
    `payment_expired`, freeing their seats. Returns how many."""
    now = now or utcnow()
    expired = 0
    for brand_id, booking_id in await ExperienceRepository(session).overdue_payments(now, limit):
        if await _end_unpaid(
            session,
            brand_id,
            booking_id,
            BookingStatus.PAYMENT_EXPIRED,
            CancelReason.PAYMENT_EXPIRED,
            now,
        ):
            expired += 1
    return expired


# --- Reading ----------------------------------------------------------------------------------


async def booking_views(session: AsyncSession, rows: Sequence[Booking]) -> list[BookingRead]:
    positions = await ExperienceRepository(session).waitlist_positions(rows)
    return [BookingRead.of(row, positions.get(row.id)) for row in rows]


async def get_booking(session: AsyncSession, actor: Actor, booking_id: uuid.UUID) -> BookingRead:
    """A member sees their own bookings; staff and the host see every booking of the session."""
    repository = ExperienceRepository(session)
    booking = await repository.booking(actor.brand_id, booking_id)
    if booking is None:
        raise BookingNotFound(f"No booking {booking_id} in this brand.")
    if actor.member is None or booking.member_id != actor.member.member_id:
        experience = await repository.experience(actor.brand_id, booking.experience_id)
        if experience is None or not may_manage(actor, experience):
            raise BookingNotFound(f"No booking {booking_id} in this brand.")
    return (await booking_views(session, [booking]))[0]


async def session_bookings(
    session: AsyncSession,
    actor: Actor,
    session_id: uuid.UUID,
    page: PageRequest,
    status: BookingStatus | None,
) -> Sequence[Booking]:
    row, experience = await session_and_experience(session, actor.brand_id, session_id)
    require_manager(actor, experience)
    return await ExperienceRepository(session).session_bookings(row.id, page, status)


async def member_bookings(
    session: AsyncSession,
    member: CommunityMember,
    page: PageRequest,
    status: BookingStatus | None,
) -> Sequence[Booking]:
    return await ExperienceRepository(session).member_bookings(
        member.brand_id, member.member_id, page, status
    )
