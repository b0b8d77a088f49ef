"""Experiences and sessions: hosting (the brand or a trusted member), validation, browsing,
check-in and reviews, and the brand boundary."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.experiences.models import Experience, ExperienceReview, ExperienceSession
from services.kernel.clock import utcnow
from tests.community.conftest import MakeMember, community_events
from tests.community.experience_helpers import (
    API,
    book,
    create_experience,
    create_session,
    error,
    experience_body,
    move_session,
    session_body,
)
from tests.conftest import BrandFixture, MemberFixture


async def count(session: AsyncSession, model: type[object]) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


# --- Hosting ----------------------------------------------------------------------------------


async def test_staff_host_an_experience_as_the_brand_and_schedule_a_session(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture
) -> None:
    created = await client.post(
        f"{API}/experiences",
        json=experience_body(tags=[" Skin Care ", "skin care", "SPF"]),
        headers=brand.headers,
    )
    assert created.status_code == 201, created.text
    experience = created.json()
    assert experience == {
        "id": experience["id"],
        "title": "Summer glow masterclass",
        "description": "Layering SPF under make-up, with our artists.",
        "kind": "masterclass",
        "tags": ["skin care", "spf"],
        "host_kind": "brand",
        "host_member_id": None,
        "review_count": 0,
        "average_rating": None,
        "created_at": experience["created_at"],
    }

    body = session_body(
        starts_at="2031-07-01T18:00:00+02:00",
        ends_at="2031-07-01T20:00:00+02:00",
        place={"kind": "online", "url": "https://meet.example.com/glow"},
        capacity=12,
        price_points=300,
        max_seats_per_booking=2,
        cancellation_cutoff_hours=48,
    )
    scheduled = await client.post(
        f"{API}/experiences/{experience['id']}/sessions", json=body, headers=brand.headers
    )
    assert scheduled.status_code == 201, scheduled.text
    read = scheduled.json()
    assert len(read["check_in_code"]) == 6
    assert read == {
        "id": read["id"],
        "experience_id": experience["id"],
        "title": "Summer glow masterclass",
        "kind": "masterclass",
        "tags": ["skin care", "spf"],
        "host_kind": "brand",
        "host_member_id": None,
        "starts_at": "2031-07-01T16:00:00Z",
        "ends_at": "2031-07-01T18:00:00Z",
        "time_zone": "Europe/Paris",
        "local_starts_at": "2031-07-01T18:00:00+02:00",
        "local_ends_at": "2031-07-01T20:00:00+02:00",
        "place": {"kind": "online", "address": None, "url": "https://meet.example.com/glow"},
        "capacity": 12,
        "seats_taken": 0,
        "seats_left": 12,
        "price_points": 300,
        "max_seats_per_booking": 2,
        "early_access_tier_ids": [],
        "general_booking_opens_at": None,
        "cancellation_cutoff_hours": 48,
        "status": "scheduled",
        "cancel_reason": None,
        "check_in_code": read["check_in_code"],
    }
    assert await community_events(session) == [
        (
            "experience.session_scheduled",
            {
                "session_id": read["id"],
                "experience_id": experience["id"],
                "title": "Summer glow masterclass",
                "kind": "masterclass",
                "tags": ["skin care", "spf"],
                "host_member_id": None,
                "starts_at": "2031-07-01T16:00:00Z",
                "ends_at": "2031-07-01T18:00:00Z",
                "time_zone": "Europe/Paris",
                "online": True,
                "capacity": 12,
                "price_points": 300,
            },
        )
    ]


async def test_members_host_once_trusted_and_only_the_host_manages(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    make_member: MakeMember,
) -> None:
    refused = await client.post(
        f"{API}/experiences", json=experience_body(), headers=member.headers
    )
    assert error(refused) == (403, "TrustLevelTooLow")
    assert "host_experiences needs trust level 3" in refused.json()["detail"]
    assert await count(session, Experience) == 0

    host = await make_member("host", trust_level=3)
    experience = await create_experience(client, host.headers, kind="meetup", title="Curl club")
    assert (experience["host_kind"], experience["host_member_id"]) == ("member", str(host.id))
    scheduled = await create_session(client, host.headers, experience["id"])
    assert scheduled["host_member_id"] == str(host.id)
    assert scheduled["check_in_code"] is not None

    # Another member may neither change it nor schedule sessions; they don't see the code.
    patched = await client.patch(
        f"{API}/experiences/{experience['id']}", json={"title": "Mine"}, headers=member.headers
    )
    assert error(patched) == (403, "NotTheHost")
    added = await client.post(
        f"{API}/experiences/{experience['id']}/sessions",
        json=session_body(),
        headers=member.headers,
    )
    assert error(added) == (403, "NotTheHost")
    seen = await client.get(f"{API}/sessions/{scheduled['id']}", headers=member.headers)
    assert seen.json()["check_in_code"] is None
    assert await count(session, ExperienceSession) == 1

    # The host and staff may.
    renamed = await client.patch(
        f"{API}/experiences/{experience['id']}",
        json={"title": "Curl club, summer edition", "tags": ["Curls"]},
        headers=host.headers,
    )
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["title"], renamed.json()["tags"]) == (
        "Curl club, summer edition",
        ["curls"],
    )
    by_staff = await client.patch(
        f"{API}/experiences/{experience['id']}", json={"kind": "workshop"}, headers=brand.headers
    )
    assert by_staff.json()["kind"] == "workshop"
    nulled = await client.patch(
        f"{API}/experiences/{experience['id']}", json={"title": None}, headers=host.headers
    )
    assert error(nulled) == (422, "ValidationError")


async def test_bad_sessions_are_refused_and_nothing_is_written(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture
) -> None:
    experience = await create_experience(client, brand.headers)
    now = utcnow()
    bad = {
        "unknown time zone": session_body(time_zone="Mars/Olympus_Mons"),
        "end before start": session_body(
            starts_at=(now + timedelta(days=2)).isoformat(),
            ends_at=(now + timedelta(days=1)).isoformat(),
        ),
        "start in the past": session_body(
            starts_at=(now - timedelta(hours=1)).isoformat(),
            ends_at=(now + timedelta(hours=1)).isoformat(),
        ),
        "no capacity": session_body(capacity=0),
        "more seats per booking than capacity": session_body(capacity=2, max_seats_per_booking=3),
        "a non-http link": session_body(place={"kind": "online", "url": "ftp://files.example"}),
        "an empty address": session_body(place={"kind": "address", "address": " "}),
        "a negative price": session_body(price_points=-5),
        "a price as text": session_body(price_points="100"),
        "early tiers without an opening": session_body(early_access_tier_ids=[str(uuid.uuid4())]),
        "opening after the start": session_body(
            general_booking_opens_at=(now + timedelta(days=4)).isoformat()
        ),
        "a naive time": session_body(starts_at="2031-01-01T10:00:00"),
    }
    for what, body in bad.items():
        response = await client.post(
            f"{API}/experiences/{experience['id']}/sessions", json=body, headers=brand.headers
        )
        assert error(response) == (422, "ValidationError"), what
    unknown = await client.post(
        f"{API}/experiences/{uuid.uuid4()}/sessions", json=session_body(), headers=brand.headers
    )
    assert error(unknown) == (404, "ExperienceNotFound")
    assert await count(session, ExperienceSession) == 0
    assert [t for t, _ in await community_events(session)] == []


async def test_session_changes_keep_capacity_above_what_is_booked(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    scheduled = await create_session(client, brand.headers, capacity=2, max_seats_per_booking=2)
    assert (await book(client, member, scheduled["id"], seats=2)).json()["status"] == "confirmed"
    waiting = await book(client, other_member, scheduled["id"])
    assert waiting.json()["status"] == "waitlisted"

    lower = await client.patch(
        f"{API}/sessions/{scheduled['id']}", json={"capacity": 1}, headers=brand.headers
    )
    assert error(lower) == (409, "CapacityBelowBooked")
    too_many = await client.patch(
        f"{API}/sessions/{scheduled['id']}",
        json={"max_seats_per_booking": 5},
        headers=brand.headers,
    )
    assert error(too_many) == (422, "ValidationError")

    # A larger capacity moves the waitlist up at once.
    larger = await client.patch(
        f"{API}/sessions/{scheduled['id']}",
        json={"capacity": 3, "place": {"kind": "address", "address": "Flagship, 5th floor"}},
        headers=brand.headers,
    )
    assert larger.status_code == 200, larger.text
    assert (larger.json()["capacity"], larger.json()["seats_taken"]) == (3, 3)
    assert larger.json()["place"]["address"] == "Flagship, 5th floor"
    promoted = await client.get(
        f"{API}/bookings/{waiting.json()['id']}", headers=other_member.headers
    )
    assert (promoted.json()["status"], promoted.json()["promoted_from_waitlist"]) == (
        "confirmed",
        True,
    )


# --- Browsing ---------------------------------------------------------------------------------


async def test_members_browse_upcoming_sessions_in_start_order_with_filters_and_pages(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
) -> None:
    base = datetime(2031, 3, 1, 9, tzinfo=UTC)
    glow = await create_experience(client, brand.headers, tags=["skincare"])
    curls = await create_experience(client, brand.headers, title="Curls", tags=["hair"])

    def at(days: int) -> dict[str, str]:
        start = base + timedelta(days=days)
        return {
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(hours=1)).isoformat(),
        }

    online = {"kind": "online", "url": "https://meet.example.com/x"}
    # Scheduled out of order; listed by start.
    third = await create_session(client, brand.headers, glow["id"], **at(3))
    first = await create_session(client, brand.headers, curls["id"], **at(1), place=online)
    second = await create_session(client, brand.headers, glow["id"], **at(2), place=online)
    cancelled = await create_session(client, brand.headers, glow["id"], **at(4))
    await client.post(f"{API}/sessions/{cancelled['id']}/cancel", json={}, headers=brand.headers)

    async def ids(**params: str | int) -> list[str]:
        response = await client.get(f"{API}/sessions", params=params, headers=member.headers)
        assert response.status_code == 200, response.text
        return [s["id"] for s in response.json()["items"]]

    assert await ids() == [first["id"], second["id"], third["id"]]
    assert await ids(online="true") == [first["id"], second["id"]]
    assert await ids(online="false") == [third["id"]]
    assert await ids(tag=" SkinCare") == [second["id"], third["id"]]
    assert await ids(experience_id=curls["id"]) == [first["id"]]
    assert await ids(**{"from": at(2)["starts_at"], "to": at(3)["starts_at"]}) == [second["id"]]
    assert await ids(include_cancelled="true") == [
        first["id"],
        second["id"],
        third["id"],
        cancelled["id"],
    ]

    page = await client.get(f"{API}/sessions", params={"limit": 2}, headers=member.headers)
    assert [s["id"] for s in page.json()["items"]] == [first["id"], second["id"]]
    rest = await client.get(
        f"{API}/sessions", params={"limit": 2, "after": page.json()["next"]}, headers=member.headers
    )
    assert [s["id"] for s in rest.json()["items"]] == [third["id"]]
    assert rest.json()["next"] is None

    # The online link and the check-in code are not shown to a member without a booking.
    listed = (await client.get(f"{API}/sessions", headers=member.headers)).json()["items"]
    assert listed[0]["place"] == {"kind": "online", "address": None, "url": None}
    assert listed[0]["check_in_code"] is None
    naive = await client.get(
        f"{API}/sessions", params={"from": "2031-01-01T00:00:00"}, headers=member.headers
    )
    assert error(naive) == (422, "ValidationError")


async def test_the_online_link_is_shown_to_confirmed_guests(
    client: httpx.AsyncClient, brand: BrandFixture, member: MemberFixture
) -> None:
    scheduled = await create_session(
        client, brand.headers, place={"kind": "online", "url": "https://meet.example.com/glow"}
    )
    before = await client.get(f"{API}/sessions/{scheduled['id']}", headers=member.headers)
    assert before.json()["place"]["url"] is None
    assert (await book(client, member, scheduled["id"])).status_code == 201
    after = await client.get(f"{API}/sessions/{scheduled['id']}", headers=member.headers)
    assert after.json()["place"]["url"] == "https://meet.example.com/glow"
    assert after.json()["seats_taken"] == 1


# --- Check-in ---------------------------------------------------------------------------------


async def test_the_host_checks_a_guest_in_exactly_once(
    client: httpx.AsyncClient,
    session: AsyncSession,
    member: MemberFixture,
    make_member: MakeMember,
) -> None:
    host = await make_member("host", trust_level=3)
    experience = await create_experience(client, host.headers)
    scheduled = await create_session(client, host.headers, experience["id"])
    booking = (await book(client, member, scheduled["id"])).json()

    early = await client.post(f"{API}/bookings/{booking['id']}/check-in", headers=host.headers)
    assert error(early) == (409, "CheckInClosed")
    assert set(early.json()["detail"]) == {"message", "opens_at", "closes_at"}

    await move_session(session, scheduled["id"], utcnow() + timedelta(minutes=10))
    by_guest = await client.post(f"{API}/bookings/{booking['id']}/check-in", headers=member.headers)
    assert error(by_guest) == (403, "NotTheHost")
    checked = await client.post(f"{API}/bookings/{booking['id']}/check-in", headers=host.headers)
    assert checked.status_code == 200, checked.text
    assert (checked.json()["check_in_method"], checked.json()["checked_in_at"] is not None) == (
        "host",
        True,
    )
    again = await client.post(f"{API}/bookings/{booking['id']}/check-in", headers=host.headers)
    assert error(again) == (409, "AlreadyCheckedIn")
    by_code = await client.post(
        f"{API}/sessions/{scheduled['id']}/check-in",
        json={"code": scheduled["check_in_code"]},
        headers=member.headers,
    )
    assert error(by_code) == (409, "AlreadyCheckedIn")

    checked_in = [d for t, d in await community_events(session) if t == "experience.checked_in"]
    assert checked_in == [
        {
            "booking_id": booking["id"],
            "member_id": str(member.id),
            "session_id": scheduled["id"],
            "experience_id": experience["id"],
            "method": "host",
        }
    ]
    # A checked-in booking can no longer be cancelled.
    cancel = await client.post(f"{API}/bookings/{booking['id']}/cancel", headers=member.headers)
    assert error(cancel) == (409, "AlreadyCheckedIn")


async def test_members_check_in_with_the_code_only_with_a_confirmed_booking(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
    make_member: MakeMember,
) -> None:
    scheduled = await create_session(client, brand.headers, capacity=1)
    booking = (await book(client, member, scheduled["id"])).json()
    waiting = await book(client, other_member, scheduled["id"])
    assert waiting.json()["status"] == "waitlisted"
    stranger = await make_member("stranger")
    await move_session(session, scheduled["id"], utcnow() - timedelta(hours=1))
    code = scheduled["check_in_code"]

    async def check_in(who: MemberFixture, code: str) -> httpx.Response:
        return await client.post(
            f"{API}/sessions/{scheduled['id']}/check-in", json={"code": code}, headers=who.headers
        )

    assert error(await check_in(member, "WRONG1")) == (403, "WrongCheckInCode")
    assert error(await check_in(other_member, code)) == (409, "BookingNotConfirmed")
    assert error(await check_in(stranger, code)) == (404, "BookingNotFound")
    done = await check_in(member, f" {code.lower()} ")
    assert done.status_code == 200, done.text
    assert (done.json()["id"], done.json()["check_in_method"]) == (booking["id"], "code")
    assert error(await check_in(member, code)) == (409, "AlreadyCheckedIn")
    events = [t for t, _ in await community_events(session)]
    assert events.count("experience.checked_in") == 1


async def test_check_in_closes_hours_after_the_end_and_staff_check_in_is_recorded(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    scheduled = await create_session(client, brand.headers)
    booking = (await book(client, member, scheduled["id"])).json()
    await move_session(session, scheduled["id"], utcnow() - timedelta(hours=9))
    late = await client.post(f"{API}/bookings/{booking['id']}/check-in", headers=brand.headers)
    assert error(late) == (409, "CheckInClosed")
    await move_session(session, scheduled["id"], utcnow() - timedelta(hours=7))
    done = await client.post(f"{API}/bookings/{booking['id']}/check-in", headers=brand.headers)
    assert done.json()["check_in_method"] == "staff"


# --- Reviews ----------------------------------------------------------------------------------


async def test_attendees_review_once_after_the_session_and_the_rating_sums_up(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
    make_member: MakeMember,
) -> None:
    experience = await create_experience(client, brand.headers)
    scheduled = await create_session(client, brand.headers, experience["id"])
    mine = (await book(client, member, scheduled["id"])).json()
    theirs = (await book(client, other_member, scheduled["id"])).json()
    absent = await make_member("absent")
    await book(client, absent, scheduled["id"])

    async def review(who: MemberFixture, rating: int, body: str = "") -> httpx.Response:
        return await client.post(
            f"{API}/sessions/{scheduled['id']}/reviews",
            json={"rating": rating, "body": body},
            headers=who.headers,
        )

    assert error(await review(member, 5)) == (409, "SessionNotEnded")
    await move_session(session, scheduled["id"], utcnow() - timedelta(minutes=20))
    for booking in (mine, theirs):
        checked = await client.post(
            f"{API}/bookings/{booking['id']}/check-in", headers=brand.headers
        )
        assert checked.status_code == 200, checked.text
    assert error(await review(member, 5)) == (409, "SessionNotEnded")  # still running

    await move_session(session, scheduled["id"], utcnow() - timedelta(hours=3))
    for bad in (0, 6):
        assert error(await review(member, bad)) == (422, "ValidationError")
    assert error(await review(absent, 4)) == (403, "NotAnAttendee")
    first = await review(member, 5, "  Loved the layering tips.  ")
    assert first.status_code == 201, first.text
    assert first.json() == {
        "id": first.json()["id"],
        "experience_id": experience["id"],
        "session_id": scheduled["id"],
        "member_id": str(member.id),
        "rating": 5,
        "body": "Loved the layering tips.",
        "created_at": first.json()["created_at"],
    }
    assert error(await review(member, 1)) == (409, "AlreadyReviewed")
    assert (await review(other_member, 4)).status_code == 201
    assert await count(session, ExperienceReview) == 2

    read = await client.get(f"{API}/experiences/{experience['id']}", headers=member.headers)
    assert (read.json()["review_count"], read.json()["average_rating"]) == (2, 4.5)
    rating = await client.get(
        f"{API}/experiences/{experience['id']}/rating", headers=member.headers
    )
    assert rating.json() == {
        "count": 2,
        "average": 4.5,
        "distribution": {"1": 0, "2": 0, "3": 0, "4": 1, "5": 1},
    }
    listed = await client.get(
        f"{API}/experiences/{experience['id']}/reviews", headers=member.headers
    )
    assert [r["rating"] for r in listed.json()["items"]] == [4, 5]  # newest first
    reviewed = [d for t, d in await community_events(session) if t == "experience.reviewed"]
    assert reviewed[0] == {
        "review_id": first.json()["id"],
        "experience_id": experience["id"],
        "session_id": scheduled["id"],
        "member_id": str(member.id),
        "host_member_id": None,
        "rating": 5,
    }


# --- The brand boundary -----------------------------------------------------------------------


async def test_another_brand_sees_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
    member: MemberFixture,
    make_member: MakeMember,
) -> None:
    experience = await create_experience(client, brand.headers)
    scheduled = await create_session(client, brand.headers, experience["id"])
    booking = (await book(client, member, scheduled["id"])).json()
    outsider = await make_member("outsider", other_brand)

    for headers in (other_brand.headers, outsider.headers):
        for path in (
            f"/experiences/{experience['id']}",
            f"/experiences/{experience['id']}/rating",
            f"/experiences/{experience['id']}/reviews",
            f"/sessions/{scheduled['id']}",
            f"/sessions/{scheduled['id']}/bookings",
            f"/bookings/{booking['id']}",
        ):
            response = await client.get(f"{API}{path}", headers=headers)
            assert response.status_code == 404, (path, response.text)
        assert (await client.get(f"{API}/experiences", headers=headers)).json()["items"] == []
        assert (await client.get(f"{API}/sessions", headers=headers)).json()["items"] == []
    for path, body in (
        (f"/experiences/{experience['id']}/sessions", session_body()),
        (f"/sessions/{scheduled['id']}/cancel", {}),
        (f"/bookings/{booking['id']}/check-in", None),
    ):
        response = await client.post(f"{API}{path}", json=body, headers=other_brand.headers)
        assert response.status_code == 404, (path, response.text)
    stolen = await book(client, outsider, scheduled["id"])
    assert error(stolen) == (404, "SessionNotFound")
    cancel = await client.post(f"{API}/bookings/{booking['id']}/cancel", headers=outsider.headers)
    assert error(cancel) == (404, "BookingNotFound")
    mine = await client.get(f"{API}/me/bookings", headers=outsider.headers)
    assert mine.json()["items"] == []
