"""Errors of experiences, sessions, bookings, check-in and reviews; each says what to do."""

from __future__ import annotations

from services.kernel.errors import Conflict, Forbidden, NotFound, ValidationFailed


class ExperienceNotFound(NotFound):
    """No such experience in this brand."""

    code = "ExperienceNotFound"


class SessionNotFound(NotFound):
    """No such session in this brand."""

    code = "SessionNotFound"


class BookingNotFound(NotFound):
    """No such booking in this brand (members see only their own)."""

    code = "BookingNotFound"


class NotTheHost(Forbidden):
    """Only the experience's host (or the brand's staff) may do this."""

    code = "NotTheHost"


class SessionCancelled(Conflict):
    """This session was cancelled by its host; pick another session."""

    code = "SessionCancelled"


class SessionStarted(Conflict):
    """This session has already started; book or cancel only before it starts."""

    code = "SessionStarted"


class TooManySeats(ValidationFailed):
    """Ask for no more seats than the session allows per booking (`max_seats_per_booking`)."""

    code = "TooManySeats"


class EarlyAccessOnly(Forbidden):
    """Booking is open only to early-access tiers until `general_booking_opens_at`; come back
    then."""

    code = "EarlyAccessOnly"


class AlreadyBooked(Conflict):
    """The member already has a booking (or a waitlist place) for this session; cancel it
    first to book again."""

    code = "AlreadyBooked"


class SessionFull(Conflict):
    """Every seat is taken; book with `join_waitlist: true` to wait for a seat."""

    code = "SessionFull"


class BookingNotActive(Conflict):
    """This booking is already cancelled, declined or expired."""

    code = "BookingNotActive"


class AlreadyCheckedIn(Conflict):
    """Attendance is marked once per booking, and this one is already checked in."""

    code = "AlreadyCheckedIn"


class BookingNotConfirmed(Conflict):
    """Only confirmed bookings can be checked in (not waitlisted, unpaid or cancelled ones)."""

    code = "BookingNotConfirmed"


class CheckInClosed(Conflict):
    """Check-in opens shortly before the session starts and closes some hours after it ends."""

    code = "CheckInClosed"


class WrongCheckInCode(Forbidden):
    """That is not this session's check-in code; ask the host for the code they were shown."""

    code = "WrongCheckInCode"


class CapacityBelowBooked(Conflict):
    """More seats are already booked than the new capacity; cancel bookings first."""

    code = "CapacityBelowBooked"


class SessionNotEnded(Conflict):
    """Reviews open once the session has ended."""

    code = "SessionNotEnded"


class NotAnAttendee(Forbidden):
    """Only members who were checked in at the session may review it."""

    code = "NotAnAttendee"


class AlreadyReviewed(Conflict):
    """Each attendee reviews a session once."""

    code = "AlreadyReviewed"
