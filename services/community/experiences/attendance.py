"""Check-in and reviews: attendance is marked once per booking, and attendees review afterwards.
Functions here never commit.

**Check-in** marks a confirmed booking as attended, exactly once: by the host or staff
(`POST /bookings/{id}/check-in`), or by the member typing the session's check-in code, which the
host shows at the door (`POST /sessions/{id}/check-in`; a wrong code is 403 `WrongCheckInCode`).
The booking row is locked, so two check-ins at once mark it once and the second is 409
`AlreadyCheckedIn`. Only confirmed bookings (409 `BookingNotConfirmed`), and only from
`CHECK_IN_OPENS_BEFORE` the start until `CHECK_IN_CLOSES_AFTER` the end (409 `CheckInClosed`).
`experience.checked_in` earns attendance points through rewards' activity rules.

**Reviews.** Once the session has ended (409 `SessionNotEnded` before), a member who was checked
in may rate it 1-5 with words, once (403 `NotAnAttendee` for anyone else, 409 `AlreadyReviewed`
for a second). The experience keeps a count and a total of ratings for its average.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.access import Actor
from services.community.experiences.access import require_manager
from services.community.experiences.errors import (
    AlreadyCheckedIn,
    AlreadyReviewed,
    BookingNotConfirmed,
    BookingNotFound,
    CheckInClosed,
    NotAnAttendee,
    SessionNotEnded,
    WrongCheckInCode,
)
from services.community.experiences.events import (
    CheckedInData,
    ExperienceCheckedIn,
    ExperienceReviewed,
    ReviewedData,
)
from services.community.experiences.lookup import get_experience, session_and_experience
from services.community.experiences.models import (
    Booking,
    BookingStatus,
    CheckInMethod,
    Experience,
    ExperienceReview,
    ExperienceSession,
)
from services.community.experiences.repository import ExperienceRepository
from services.community.experiences.schemas import ReviewCreate
from services.community.models import OUTBOX, CommunityMember
from services.kernel.clock import utcnow
from services.kernel.ids import new_id
from services.kernel.pagination import PageRequest

CHECK_IN_OPENS_BEFORE = timedelta(minutes=30)
CHECK_IN_CLOSES_AFTER = timedelta(hours=6)


async def _mark_attended(
    session: AsyncSession,
    booking: Booking,
    row: ExperienceSession,
    method: CheckInMethod,
    now: datetime,
) -> Booking:
    """Check in a booking whose row is locked."""
    check_attendable(booking, row, now)
    mark_attended(booking, method, now)
    await ExperienceRepository(session).flush()
    await OUTBOX.add(session, checked_in_event(booking, method, now))
    return booking


def check_attendable(booking: Booking, row: ExperienceSession, now: datetime) -> None:
    """A confirmed booking, not checked in yet, around the session's time."""
    if booking.checked_in_at is not None:
        raise AlreadyCheckedIn(f"Checked in at {booking.checked_in_at.isoformat()}.")
    if booking.status != BookingStatus.CONFIRMED:
        raise BookingNotConfirmed(f"This booking is {booking.status.value}, not confirmed.")
    opens, closes = row.starts_at - CHECK_IN_OPENS_BEFORE, row.ends_at + CHECK_IN_CLOSES_AFTER
    if not opens <= now <= closes:
        raise CheckInClosed(
            {
                "message": "Check-in is open only around the session.",
                "opens_at": opens.isoformat(),
                "closes_at": closes.isoformat(),
            }
        )


def mark_attended(booking: Booking, method: CheckInMethod, now: datetime) -> None:
    booking.checked_in_at = now
    booking.check_in_method = method
    booking.updated_at = now


def checked_in_event(booking: Booking, method: CheckInMethod, now: datetime) -> ExperienceCheckedIn:
    return ExperienceCheckedIn(
        brand_id=booking.brand_id,
        subject_id=booking.member_id,
        occurred_at=now,
        data=CheckedInData(
            booking_id=booking.id,
            member_id=booking.member_id,
            session_id=booking.session_id,
            experience_id=booking.experience_id,
            method=method,
        ),
    )


def check_code(row: ExperienceSession, code: str) -> None:
    """403 `WrongCheckInCode` unless `code` is the session's (ignoring case and spaces)."""
    if not secrets.compare_digest(code.strip().upper().encode(), row.check_in_code.encode()):
        raise WrongCheckInCode()


async def check_in_booking(
    session: AsyncSession, actor: Actor, booking_id: uuid.UUID, now: datetime | None = None
) -> Booking:
    """The host or staff check a guest in."""
    repository = ExperienceRepository(session)
    found = await repository.booking(actor.brand_id, booking_id)
    if found is None:
        raise BookingNotFound(f"No booking {booking_id} in this brand.")
    row, experience = await session_and_experience(session, actor.brand_id, found.session_id)
    require_manager(actor, experience)
    booking = await repository.booking(actor.brand_id, booking_id, lock=True)
    assert booking is not None  # bookings are never deleted
    method = CheckInMethod.STAFF if actor.is_staff else CheckInMethod.HOST
    return await _mark_attended(session, booking, row, method, now or utcnow())


async def check_in_with_code(
    session: AsyncSession,
    member: CommunityMember,
    session_id: uuid.UUID,
    code: str,
    now: datetime | None = None,
) -> Booking:
    """The member checks themselves in with the code the host shows."""
    row, _ = await session_and_experience(session, member.brand_id, session_id)
    check_code(row, code)
    booking = await ExperienceRepository(session).live_booking(row.id, member.member_id)
    if booking is None:
        raise BookingNotFound("You have no booking for this session.")
    return await _mark_attended(session, booking, row, CheckInMethod.CODE, now or utcnow())


async def review(
    session: AsyncSession,
    member: CommunityMember,
    session_id: uuid.UUID,
    payload: ReviewCreate,
    now: datetime | None = None,
) -> ExperienceReview:
    now = now or utcnow()
    repository = ExperienceRepository(session)
    row, experience = await session_and_experience(session, member.brand_id, session_id)
    check_review_open(row, now)
    # Locked: the same member's concurrent reviews run one after the other.
    booking = await repository.live_booking(row.id, member.member_id)
    attended = check_reviewer(booking, await repository.review_of(row.id, member.member_id))
    created = new_review(attended, experience, payload, now)
    await repository.add(created)
    await repository.add_review_to_rating(experience.id, payload.rating)
    await OUTBOX.add(session, reviewed_event(created, experience))
    return created


def check_review_open(row: ExperienceSession, now: datetime) -> None:
    if now < row.ends_at:
        raise SessionNotEnded(f"Reviews open when the session ends ({row.ends_at.isoformat()}).")


def check_reviewer(booking: Booking | None, existing: ExperienceReview | None) -> Booking:
    """The member's live booking, checked in, not reviewed yet; returns the booking."""
    if booking is None or booking.checked_in_at is None:
        raise NotAnAttendee()
    if existing is not None:
        raise AlreadyReviewed()
    return booking


def new_review(
    booking: Booking, experience: Experience, payload: ReviewCreate, now: datetime
) -> ExperienceReview:
    return ExperienceReview(
        id=new_id(),
        brand_id=booking.brand_id,
        experience_id=experience.id,
        session_id=booking.session_id,
        booking_id=booking.id,
        member_id=booking.member_id,
        rating=payload.rating,
        body=payload.body,
        created_at=now,
    )


def reviewed_event(review: ExperienceReview, experience: Experience) -> ExperienceReviewed:
    return ExperienceReviewed(
        brand_id=review.brand_id,
        subject_id=review.member_id,
        occurred_at=review.created_at,
        data=ReviewedData(
            review_id=review.id,
            experience_id=experience.id,
            session_id=review.session_id,
            member_id=review.member_id,
            host_member_id=experience.host_member_id,
            rating=review.rating,
        ),
    )


async def reviews(
    session: AsyncSession, brand_id: uuid.UUID, experience_id: uuid.UUID, page: PageRequest
) -> Sequence[ExperienceReview]:
    experience = await get_experience(session, brand_id, experience_id)
    return await ExperienceRepository(session).reviews(brand_id, experience.id, page)
