"""All SQL of experiences, sessions, bookings and reviews.

Locks are always taken in one order, the session row first and then its bookings, so bookings,
cancellations, payments and check-ins on one session never deadlock each other.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from sqlalchemy import Select, and_, exists, false, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from services.community.experiences.models import (
    ACTIVE_STATUSES,
    Booking,
    BookingStatus,
    Experience,
    ExperienceKind,
    ExperienceReview,
    ExperienceSession,
    HostKind,
    PlaceKind,
    SessionStatus,
)
from services.community.models import Base
from services.kernel.db import copy_records, table_of
from services.kernel.pagination import PageRequest, keyset


@dataclass(frozen=True, slots=True)
class Tally:
    """What some sessions hold: bookings by status, check-ins and reviews."""

    confirmed: int
    waitlisted: int
    cancelled: int
    checked_in: int
    reviews: int


@dataclass(frozen=True, slots=True)
class ExperienceFilters:
    tag: str | None = None
    kind: ExperienceKind | None = None
    host_member_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class SessionFilters:
    starts_from: datetime  # inclusive
    starts_before: datetime | None = None  # exclusive
    online: bool | None = None
    tag: str | None = None
    experience_id: uuid.UUID | None = None
    include_cancelled: bool = False
    place: str | None = None  # text the address contains, any case (e.g. a city)


class ExperienceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, row: Experience | ExperienceSession | Booking | ExperienceReview) -> None:
        self.session.add(row)
        await self.session.flush()

    async def flush(self) -> None:
        await self.session.flush()

    # --- Experiences -----------------------------------------------------------------------

    async def experience(self, brand_id: uuid.UUID, experience_id: uuid.UUID) -> Experience | None:
        return await self.session.scalar(
            select(Experience).where(
                Experience.brand_id == brand_id, Experience.id == experience_id
            )
        )

    async def experiences(
        self, brand_id: uuid.UUID, filters: ExperienceFilters, page: PageRequest
    ) -> Sequence[Experience]:
        statement = select(Experience).where(Experience.brand_id == brand_id)
        if filters.tag is not None:
            statement = statement.where(Experience.tags.contains([filters.tag]))
        if filters.kind is not None:
            statement = statement.where(Experience.kind == filters.kind)
        if filters.host_member_id is not None:
            statement = statement.where(Experience.host_member_id == filters.host_member_id)
        return (
            await self.session.scalars(keyset(statement, Experience.id, page, newest_first=True))
        ).all()

    async def experiences_by_ids(
        self, brand_id: uuid.UUID, ids: Sequence[uuid.UUID]
    ) -> Sequence[Experience]:
        """The brand's experiences among `ids`, in id order (unknown and foreign ids drop out)."""
        return (
            await self.session.scalars(
                select(Experience)
                .where(Experience.brand_id == brand_id, Experience.id.in_(ids))
                .order_by(Experience.id)
            )
        ).all()

    async def add_review_to_rating(self, experience_id: uuid.UUID, rating: int) -> None:
        """One statement, so concurrent reviews of one experience never lose a count."""
        await self.session.execute(
            update(Experience)
            .where(Experience.id == experience_id)
            .values(
                review_count=Experience.review_count + 1,
                rating_total=Experience.rating_total + rating,
            )
            .execution_options(synchronize_session=False)
        )

    async def rating_distribution(self, experience_id: uuid.UUID) -> dict[int, int]:
        rows = await self.session.execute(
            select(ExperienceReview.rating, func.count())
            .where(ExperienceReview.experience_id == experience_id)
            .group_by(ExperienceReview.rating)
        )
        return {int(rating): int(count) for rating, count in rows}

    # --- Sessions --------------------------------------------------------------------------

    async def session_row(
        self, brand_id: uuid.UUID, session_id: uuid.UUID, *, lock: bool = False
    ) -> ExperienceSession | None:
        """A session of the brand; with `lock`, its row is locked for the transaction and
        re-read, so the values are the ones committed by whoever held the lock before."""
        statement = select(ExperienceSession).where(
            ExperienceSession.brand_id == brand_id, ExperienceSession.id == session_id
        )
        if lock:
            statement = statement.with_for_update().execution_options(populate_existing=True)
        return await self.session.scalar(statement)

    async def sessions(
        self, brand_id: uuid.UUID, filters: SessionFilters, page: PageRequest
    ) -> Sequence[tuple[ExperienceSession, Experience]]:
        """Sessions in start order (then id). The page cursor names the last session shown;
        the next page starts after that session's (starts_at, id)."""
        statement: Select[ExperienceSession, Experience] = (
            select(ExperienceSession, Experience)
            .join(Experience, Experience.id == ExperienceSession.experience_id)
            .where(
                ExperienceSession.brand_id == brand_id,
                ExperienceSession.starts_at >= filters.starts_from,
            )
        )
        if filters.starts_before is not None:
            statement = statement.where(ExperienceSession.starts_at < filters.starts_before)
        if not filters.include_cancelled:
            statement = statement.where(ExperienceSession.status == SessionStatus.SCHEDULED)
        if filters.online is not None:
            kind = PlaceKind.ONLINE if filters.online else PlaceKind.ADDRESS
            statement = statement.where(ExperienceSession.place_kind == kind)
        if filters.tag is not None:
            statement = statement.where(Experience.tags.contains([filters.tag]))
        if filters.experience_id is not None:
            statement = statement.where(ExperienceSession.experience_id == filters.experience_id)
        if filters.place is not None:
            statement = statement.where(
                ExperienceSession.address.ilike(f"%{_like_escaped(filters.place)}%", escape="\\")
            )
        page.forwards_only()  # ordered by start time, resumed from a session id
        if page.after is not None:
            last = aliased(ExperienceSession)
            after_start = (
                select(last.starts_at)
                .where(last.brand_id == brand_id, last.id == page.after)
                .scalar_subquery()
            )
            statement = statement.where(
                or_(
                    ExperienceSession.starts_at > after_start,
                    and_(
                        ExperienceSession.starts_at == after_start,
                        ExperienceSession.id > page.after,
                    ),
                )
            )
        statement = statement.order_by(ExperienceSession.starts_at, ExperienceSession.id).limit(
            page.limit + 1
        )
        return (await self.session.execute(statement)).all()

    async def sessions_by_ids(
        self, brand_id: uuid.UUID, ids: Sequence[uuid.UUID], member_id: uuid.UUID | None
    ) -> Sequence[tuple[ExperienceSession, Experience, bool]]:
        """The brand's sessions among `ids` (past and cancelled ones too), each with its
        experience and whether `member_id` holds a confirmed booking on it, in one statement."""
        confirmed = (
            exists().where(
                Booking.session_id == ExperienceSession.id,
                Booking.member_id == member_id,
                Booking.status == BookingStatus.CONFIRMED,
            )
            if member_id is not None
            else false()
        )
        rows = await self.session.execute(
            select(ExperienceSession, Experience, confirmed)
            .join(Experience, Experience.id == ExperienceSession.experience_id)
            .where(ExperienceSession.brand_id == brand_id, ExperienceSession.id.in_(ids))
            .order_by(ExperienceSession.id)
        )
        return [(row, experience, bool(held)) for row, experience, held in rows]

    # --- Bookings --------------------------------------------------------------------------

    async def booking(
        self, brand_id: uuid.UUID, booking_id: uuid.UUID, *, lock: bool = False
    ) -> Booking | None:
        statement = select(Booking).where(Booking.brand_id == brand_id, Booking.id == booking_id)
        if lock:
            statement = statement.with_for_update().execution_options(populate_existing=True)
        return await self.session.scalar(statement)

    async def live_booking(self, session_id: uuid.UUID, member_id: uuid.UUID) -> Booking | None:
        """The member's booking or waitlist place on the session that has not ended, locked."""
        return await self.session.scalar(
            select(Booking)
            .where(
                Booking.session_id == session_id,
                Booking.member_id == member_id,
                Booking.status.in_(ACTIVE_STATUSES),
            )
            .with_for_update()
            .execution_options(populate_existing=True)
        )

    async def active_bookings(self, session_id: uuid.UUID) -> Sequence[Booking]:
        """Every live booking and waitlist place of the session, locked, oldest first."""
        return (
            await self.session.scalars(
                select(Booking)
                .where(Booking.session_id == session_id, Booking.status.in_(ACTIVE_STATUSES))
                .order_by(Booking.id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).all()

    async def waitlist(self, session_id: uuid.UUID) -> Sequence[Booking]:
        """The session's waitlist in arrival order, locked (call with the session row locked)."""
        return (
            await self.session.scalars(
                select(Booking)
                .where(Booking.session_id == session_id, Booking.status == BookingStatus.WAITLISTED)
                .order_by(Booking.waitlist_number)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).all()

    async def waitlist_positions(self, bookings: Sequence[Booking]) -> dict[uuid.UUID, int]:
        """Each waitlisted booking's place in line now: 1 + how many arrived before it and still
        wait (the numbers handed out at arrival keep gaps when others leave or are promoted)."""
        waiting = [b for b in bookings if b.status == BookingStatus.WAITLISTED]
        if not waiting:
            return {}
        ahead = aliased(Booking)
        counted = (
            select(func.count())
            .where(
                ahead.session_id == Booking.session_id,
                ahead.status == BookingStatus.WAITLISTED,
                ahead.waitlist_number <= Booking.waitlist_number,
            )
            .correlate(Booking)
            .scalar_subquery()
        )
        rows = await self.session.execute(
            select(Booking.id, counted).where(Booking.id.in_([b.id for b in waiting]))
        )
        return {booking_id: int(position) for booking_id, position in rows}

    async def session_bookings(
        self,
        session_id: uuid.UUID,
        page: PageRequest,
        status: BookingStatus | None,
    ) -> Sequence[Booking]:
        statement = select(Booking).where(Booking.session_id == session_id)
        if status is not None:
            statement = statement.where(Booking.status == status)
        return (await self.session.scalars(keyset(statement, Booking.id, page))).all()

    async def member_bookings(
        self,
        brand_id: uuid.UUID,
        member_id: uuid.UUID,
        page: PageRequest,
        status: BookingStatus | None,
    ) -> Sequence[Booking]:
        statement = select(Booking).where(
            Booking.brand_id == brand_id, Booking.member_id == member_id
        )
        if status is not None:
            statement = statement.where(Booking.status == status)
        return (
            await self.session.scalars(keyset(statement, Booking.id, page, newest_first=True))
        ).all()

    async def sessions_confirmed_for(
        self, member_id: uuid.UUID, session_ids: Sequence[uuid.UUID]
    ) -> set[uuid.UUID]:
        """Which of these sessions the member holds a confirmed booking for."""
        if not session_ids:
            return set()
        rows = await self.session.scalars(
            select(Booking.session_id).where(
                Booking.member_id == member_id,
                Booking.session_id.in_(session_ids),
                Booking.status == BookingStatus.CONFIRMED,
            )
        )
        return set(rows)

    async def overdue_payments(self, now: datetime, limit: int) -> Sequence[tuple[uuid.UUID, ...]]:
        """(brand_id, booking_id) of bookings whose payment rewards has not answered in time."""
        rows = await self.session.execute(
            select(Booking.brand_id, Booking.id)
            .where(Booking.status == BookingStatus.AWAITING_PAYMENT, Booking.payment_due_at < now)
            .order_by(Booking.payment_due_at)
            .limit(limit)
        )
        return rows.all()

    # --- Reviews ---------------------------------------------------------------------------

    async def review_of(
        self, session_id: uuid.UUID, member_id: uuid.UUID
    ) -> ExperienceReview | None:
        return await self.session.scalar(
            select(ExperienceReview).where(
                ExperienceReview.session_id == session_id, ExperienceReview.member_id == member_id
            )
        )

    async def reviews(
        self, brand_id: uuid.UUID, experience_id: uuid.UUID, page: PageRequest
    ) -> Sequence[ExperienceReview]:
        statement = select(ExperienceReview).where(
            ExperienceReview.brand_id == brand_id, ExperienceReview.experience_id == experience_id
        )
        return (
            await self.session.scalars(
                keyset(statement, ExperienceReview.id, page, newest_first=True)
            )
        ).all()

    # --- The bulk loader (`experiences.bulk`): what a rerun finds ----------------------------

    async def brand_experience(self, brand_id: uuid.UUID, title: str) -> Experience | None:
        """The brand's own (staff-hosted) experience with this title, the oldest if several."""
        return await self.session.scalar(
            select(Experience)
            .where(
                Experience.brand_id == brand_id,
                Experience.host_kind == HostKind.BRAND,
                Experience.title == title,
            )
            .order_by(Experience.id)
            .limit(1)
        )

    async def session_starting(
        self, experience_id: uuid.UUID, starts_at: datetime
    ) -> ExperienceSession | None:
        return await self.session.scalar(
            select(ExperienceSession)
            .where(
                ExperienceSession.experience_id == experience_id,
                ExperienceSession.starts_at == starts_at,
            )
            .order_by(ExperienceSession.id)
            .limit(1)
        )

    async def tally(self, session_ids: Sequence[uuid.UUID]) -> Tally:
        if not session_ids:
            return Tally(0, 0, 0, 0, 0)
        counts = (
            await self.session.execute(
                select(
                    func.count().filter(Booking.status == BookingStatus.CONFIRMED),
                    func.count().filter(Booking.status == BookingStatus.WAITLISTED),
                    func.count().filter(Booking.status == BookingStatus.CANCELLED),
                    func.count().filter(Booking.checked_in_at.is_not(None)),
                ).where(Booking.session_id.in_(session_ids))
            )
        ).one()
        reviews = await self.session.scalar(
            select(func.count())
            .select_from(ExperienceReview)
            .where(ExperienceReview.session_id.in_(session_ids))
        )
        confirmed, waitlisted, cancelled, checked_in = (int(n) for n in counts)
        return Tally(confirmed, waitlisted, cancelled, checked_in, int(reviews or 0))

    # --- The bulk loader (`experiences.bulk`) -------------------------------------------------

    async def copy_rows(
        self,
        *,
        sessions: Sequence[ExperienceSession],
        bookings: Sequence[Booking],
        reviews: Sequence[ExperienceReview],
    ) -> None:
        """COPY new sessions, bookings and reviews (in that order: the foreign keys point back)
        on the session's connection, inside its transaction."""
        batches: list[tuple[type[Base], Sequence[Base]]] = [
            (ExperienceSession, sessions),
            (Booking, bookings),
            (ExperienceReview, reviews),
        ]
        for model, objects in batches:
            if not objects:
                continue
            table = table_of(model)
            columns = [column.key for column in table.columns]
            await copy_records(
                self.session,
                table,
                columns,
                [tuple(_plain(getattr(row, column)) for column in columns) for row in objects],
            )

    async def add_reviews_to_rating(self, experience_id: uuid.UUID, count: int, total: int) -> None:
        """`add_review_to_rating` for several reviews at once."""
        await self.session.execute(
            update(Experience)
            .where(Experience.id == experience_id)
            .values(
                review_count=Experience.review_count + count,
                rating_total=Experience.rating_total + total,
            )
            .execution_options(synchronize_session=False)
        )


def _like_escaped(text: str) -> str:
    """`text` matched literally inside a LIKE pattern (escape character: backslash)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _plain(value: object) -> object:
    """Enums as their stored values, for COPY."""
    return value.value if isinstance(value, Enum) else value
