"""Bulk loading of experiences' history: sessions and what happened on them, replayed in memory
by the online rules and written with COPY.

**What a load stands for.** A `SessionsReplay` takes the steps of history one by one, each as
the online function would have taken it with the clock at its moment, and checks it the same
way, raising the online errors:

- `schedule`: `service.add_session` by the replay's actor (staff, or the experience's host with
  the ability to host), starting after its moment. Only free sessions: a priced one's bookings
  wait for rewards to take the points (a saga history cannot replay), so it is refused
  (`PricedSessionInHistory`);
- `book`: `bookings.book` by a member free to act then (`CurrentMember`): the session not started,
  seats within the limit, the early-access window, one live booking per member; confirmed while
  seats are free, else on the waitlist (or 409 `SessionFull` with `join_waitlist: false`);
- `cancel`: `bookings.cancel_booking` (the member's own live booking, not attended, before the
  start), and the waitlist moves up in arrival order (`bookings.to_promote`), as online;
- `check_in`: `attendance.check_in_with_code`: the session's code, a confirmed booking, within
  the check-in window, once;
- `review`: `attendance.review`: after the end, by a member who was checked in, once.

Steps on one session come in time order (an earlier one is refused: `StepOutOfOrder`), none
after `now`. The rows and events are built by the online builders (`service.new_session`,
`scheduled_event`; `bookings.new_booking`, `confirm`, `end_booking`, `booked_event`,
`waitlisted_event`, `cancelled_event`; `attendance.mark_attended`, `checked_in_event`,
`new_review`, `reviewed_event`), each at its step's moment; the rows' ids are UUIDv7s of those
moments (`kernel.ids.id_at`), so they sort among ids made online then.

**Writing.** `write` COPYs the sessions, bookings and reviews, adds the reviews to their
experiences' rating summaries, and COPYs the events in the order the steps made them. Nothing is
written before: a refused step leaves the caller's transaction as it was (the caller discards
the replay). The sessions are the replay's own: bookings of sessions already in the database go
through the online functions.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.access import Actor
from services.community.errors import MemberNotFound, MemberSuspended
from services.community.experiences.access import require_manager
from services.community.experiences.attendance import (
    check_attendable,
    check_code,
    check_review_open,
    check_reviewer,
    checked_in_event,
    mark_attended,
    new_review,
    reviewed_event,
)
from services.community.experiences.bookings import (
    already_booked,
    booked_event,
    cancelled_event,
    check_bookable,
    check_cancellable,
    confirm,
    end_booking,
    new_booking,
    refund_due,
    session_full,
    to_promote,
    waitlisted_event,
)
from services.community.experiences.errors import (
    BookingNotFound,
    ExperienceNotFound,
    SessionNotFound,
)
from services.community.experiences.events import CancelReason
from services.community.experiences.models import (
    Booking,
    BookingStatus,
    CancelledBy,
    CheckInMethod,
    Experience,
    ExperienceReview,
    ExperienceSession,
    SessionStatus,
)
from services.community.experiences.repository import ExperienceRepository, Tally
from services.community.experiences.schemas import BookingCreate, ReviewCreate, SessionCreate
from services.community.experiences.service import check_session_start, new_session, scheduled_event
from services.community.members.abilities import Ability
from services.community.members.service import is_suspended, require_ability
from services.community.models import OUTBOX, CommunityMember
from services.kernel.clock import utcnow
from services.kernel.errors import ValidationFailed
from services.kernel.events import Event
from services.kernel.ids import id_at


class PricedSessionInHistory(ValidationFailed):
    """History holds free sessions only: a priced session's bookings are paid through rewards,
    which answers later; schedule it online."""

    code = "PricedSessionInHistory"


class StepOutOfOrder(ValidationFailed):
    """A step of history dated before the session's previous step, or after now."""

    code = "StepOutOfOrder"


@dataclass(frozen=True, slots=True)
class ReplayReport:
    sessions: int
    bookings: int
    reviews: int
    events: int


@dataclass(slots=True)
class _Session:
    row: ExperienceSession
    experience: Experience
    last: datetime  # its latest step so far
    waiting: list[Booking]  # the waitlist, in arrival order


class SessionsReplay:
    """Sessions scheduled by `actor` and what members did on them, in memory until `write`."""

    def __init__(self, actor: Actor, now: datetime | None = None) -> None:
        self.actor = actor
        self.now = now or utcnow()
        self.events: list[Event] = []
        self.bookings: list[Booking] = []
        self.reviews: list[ExperienceReview] = []
        self._sessions: dict[uuid.UUID, _Session] = {}
        self._live: dict[tuple[uuid.UUID, uuid.UUID], Booking] = {}  # (session, member)
        self._reviewed: dict[tuple[uuid.UUID, uuid.UUID], ExperienceReview] = {}
        self._members: dict[uuid.UUID, CommunityMember] = {}

    # --- steps ----------------------------------------------------------------------------

    def _not_after_now(self, at: datetime) -> None:
        if at > self.now:
            raise StepOutOfOrder(f"{at.isoformat()} is after now ({self.now.isoformat()}).")

    def _step(self, row: ExperienceSession, at: datetime) -> _Session:
        """The replay's session, if `at` may be its next step (each step records its moment once
        taken: a refused step changes nothing)."""
        found = self._sessions.get(row.id)
        if found is None:
            raise SessionNotFound(f"No session {row.id} in this replay.")
        self._not_after_now(at)
        if at < found.last:
            raise StepOutOfOrder(
                f"{at.isoformat()} is before this session's previous step "
                f"({found.last.isoformat()})."
            )
        return found

    def _acting(self, member: CommunityMember, at: datetime) -> None:
        """As `CurrentMember`: known in the brand, not erased, free to act at `at`."""
        if member.brand_id != self.actor.brand_id or member.member_status == "erased":
            raise MemberNotFound(f"No member {member.member_id} in this brand's community.")
        if is_suspended(member, at):
            raise MemberSuspended()
        self._members[member.member_id] = member

    def schedule(
        self, experience: Experience, payload: SessionCreate, at: datetime
    ) -> ExperienceSession:
        self._not_after_now(at)
        if experience.brand_id != self.actor.brand_id:
            raise ExperienceNotFound(f"No experience {experience.id} in this brand.")
        require_manager(self.actor, experience)
        if self.actor.member is not None:
            require_ability(self.actor.member, Ability.HOST_EXPERIENCES)
        if payload.price_points is not None:
            raise PricedSessionInHistory()
        check_session_start(payload, at)
        row = new_session(self.actor.brand_id, experience, payload, at)
        row.id = id_at(at)
        self._sessions[row.id] = _Session(row, experience, at, [])
        self.events.append(scheduled_event(row, experience, at))
        return row

    def book(
        self,
        member: CommunityMember,
        row: ExperienceSession,
        payload: BookingCreate,
        at: datetime,
    ) -> Booking:
        self._acting(member, at)
        state = self._step(row, at)
        check_bookable(row, member, payload.seats, at)
        key = (row.id, member.member_id)
        existing = self._live.get(key)
        if existing is not None:
            raise already_booked(existing)
        booking = new_booking(member, row, state.experience, payload.seats, at)
        booking.id = id_at(at)
        if row.capacity - row.seats_taken >= payload.seats:
            row.seats_taken += payload.seats
            confirm(booking, at)  # free: confirmed at once
            self.events.append(booked_event(booking, row, at))
        else:
            if not payload.join_waitlist:
                raise session_full(row, payload.seats)
            row.waitlist_counter += 1
            booking.status = BookingStatus.WAITLISTED
            booking.waitlist_number = row.waitlist_counter
            state.waiting.append(booking)
            # Everyone still waiting arrived before it: its place is the length of the line.
            self.events.append(waitlisted_event(booking, len(state.waiting), at))
        self._live[key] = booking
        self.bookings.append(booking)
        state.last = at
        return booking

    def cancel(self, member: CommunityMember, booking: Booking, at: datetime) -> None:
        self._acting(member, at)
        found = self._sessions.get(booking.session_id)
        if found is None or booking.member_id != member.member_id:
            raise BookingNotFound(f"You have no booking {booking.id}.")
        state = self._step(found.row, at)
        row = state.row
        check_cancellable(booking, row, at)
        refund = refund_due(booking, row, at)
        previous = end_booking(
            booking,
            row,
            status=BookingStatus.CANCELLED,
            refund_points=refund,
            cancelled_by=CancelledBy.MEMBER,
            now=at,
        )
        self.events.append(cancelled_event(booking, previous, CancelReason.MEMBER, refund, at))
        del self._live[(row.id, member.member_id)]
        if previous == BookingStatus.WAITLISTED:
            state.waiting.remove(booking)
        self._promote(state, at)
        state.last = at

    def _promote(self, state: _Session, at: datetime) -> None:
        """`bookings.promote_waitlist`, on the replay's own waitlist."""
        row = state.row
        if row.status != SessionStatus.SCHEDULED or row.starts_at <= at:
            return
        free = row.capacity - row.seats_taken
        if free <= 0:
            return
        for entry in to_promote(state.waiting, self._members, free, at):
            row.seats_taken += entry.seats
            entry.promoted = True
            entry.updated_at = at
            confirm(entry, at)
            self.events.append(booked_event(entry, row, at))
            state.waiting.remove(entry)

    def check_in(
        self, member: CommunityMember, row: ExperienceSession, code: str, at: datetime
    ) -> Booking:
        self._acting(member, at)
        state = self._step(row, at)
        check_code(row, code)
        booking = self._live.get((row.id, member.member_id))
        if booking is None:
            raise BookingNotFound("You have no booking for this session.")
        check_attendable(booking, row, at)
        mark_attended(booking, CheckInMethod.CODE, at)
        self.events.append(checked_in_event(booking, CheckInMethod.CODE, at))
        state.last = at
        return booking

    def review(
        self,
        member: CommunityMember,
        row: ExperienceSession,
        payload: ReviewCreate,
        at: datetime,
    ) -> ExperienceReview:
        self._acting(member, at)
        state = self._step(row, at)
        check_review_open(row, at)
        key = (row.id, member.member_id)
        attended = check_reviewer(self._live.get(key), self._reviewed.get(key))
        created = new_review(attended, state.experience, payload, at)
        created.id = id_at(at)
        self._reviewed[key] = created
        self.reviews.append(created)
        self.events.append(reviewed_event(created, state.experience))
        state.last = at
        return created

    # --- writing --------------------------------------------------------------------------

    async def write(self, session: AsyncSession) -> ReplayReport:
        repository = ExperienceRepository(session)
        await repository.copy_rows(
            sessions=[state.row for state in self._sessions.values()],
            bookings=self.bookings,
            reviews=self.reviews,
        )
        counts: Counter[uuid.UUID] = Counter()
        totals: dict[uuid.UUID, int] = defaultdict(int)
        for review in self.reviews:
            counts[review.experience_id] += 1
            totals[review.experience_id] += review.rating
        # In id order: replays side by side lock shared experiences in one order (no deadlock).
        for experience_id, count in sorted(counts.items()):
            await repository.add_reviews_to_rating(experience_id, count, totals[experience_id])
        events = await OUTBOX.copy_many(session, self.events)
        return ReplayReport(
            sessions=len(self._sessions),
            bookings=len(self.bookings),
            reviews=len(self.reviews),
            events=events,
        )


# --- What a loader that resumes asks --------------------------------------------------------------


async def find_brand_experience(
    session: AsyncSession, brand_id: uuid.UUID, title: str
) -> Experience | None:
    """The brand's own experience with this title (the oldest, if several)."""
    return await ExperienceRepository(session).brand_experience(brand_id, title)


async def find_session(
    session: AsyncSession, experience_id: uuid.UUID, starts_at: datetime
) -> ExperienceSession | None:
    """The experience's session starting at this moment (the oldest, if several)."""
    return await ExperienceRepository(session).session_starting(experience_id, starts_at)


async def tally(session: AsyncSession, session_ids: Sequence[uuid.UUID]) -> Tally:
    """Bookings by status, check-ins and reviews of these sessions."""
    return await ExperienceRepository(session).tally(session_ids)
