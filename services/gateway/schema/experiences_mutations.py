"""What members do with experiences: book a session or join its waitlist, cancel, host an
experience and schedule its sessions, check guests in (hosts), review a session attended.

Each mutation checks its global ids before calling anything and lets the community decide the
rest: a refusal comes back as `userErrors` with the community's code (`SessionFull`,
`NotTheHost`, `ValidationError`, ...), and the community refuses before it writes, so a
mutation that answers `userErrors` has changed nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import strawberry

from services.gateway.calls import Rejected, input_uuid, send
from services.gateway.context import GatewayContext, GatewayInfo
from services.gateway.errors import UserError
from services.gateway.schema.experiences import (
    Booking,
    Experience,
    ExperienceKind,
    ExperienceReview,
    Session,
    booking_from_json,
    experience_from_json,
    review_from_json,
    session_from_json,
)

# --- Booking ----------------------------------------------------------------------------------


@strawberry.input(description="Seats on a session; a replay with the same key books nothing more.")
class BookSessionInput:
    session_id: strawberry.ID
    idempotency_key: str = strawberry.field(
        description="A new key per booking, the same when retrying: a replay returns the first "
        "booking and takes no seat."
    )
    seats: int = 1
    join_waitlist: bool = strawberry.field(
        default=False,
        description="When the session is full: true waits on its waitlist (a `WAITLISTED` "
        "booking), false refuses with `SessionFull`.",
    )


@strawberry.type
class BookSessionPayload:
    booking: Booking | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input(description="A place on a full session's waitlist (seats, if some are free).")
class JoinWaitlistInput:
    session_id: strawberry.ID
    idempotency_key: str = strawberry.field(
        description="A new key per request, the same when retrying."
    )
    seats: int = 1


@strawberry.type
class JoinWaitlistPayload:
    booking: Booking | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class CancelBookingInput:
    booking_id: strawberry.ID
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="Optional: a new key per request, the same when retrying; a retry then gets "
        "the first answer instead of `BookingNotActive`.",
    )


@strawberry.type
class CancelBookingPayload:
    booking: Booking | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


async def _book(
    context: GatewayContext, session_gid: str, seats: int, key: str, join_waitlist: bool
) -> Booking:
    session_id = input_uuid(session_gid, "sessionId", "Session")
    data = await send(
        context,
        "community",
        "POST",
        f"/community/v1/sessions/{session_id}/bookings",
        json={"seats": seats, "join_waitlist": join_waitlist},
        idempotency_key=key,
        subject="sessionId",
    )
    return booking_from_json(data)


# --- Hosting ----------------------------------------------------------------------------------


@strawberry.input(description="An experience the member hosts; add sessions with scheduleSession.")
class HostExperienceInput:
    title: str
    kind: ExperienceKind
    description: str = ""
    tags: list[str] = strawberry.field(default_factory=list)


@strawberry.type
class HostExperiencePayload:
    experience: Experience | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input(one_of=True, description="Where a session takes place: exactly one of these.")
class SessionPlaceInput:
    address: str | None = strawberry.UNSET
    url: str | None = strawberry.field(
        default=strawberry.UNSET, description="An http(s) link, shown to confirmed guests only."
    )


@strawberry.input(description="A session of an experience I host.")
class ScheduleSessionInput:
    experience_id: strawberry.ID
    starts_at: dt.datetime = strawberry.field(description="In the future, with an offset.")
    ends_at: dt.datetime
    time_zone: str = strawberry.field(description="IANA time zone, e.g. Europe/Paris.")
    place: SessionPlaceInput
    capacity: int
    price_points: int | None = strawberry.field(
        default=None, description="Points per seat; null: free."
    )
    max_seats_per_booking: int = 1
    cancellation_cutoff_hours: int = 24


@strawberry.type
class ScheduleSessionPayload:
    session: Session | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


def _place(place: SessionPlaceInput) -> dict[str, Any]:
    if isinstance(place.url, str):
        return {"kind": "online", "url": place.url}
    return {"kind": "address", "address": place.address}


# --- Attendance -------------------------------------------------------------------------------


@strawberry.input(description="A guest of a session I host, checked in at the door.")
class CheckInAttendeeInput:
    booking_id: strawberry.ID


@strawberry.type
class CheckInAttendeePayload:
    booking: Booking | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input(description="My review of a session I attended, once it has ended.")
class ReviewExperienceInput:
    session_id: strawberry.ID
    rating: int = strawberry.field(description="1 to 5.")
    text: str = ""


@strawberry.type
class ReviewExperiencePayload:
    review: ExperienceReview | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


# --- Mutations --------------------------------------------------------------------------------


@strawberry.type
class ExperiencesMutation:
    @strawberry.mutation(description="Book seats on a session (or wait for them: joinWaitlist).")
    async def book_session(self, info: GatewayInfo, input: BookSessionInput) -> BookSessionPayload:
        try:
            booking = await _book(
                info.context,
                input.session_id,
                input.seats,
                input.idempotency_key,
                input.join_waitlist,
            )
        except Rejected as rejected:
            return BookSessionPayload(user_errors=rejected.errors)
        return BookSessionPayload(booking=booking)

    @strawberry.mutation(
        description="Wait for seats on a full session: a WAITLISTED booking that moves up when "
        "seats free; booked at once if seats are free now."
    )
    async def join_waitlist(
        self, info: GatewayInfo, input: JoinWaitlistInput
    ) -> JoinWaitlistPayload:
        try:
            booking = await _book(
                info.context, input.session_id, input.seats, input.idempotency_key, True
            )
        except Rejected as rejected:
            return JoinWaitlistPayload(user_errors=rejected.errors)
        return JoinWaitlistPayload(booking=booking)

    @strawberry.mutation(
        description="Cancel my booking or waitlist place; points come back before the cut-off."
    )
    async def cancel_booking(
        self, info: GatewayInfo, input: CancelBookingInput
    ) -> CancelBookingPayload:
        try:
            booking = await _act_on_booking(
                info.context, input.booking_id, "cancel", input.idempotency_key
            )
        except Rejected as rejected:
            return CancelBookingPayload(user_errors=rejected.errors)
        return CancelBookingPayload(booking=booking)

    @strawberry.mutation(
        description="Host an experience (once my trust level allows it); then schedule sessions."
    )
    async def host_experience(
        self, info: GatewayInfo, input: HostExperienceInput
    ) -> HostExperiencePayload:
        body = {
            "title": input.title,
            "description": input.description,
            "kind": input.kind.value,
            "tags": input.tags,
        }
        try:
            data = await send(
                info.context, "community", "POST", "/community/v1/experiences", json=body
            )
        except Rejected as rejected:
            return HostExperiencePayload(user_errors=rejected.errors)
        return HostExperiencePayload(experience=experience_from_json(data))

    @strawberry.mutation(description="Schedule a session of an experience I host.")
    async def schedule_session(
        self, info: GatewayInfo, input: ScheduleSessionInput
    ) -> ScheduleSessionPayload:
        body = {
            "starts_at": input.starts_at.isoformat(),
            "ends_at": input.ends_at.isoformat(),
            "time_zone": input.time_zone,
            "place": _place(input.place),
            "capacity": input.capacity,
            "price_points": input.price_points,
            "max_seats_per_booking": input.max_seats_per_booking,
            "cancellation_cutoff_hours": input.cancellation_cutoff_hours,
        }
        try:
            experience_id = input_uuid(input.experience_id, "experienceId", "Experience")
            data = await send(
                info.context,
                "community",
                "POST",
                f"/community/v1/experiences/{experience_id}/sessions",
                json=body,
                subject="experienceId",
            )
        except Rejected as rejected:
            return ScheduleSessionPayload(user_errors=rejected.errors)
        return ScheduleSessionPayload(session=session_from_json(data))

    @strawberry.mutation(description="Check a guest in at a session I host (once per booking).")
    async def check_in_attendee(
        self, info: GatewayInfo, input: CheckInAttendeeInput
    ) -> CheckInAttendeePayload:
        try:
            booking = await _act_on_booking(info.context, input.booking_id, "check-in")
        except Rejected as rejected:
            return CheckInAttendeePayload(user_errors=rejected.errors)
        return CheckInAttendeePayload(booking=booking)

    @strawberry.mutation(description="Review a session I was checked in at, once it has ended.")
    async def review_experience(
        self, info: GatewayInfo, input: ReviewExperienceInput
    ) -> ReviewExperiencePayload:
        try:
            session_id = input_uuid(input.session_id, "sessionId", "Session")
            data = await send(
                info.context,
                "community",
                "POST",
                f"/community/v1/sessions/{session_id}/reviews",
                json={"rating": input.rating, "body": input.text},
                fields={"body": "text"},
                subject="sessionId",
            )
        except Rejected as rejected:
            return ReviewExperiencePayload(user_errors=rejected.errors)
        return ReviewExperiencePayload(review=review_from_json(data))


async def _act_on_booking(
    context: GatewayContext, global_id: str, action: str, key: str | None = None
) -> Booking:
    booking_id = input_uuid(global_id, "bookingId", "Booking")
    data = await send(
        context,
        "community",
        "POST",
        f"/community/v1/bookings/{booking_id}/{action}",
        idempotency_key=key,
        subject="bookingId",
    )
    return booking_from_json(data)
