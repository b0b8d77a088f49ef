"""Events of the community's experiences.

The contract with rewards (which moves the points):

- `experience.payment_requested` (internal): a booking of a priced session holds its seats and
  asks rewards to take `points` (price x seats). Rewards answers with `points.redeemed`
  (`source_type` "experience_booking", `source_id` the booking id) or `points.payment_declined`.
- `experience.cancelled`: rewards gives back `refund_points` (0: nothing to give back). It comes
  once per booking, and once more with `reason` "late_payment" if rewards took the points after
  the booking had already ended (declined, expired or cancelled while awaiting payment).
- `experience.checked_in`: attendance, which earns points through rewards' activity rules.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import AwareDatetime

from services.community.experiences.models import BookingStatus, CheckInMethod, ExperienceKind
from services.kernel.events import Event, EventData


class SessionData(EventData):
    session_id: uuid.UUID
    experience_id: uuid.UUID
    title: str
    kind: ExperienceKind
    tags: list[str]
    host_member_id: uuid.UUID | None
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    time_zone: str
    online: bool
    capacity: int
    price_points: int | None


class SessionScheduled(Event):
    """A session was added to an experience and can be booked (subject: the host, if a member)."""

    type: Literal["experience.session_scheduled"] = "experience.session_scheduled"
    version: Literal[1] = 1
    data: SessionData


class SessionCancelledData(SessionData):
    reason: str | None
    bookings_cancelled: int


class SessionCancelledEvent(Event):
    """The host or staff cancelled a session; each booking gets its own `experience.cancelled`."""

    type: Literal["experience.session_cancelled"] = "experience.session_cancelled"
    version: Literal[1] = 1
    data: SessionCancelledData


class BookingData(EventData):
    booking_id: uuid.UUID
    member_id: uuid.UUID
    session_id: uuid.UUID
    experience_id: uuid.UUID
    seats: int


class BookedData(BookingData):
    points: int  # what the seats cost in points; 0 for a free session
    promoted_from_waitlist: bool
    starts_at: AwareDatetime


class ExperienceBooked(Event):
    """A booking is confirmed: at once for a free session, after payment for a priced one."""

    type: Literal["experience.booked"] = "experience.booked"
    version: Literal[1] = 1
    data: BookedData


class WaitlistedData(BookingData):
    position: int  # 1 is next in line


class ExperienceWaitlisted(Event):
    """The session was full: the member is on its waitlist."""

    type: Literal["experience.waitlisted"] = "experience.waitlisted"
    version: Literal[1] = 1
    data: WaitlistedData


class PaymentRequestedData(EventData):
    booking_id: uuid.UUID
    member_id: uuid.UUID
    session_id: uuid.UUID
    experience_id: uuid.UUID
    points: int
    title: str


class ExperiencePaymentRequested(Event):
    """Rewards should take `points` from the member and answer with `points.redeemed` or
    `points.payment_declined` (source_type "experience_booking", source_id the booking id)."""

    public: ClassVar[bool] = False

    type: Literal["experience.payment_requested"] = "experience.payment_requested"
    version: Literal[1] = 1
    data: PaymentRequestedData


class CancelReason(StrEnum):
    MEMBER = "member"  # the member cancelled
    SESSION_CANCELLED = "session_cancelled"  # the host or staff cancelled the whole session
    PAYMENT_DECLINED = "payment_declined"  # rewards refused the points
    PAYMENT_EXPIRED = "payment_expired"  # rewards did not answer in time
    LATE_PAYMENT = "late_payment"  # points arrived for a booking that had already ended


class CancelledData(BookingData):
    previous_status: BookingStatus
    reason: CancelReason
    refund_points: int  # what rewards should give back; 0 when nothing was paid or past cut-off


class ExperienceCancelled(Event):
    """A booking or waitlist place ended; rewards refunds `refund_points`."""

    type: Literal["experience.cancelled"] = "experience.cancelled"
    version: Literal[1] = 1
    data: CancelledData


class CheckedInData(EventData):
    booking_id: uuid.UUID
    member_id: uuid.UUID
    session_id: uuid.UUID
    experience_id: uuid.UUID
    method: CheckInMethod


class ExperienceCheckedIn(Event):
    """The member attended (marked once per booking): earns attendance points."""

    type: Literal["experience.checked_in"] = "experience.checked_in"
    version: Literal[1] = 1
    data: CheckedInData


class ReviewedData(EventData):
    review_id: uuid.UUID
    experience_id: uuid.UUID
    session_id: uuid.UUID
    member_id: uuid.UUID
    host_member_id: uuid.UUID | None
    rating: int


class ExperienceReviewed(Event):
    type: Literal["experience.reviewed"] = "experience.reviewed"
    version: Literal[1] = 1
    data: ReviewedData


EVENTS: tuple[type[Event], ...] = (
    SessionScheduled,
    SessionCancelledEvent,
    ExperienceBooked,
    ExperienceWaitlisted,
    ExperiencePaymentRequested,
    ExperienceCancelled,
    ExperienceCheckedIn,
    ExperienceReviewed,
)
