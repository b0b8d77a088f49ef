"""The bulk path for experiences' history: the same steps (scheduling, bookings with a waitlist,
cancellations that move it up, check-ins, reviews), once through the online functions with the
clock at each step's moment and once through `experiences.bulk.SessionsReplay`, leave the same
rows and events; a refused step leaves nothing written."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.access import Actor
from services.community.errors import MemberSuspended
from services.community.experiences import attendance, bookings
from services.community.experiences import service as experiences
from services.community.experiences.bulk import (
    PricedSessionInHistory,
    SessionsReplay,
    StepOutOfOrder,
)
from services.community.experiences.errors import (
    AlreadyBooked,
    BookingNotConfirmed,
    CheckInClosed,
    NotAnAttendee,
    SessionNotEnded,
    SessionStarted,
    WrongCheckInCode,
)
from services.community.experiences.lookup import get_experience
from services.community.experiences.models import (
    Booking,
    Experience,
    ExperienceReview,
    ExperienceSession,
)
from services.community.experiences.schemas import (
    AddressPlace,
    BookingCreate,
    ReviewCreate,
    SessionCreate,
)
from services.community.members.service import known_member
from services.community.models import OUTBOX, CommunityMember
from services.kernel.auth import StaffPrincipal
from services.kernel.clock import utcnow
from services.kernel.errors import KinfolkError
from services.kernel.pagination import PageRequest
from services.members import service as members_service
from tests.community.conftest import MakeMember
from tests.conftest import BrandFixture

MEMBERS = 5


@dataclass(frozen=True)
class Step:
    kind: str  # schedule, book, cancel, check_in, review
    at: timedelta  # after the first step
    session: int
    member: int = -1
    seats: int = 1
    rating: int = 5


def _plan(first: datetime) -> tuple[list[Step], list[SessionCreate]]:
    """A session of three seats that fills, waitlists three, loses a two-seat booking (two
    waiting move up, the one too big stays), sees two of its guests and two reviews; and a
    second session, still to come, with one booking."""
    starts = first + timedelta(days=5)
    payloads = [
        SessionCreate(
            starts_at=starts,
            ends_at=starts + timedelta(hours=2),
            time_zone="Europe/Paris",
            place=AddressPlace(address="12 Rue de Rivoli, Paris"),
            capacity=3,
            max_seats_per_booking=2,
        ),
        SessionCreate(
            starts_at=first + timedelta(days=13),  # after now
            ends_at=first + timedelta(days=13, hours=1),
            time_zone="Europe/London",
            place=AddressPlace(address="5 Carnaby Street, London"),
            capacity=10,
        ),
    ]
    hour = timedelta(hours=1)
    since_start = starts - first
    steps = [
        Step("schedule", timedelta(0), 0),
        Step("book", hour, 0, member=0),
        Step("book", 2 * hour, 0, member=1, seats=2),
        Step("book", 3 * hour, 0, member=2),
        Step("book", 4 * hour, 0, member=3, seats=2),
        Step("book", 5 * hour, 0, member=4),
        Step("cancel", 6 * hour, 0, member=1),
        Step("cancel", 7 * hour, 0, member=3),
        Step("schedule", timedelta(days=1), 1),
        Step("book", timedelta(days=2), 1, member=0),
        Step("check_in", since_start - timedelta(minutes=10), 0, member=0),
        Step("check_in", since_start + timedelta(minutes=5), 0, member=2),
        Step("review", since_start + 3 * hour, 0, member=0, rating=5),
        Step("review", since_start + 4 * hour, 0, member=2, rating=3),
    ]
    return steps, payloads


async def _staff(session: AsyncSession, brand: BrandFixture) -> Actor:
    key = (await members_service.list_api_keys(session, brand.id, PageRequest(10, None)))[0]
    return Actor(brand.id, staff=StaffPrincipal(brand.id, key.id, frozenset(key.scopes)))


async def _experience(client: httpx.AsyncClient, brand: BrandFixture) -> uuid.UUID:
    response = await client.post(
        "/community/v1/experiences",
        json={"title": "Skin prep masterclass", "kind": "masterclass", "tags": ["skincare"]},
        headers=brand.headers,
    )
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])


async def _members(
    session: AsyncSession, make_member: MakeMember, brand: BrandFixture
) -> list[CommunityMember]:
    made = [
        await make_member(f"x{i}", brand_fixture=brand, display_name=f"X{i}")
        for i in range(MEMBERS)
    ]
    return [await known_member(session, brand.id, m.id) for m in made]


async def _online(
    session: AsyncSession,
    staff: Actor,
    experience_id: uuid.UUID,
    members: list[CommunityMember],
    first: datetime,
) -> None:
    steps, payloads = _plan(first)
    rows: list[ExperienceSession] = []
    booked: dict[tuple[int, int], uuid.UUID] = {}
    for step in steps:
        now = first + step.at
        if step.kind == "schedule":
            row, _ = await experiences.add_session(
                session, staff, experience_id, payloads[step.session], now=now
            )
            rows.append(row)
            continue
        member, row = members[step.member], rows[step.session]
        if step.kind == "book":
            read = await bookings.book(
                session, member, row.id, BookingCreate(seats=step.seats), now
            )
            booked[(step.session, step.member)] = read.id
        elif step.kind == "cancel":
            await bookings.cancel_booking(session, member, booked[(step.session, step.member)], now)
        elif step.kind == "check_in":
            await attendance.check_in_with_code(session, member, row.id, row.check_in_code, now)
        else:
            review = ReviewCreate(rating=step.rating, body=f"{step.rating} stars")
            await attendance.review(session, member, row.id, review, now)


def _replayed(
    replay: SessionsReplay,
    experience: Experience,
    members: list[CommunityMember],
    first: datetime,
    steps: list[Step],
    payloads: list[SessionCreate],
) -> None:
    rows: list[ExperienceSession] = []
    booked: dict[tuple[int, int], Booking] = {}
    for step in steps:
        at = first + step.at
        if step.kind == "schedule":
            rows.append(replay.schedule(experience, payloads[step.session], at))
            continue
        member, row = members[step.member], rows[step.session]
        if step.kind == "book":
            booking = replay.book(member, row, BookingCreate(seats=step.seats), at)
            booked[(step.session, step.member)] = booking
        elif step.kind == "cancel":
            replay.cancel(member, booked[(step.session, step.member)], at)
        elif step.kind == "check_in":
            replay.check_in(member, row, row.check_in_code, at)
        else:
            review = ReviewCreate(rating=step.rating, body=f"{step.rating} stars")
            replay.review(member, row, review, at)


def _named(value: Any, names: dict[uuid.UUID, str]) -> Any:
    if isinstance(value, dict):
        return {key: _named(item, names) for key, item in value.items()}
    if isinstance(value, list):
        return [_named(item, names) for item in value]
    if isinstance(value, uuid.UUID):
        return names.get(value, "<id>")
    if isinstance(value, str):
        try:
            return names.get(uuid.UUID(value), "<id>")
        except ValueError:
            return value
    return value


def _columns(model: Any, *leave_out: str) -> Callable[[Any], dict[str, Any]]:
    names = [c.key for c in model.__table__.columns if c.key not in ("id", "brand_id", *leave_out)]
    return lambda row: {name: getattr(row, name) for name in names}


async def _state(
    session: AsyncSession, brand_id: uuid.UUID, members: list[CommunityMember]
) -> dict[str, Any]:
    """What the steps left in the brand, ids replaced by what they stand for."""

    async def rows(model: Any) -> list[Any]:
        return list(
            (
                await session.scalars(
                    select(model)
                    .where(model.brand_id == brand_id)
                    .order_by(model.created_at, model.id)
                    .execution_options(populate_existing=True)
                )
            ).all()
        )

    sessions, booked, reviews = (
        await rows(ExperienceSession),
        await rows(Booking),
        await rows(ExperienceReview),
    )
    experience = (await rows(Experience))[0]
    names: dict[uuid.UUID, str] = {m.member_id: f"member {i}" for i, m in enumerate(members)}
    names |= {s.id: f"session {i}" for i, s in enumerate(sessions)}
    names |= {b.id: f"booking {i}" for i, b in enumerate(booked)}
    names |= {r.id: f"review {i}" for i, r in enumerate(reviews)}
    names[experience.id] = "experience"
    table = OUTBOX.table
    events = (
        await session.execute(
            select(table.c.type, table.c.subject_id, table.c.occurred_at, table.c.payload)
            .where(table.c.brand_id == brand_id, table.c.type.like("experience.%"))
            .order_by(table.c.id)
        )
    ).all()
    return {
        "sessions": [
            _named(_columns(ExperienceSession, "check_in_code")(s), names) for s in sessions
        ],
        "bookings": [_named(_columns(Booking)(b), names) for b in booked],
        "reviews": [_named(_columns(ExperienceReview)(r), names) for r in reviews],
        "rating": (experience.review_count, experience.rating_total),
        "events": [
            (kind, _named(subject, names), at, _named(payload["data"], names))
            for kind, subject, at, payload in events
        ],
    }


async def test_a_replay_leaves_what_the_online_functions_leave(
    session: AsyncSession,
    client: httpx.AsyncClient,
    brand: BrandFixture,
    other_brand: BrandFixture,
    make_member: MakeMember,
) -> None:
    first = (utcnow() - timedelta(days=10)).replace(microsecond=0)
    online_members = await _members(session, make_member, brand)
    bulk_members = await _members(session, make_member, other_brand)
    await _online(
        session,
        await _staff(session, brand),
        await _experience(client, brand),
        online_members,
        first,
    )
    experience = await get_experience(
        session, other_brand.id, await _experience(client, other_brand)
    )
    replay = SessionsReplay(await _staff(session, other_brand))
    steps, payloads = _plan(first)
    _replayed(replay, experience, bulk_members, first, steps, payloads)
    report = await replay.write(session)

    expected = await _state(session, brand.id, online_members)
    got = await _state(session, other_brand.id, bulk_members)
    for part in expected:
        assert got[part] == expected[part], part
    assert (report.sessions, report.bookings, report.reviews) == (2, 6, 2)
    assert report.events == len(got["events"])
    # The steps exercise what they claim: a waitlist, promotions past an entry too big, check-ins.
    statuses = [(b["member_id"], b["status"], b["promoted"]) for b in got["bookings"]]
    assert statuses == [
        ("member 0", "confirmed", False),
        ("member 1", "cancelled", False),
        ("member 2", "confirmed", True),
        ("member 3", "cancelled", False),
        ("member 4", "confirmed", True),
        ("member 0", "confirmed", False),
    ]
    kinds = [event[0] for event in got["events"]]
    assert kinds.count("experience.waitlisted") == 3
    assert kinds.count("experience.checked_in") == 2
    assert got["rating"] == (2, 8)


async def _nothing_written(session: AsyncSession, brand_id: uuid.UUID) -> bool:
    counted = [
        await session.scalar(
            select(func.count()).select_from(model).where(model.brand_id == brand_id)
        )
        for model in (ExperienceSession, Booking, ExperienceReview)
    ]
    events = await session.scalar(
        select(func.count())
        .select_from(OUTBOX.table)
        .where(OUTBOX.table.c.brand_id == brand_id, OUTBOX.table.c.type.like("experience.%"))
    )
    return counted == [0, 0, 0] and events == 0


async def test_refused_steps(
    session: AsyncSession,
    client: httpx.AsyncClient,
    brand: BrandFixture,
    make_member: MakeMember,
) -> None:
    first = (utcnow() - timedelta(days=10)).replace(microsecond=0)
    members = await _members(session, make_member, brand)
    experience = await get_experience(session, brand.id, await _experience(client, brand))
    staff = await _staff(session, brand)
    steps, payloads = _plan(first)
    starts, ends = payloads[0].starts_at, payloads[0].ends_at

    def played(upto: int) -> tuple[SessionsReplay, ExperienceSession, dict[int, Booking]]:
        """A replay of the plan's first `upto` steps on session 0."""
        replay = SessionsReplay(staff)
        row = replay.schedule(experience, payloads[0], first)
        booked: dict[int, Booking] = {}
        for step in steps[1:upto]:
            if step.kind == "book":
                booked[step.member] = replay.book(
                    members[step.member], row, BookingCreate(seats=step.seats), first + step.at
                )
            elif step.kind == "cancel":
                replay.cancel(members[step.member], booked[step.member], first + step.at)
        return replay, row, booked

    refusals: list[tuple[Callable[[], object], type[KinfolkError]]] = []
    replay, row, _ = played(6)  # full, three waiting
    refusals += [
        (
            lambda: replay.book(members[0], row, BookingCreate(), first + timedelta(hours=8)),
            AlreadyBooked,
        ),
        (lambda: replay.book(members[0], row, BookingCreate(), first), StepOutOfOrder),
        (lambda: replay.book(members[0], row, BookingCreate(), starts), SessionStarted),
        (lambda: replay.check_in(members[2], row, row.check_in_code, starts), BookingNotConfirmed),
        (lambda: replay.check_in(members[0], row, "WRONG1", starts), WrongCheckInCode),
        (
            lambda: replay.book(members[0], row, BookingCreate(), utcnow() + timedelta(hours=1)),
            StepOutOfOrder,
        ),
    ]
    late = played(6)
    refusals.append(
        (
            lambda: late[0].check_in(
                members[0], late[1], late[1].check_in_code, ends + timedelta(hours=7)
            ),
            CheckInClosed,
        )
    )
    early = played(6)
    refusals.append(
        (
            lambda: early[0].review(members[0], early[1], ReviewCreate(rating=4), starts),
            SessionNotEnded,
        )
    )
    absent = played(6)
    refusals.append(
        (
            lambda: absent[0].review(members[0], absent[1], ReviewCreate(rating=4), ends),
            NotAnAttendee,
        )
    )
    priced = SessionsReplay(staff)
    refusals.append(
        (
            lambda: priced.schedule(
                experience, payloads[0].model_copy(update={"price_points": 100}), first
            ),
            PricedSessionInHistory,
        )
    )
    for call, error in refusals:
        with pytest.raises(error):
            call()
    await session.execute(
        update(CommunityMember)
        .where(CommunityMember.member_id == members[4].member_id)
        .values(suspended_until=utcnow())
    )
    suspended = await known_member(session, brand.id, members[4].member_id)
    fresh, row, _ = played(1)
    with pytest.raises(MemberSuspended):
        fresh.book(suspended, row, BookingCreate(), first + timedelta(hours=1))
    # The loader drops a replay whose step was refused: nothing reached the database.
    assert await _nothing_written(session, brand.id)
