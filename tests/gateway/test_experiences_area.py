"""Experiences over GraphQL: browsing experiences and sessions (by date, place, tag), booking
with an idempotency key, the waitlist, cancelling, hosting, check-in and reviews; and the
userErrors that leave nothing written. Data is made through the community's REST API."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from services.community.experiences.models import Experience as ExperienceRow
from services.community.models import OUTBOX, CommunityMember
from services.gateway.ids import decode_global_id, encode_global_id
from services.kernel.clock import utcnow
from tests.community.conftest import sync_members
from tests.community.experience_helpers import (
    booking_count,
    create_experience,
    create_session,
    move_session,
    seats_taken,
)
from tests.community.test_experiences_by_ids import statements_on
from tests.conftest import BrandFixture, MemberFixture
from tests.gateway.conftest import GraphQL, MakeGatewayMember


@pytest.fixture
async def make_guest(make_gateway_member: MakeGatewayMember, session: AsyncSession) -> Any:
    """A member of the brand, known to the community (as its projection of events makes them)."""

    async def make(brand_fixture: BrandFixture | None = None, **fields: Any) -> MemberFixture:
        member = await make_gateway_member(brand_fixture, **fields)
        await sync_members(session)
        return member

    return make


def gid(type_name: str, raw: str) -> str:
    return str(encode_global_id(type_name, raw))


async def outbox_count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(OUTBOX.table)) or 0)


BOOK = """
mutation Book($input: BookSessionInput!) {
  bookSession(input: $input) {
    booking { id seats status waitlistPosition session { id seatsTaken seatsLeft } }
    userErrors { field code message }
  }
}
"""

WAIT = """
mutation Wait($input: JoinWaitlistInput!) {
  joinWaitlist(input: $input) {
    booking { id seats status waitlistPosition }
    userErrors { field code message }
  }
}
"""

CANCEL = """
mutation Cancel($input: CancelBookingInput!) {
  cancelBooking(input: $input) { booking { id status } userErrors { field code message } }
}
"""


# --- Booking ----------------------------------------------------------------------------------


async def test_book_session_takes_the_seats_once_and_a_replay_returns_the_same_booking(
    graphql: GraphQL,
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    make_guest: Any,
) -> None:
    ada = await make_guest(display_name="Ada")
    made = await create_session(client, brand.headers, capacity=3, max_seats_per_booking=2)
    session_gid = gid("Session", made["id"])
    variables = {"input": {"sessionId": session_gid, "seats": 2, "idempotencyKey": "book-1"}}

    first = await graphql(BOOK, variables, member=ada)
    booking = first["data"]["bookSession"]["booking"]
    assert first == {
        "data": {
            "bookSession": {
                "booking": {
                    "id": booking["id"],
                    "seats": 2,
                    "status": "CONFIRMED",
                    "waitlistPosition": None,
                    "session": {"id": session_gid, "seatsTaken": 2, "seatsLeft": 1},
                },
                "userErrors": [],
            }
        }
    }
    assert await seats_taken(session, made["id"]) == 2

    replay = await graphql(BOOK, variables, member=ada)
    assert replay == first
    assert await seats_taken(session, made["id"]) == 2
    assert await booking_count(session) == 1

    # The same key with another request is the service's refusal, and books nothing.
    reused = {"input": {**variables["input"], "seats": 1}}
    answer = await graphql(BOOK, reused, member=ada)
    assert answer["data"]["bookSession"]["booking"] is None
    assert [e["code"] for e in answer["data"]["bookSession"]["userErrors"]] == [
        "IdempotencyKeyReused"
    ]
    # A second booking of the same session, with a new key: refused as already booked.
    again = {"input": {**variables["input"], "idempotencyKey": "book-2"}}
    answer = await graphql(BOOK, again, member=ada)
    assert answer["data"]["bookSession"]["userErrors"] == [
        {
            "field": None,
            "code": "AlreadyBooked",
            "message": "You already have a booking for this session; cancel it to book again.",
        }
    ]
    assert await seats_taken(session, made["id"]) == 2
    assert await booking_count(session) == 1

    mine = await graphql(
        """{ me { bookings(first: 10) { edges { node { id status seats
              experience { title } } } pageInfo { hasNextPage } } } }""",
        member=ada,
    )
    assert mine == {
        "data": {
            "me": {
                "bookings": {
                    "edges": [
                        {
                            "node": {
                                "id": booking["id"],
                                "status": "CONFIRMED",
                                "seats": 2,
                                "experience": {"title": "Summer glow masterclass"},
                            }
                        }
                    ],
                    "pageInfo": {"hasNextPage": False},
                }
            }
        }
    }
    node = await graphql(
        """query($id: ID!) { node(id: $id) { ... on Booking { id seats session { id } } } }""",
        {"id": booking["id"]},
        member=ada,
    )
    assert node == {
        "data": {"node": {"id": booking["id"], "seats": 2, "session": {"id": session_gid}}}
    }


async def test_a_full_session_refuses_then_the_waitlist_moves_up_on_a_cancellation(
    graphql: GraphQL,
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    make_guest: Any,
) -> None:
    ada = await make_guest()
    bea = await make_guest()
    made = await create_session(client, brand.headers, capacity=1)
    session_gid = gid("Session", made["id"])
    taken = await graphql(
        BOOK, {"input": {"sessionId": session_gid, "idempotencyKey": "a"}}, member=ada
    )
    ada_booking = taken["data"]["bookSession"]["booking"]["id"]
    before = (await booking_count(session), await outbox_count(session))

    full = await graphql(
        BOOK, {"input": {"sessionId": session_gid, "idempotencyKey": "b"}}, member=bea
    )
    assert full == {
        "data": {
            "bookSession": {
                "booking": None,
                "userErrors": [
                    {
                        "field": None,
                        "code": "SessionFull",
                        "message": "0 seat(s) left, 1 asked; book with join_waitlist true to "
                        "wait for a seat.",
                    }
                ],
            }
        }
    }
    assert (await booking_count(session), await outbox_count(session)) == before

    waiting = await graphql(
        WAIT, {"input": {"sessionId": session_gid, "idempotencyKey": "b"}}, member=bea
    )
    bea_booking = waiting["data"]["joinWaitlist"]["booking"]
    assert waiting["data"]["joinWaitlist"] == {
        "booking": {
            "id": bea_booking["id"],
            "seats": 1,
            "status": "WAITLISTED",
            "waitlistPosition": 1,
        },
        "userErrors": [],
    }
    assert await seats_taken(session, made["id"]) == 1

    cancel = {"input": {"bookingId": ada_booking, "idempotencyKey": "cancel-1"}}
    cancelled = await graphql(CANCEL, cancel, member=ada)
    assert cancelled["data"]["cancelBooking"] == {
        "booking": {"id": ada_booking, "status": "CANCELLED"},
        "userErrors": [],
    }
    # Sent again with its key (the answer was lost): the same answer, not BookingNotActive.
    assert await graphql(CANCEL, cancel, member=ada) == cancelled
    moved = await graphql(
        """query($id: ID!) { node(id: $id) { ... on Booking {
             status waitlistPosition promotedFromWaitlist } } }""",
        {"id": bea_booking["id"]},
        member=bea,
    )
    assert moved["data"]["node"] == {
        "status": "CONFIRMED",
        "waitlistPosition": None,
        "promotedFromWaitlist": True,
    }
    assert await seats_taken(session, made["id"]) == 1

    # Bookings are their owner's: Bea neither sees nor cancels Ada's.
    assert (
        await graphql("query($id: ID!) { node(id: $id) { id } }", {"id": ada_booking}, member=bea)
    ) == {"data": {"node": None}}
    foreign = await graphql(CANCEL, {"input": {"bookingId": ada_booking}}, member=bea)
    assert foreign["data"]["cancelBooking"]["userErrors"][0]["code"] == "BookingNotFound"
    assert foreign["data"]["cancelBooking"]["userErrors"][0]["field"] == ["input", "bookingId"]


async def test_bad_bookings_are_user_errors_and_write_nothing(
    graphql: GraphQL,
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
    make_guest: Any,
) -> None:
    ada = await make_guest()
    ours = await create_session(client, brand.headers)
    theirs = await create_session(client, other_brand.headers)
    before = (await booking_count(session), await outbox_count(session))

    async def refused(session_id: str, **changes: Any) -> list[dict[str, Any]]:
        body = {"sessionId": session_id, "idempotencyKey": uuid.uuid4().hex, **changes}
        answer = await graphql(BOOK, {"input": body}, member=ada)
        assert answer["data"]["bookSession"]["booking"] is None, answer
        errors: list[dict[str, Any]] = answer["data"]["bookSession"]["userErrors"]
        return [{k: e[k] for k in ("field", "code")} for e in errors]

    forged = [{"field": ["input", "sessionId"], "code": "INVALID_ID"}]
    assert await refused("not-an-id") == forged
    assert await refused(gid("Booking", ours["id"])) == forged
    assert await refused(gid("Session", theirs["id"])) == [
        {"field": ["input", "sessionId"], "code": "SessionNotFound"}
    ]
    assert await refused(gid("Session", ours["id"]), seats=0) == [
        {"field": ["input", "seats"], "code": "ValidationError"}
    ]
    assert await refused(gid("Session", ours["id"]), seats=2) == [
        {"field": None, "code": "TooManySeats"}
    ]
    assert await refused(gid("Session", ours["id"]), idempotencyKey="") == [
        {"field": ["input", "idempotencyKey"], "code": "ValidationError"}
    ]
    assert (await booking_count(session), await outbox_count(session)) == before
    assert await seats_taken(session, ours["id"]) == 0


# --- Browsing ---------------------------------------------------------------------------------

SESSIONS = """
query($filter: SessionFilter, $after: String) {
  sessions(first: 2, after: $after, filter: $filter) {
    edges { node { id startsAt online place { kind address url } experience { title } } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


async def test_sessions_are_filtered_by_date_range_place_and_tag_exactly(
    graphql: GraphQL,
    client: httpx.AsyncClient,
    connection: AsyncConnection,
    brand: BrandFixture,
    make_guest: Any,
) -> None:
    ada = await make_guest()
    glow = await create_experience(client, brand.headers, tags=["skincare"])
    curls = await create_experience(client, brand.headers, title="Curls", tags=["hair"])
    base = datetime(2031, 3, 1, 9, tzinfo=UTC)

    async def at(days: int, experience: dict[str, Any], place: dict[str, str]) -> str:
        starts = base + timedelta(days=days)
        made = await create_session(
            client,
            brand.headers,
            experience["id"],
            starts_at=starts.isoformat(),
            ends_at=(starts + timedelta(hours=1)).isoformat(),
            place=place,
        )
        return gid("Session", made["id"])

    paris = {"kind": "address", "address": "12 rue de Rivoli, Paris"}
    lyon = {"kind": "address", "address": "3 place Bellecour, Lyon"}
    online = {"kind": "online", "url": "https://meet.example.com/x"}
    day1 = await at(1, curls, online)
    day2 = await at(2, glow, paris)
    day3 = await at(3, glow, lyon)
    day4 = await at(4, curls, paris)

    async def ids(**filter: Any) -> list[str]:
        answer = await graphql(
            SESSIONS.replace("first: 2", "first: 10"), {"filter": filter}, member=ada
        )
        return [edge["node"]["id"] for edge in answer["data"]["sessions"]["edges"]]

    # `from` is inclusive, `to` exclusive, offsets are honoured.
    window = {"from": "2031-03-03T09:00:00+00:00", "to": "2031-03-05T09:00:00+00:00"}
    assert await ids(**window) == [day2, day3]
    assert await ids(**{"from": "2031-03-04T10:00:00+01:00"}) == [day3, day4]
    assert await ids(to="2031-03-03T09:00:00Z") == [day1]
    assert await ids(place="paris") == [day2, day4]
    assert await ids(place="Paris", **window) == [day2]
    assert await ids(online=True) == [day1]
    assert await ids(tag="SkinCare") == [day2, day3]

    # Pages of two, exact, and every session's experience read in one batch.
    with statements_on(connection, "community.experiences") as seen:
        page = await graphql(SESSIONS, {"filter": window | {"to": None}}, member=ada)
    assert len(seen) == 1
    assert page == {
        "data": {
            "sessions": {
                "edges": [
                    {
                        "node": {
                            "id": day2,
                            "startsAt": "2031-03-03T09:00:00+00:00",
                            "online": False,
                            "place": {"kind": "ADDRESS", "address": paris["address"], "url": None},
                            "experience": {"title": "Summer glow masterclass"},
                        }
                    },
                    {
                        "node": {
                            "id": day3,
                            "startsAt": "2031-03-04T09:00:00+00:00",
                            "online": False,
                            "place": {"kind": "ADDRESS", "address": lyon["address"], "url": None},
                            "experience": {"title": "Summer glow masterclass"},
                        }
                    },
                ],
                "pageInfo": {
                    "hasNextPage": True,
                    "endCursor": page["data"]["sessions"]["pageInfo"]["endCursor"],
                },
            }
        }
    }
    rest = await graphql(
        SESSIONS,
        {
            "filter": {"from": window["from"]},
            "after": page["data"]["sessions"]["pageInfo"]["endCursor"],
        },
        member=ada,
    )
    assert [e["node"]["id"] for e in rest["data"]["sessions"]["edges"]] == [day4]
    assert rest["data"]["sessions"]["pageInfo"]["hasNextPage"] is False

    # An experience's own sessions, by date too.
    glow_sessions = await graphql(
        """query($id: ID!) { node(id: $id) { ... on Experience { title
             sessions(first: 5, from: "2031-03-01T00:00:00Z", to: "2031-03-04T00:00:00Z") {
               nodes { id } } } } }""",
        {"id": gid("Experience", glow["id"])},
        member=ada,
    )
    assert glow_sessions == {
        "data": {
            "node": {"title": "Summer glow masterclass", "sessions": {"nodes": [{"id": day2}]}}
        }
    }

    naive = await graphql(SESSIONS, {"filter": {"from": "2031-03-01T00:00:00"}}, member=ada)
    assert naive["data"] is None
    assert naive["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_experiences_are_listed_by_tag_and_kind_with_their_host_and_rating(
    graphql: GraphQL, client: httpx.AsyncClient, brand: BrandFixture, make_guest: Any
) -> None:
    ada = await make_guest()
    glow = await create_experience(client, brand.headers, tags=["skincare", "spf"])
    await create_experience(client, brand.headers, title="Curls", kind="workshop", tags=["hair"])
    query = """query($filter: ExperienceFilter) { experiences(first: 10, filter: $filter) {
      nodes { id title description kind tags host { kind member { id } isYou }
              rating { count average distribution { rating count } } } } }"""

    answer = await graphql(query, {"filter": {"tag": "SPF", "kind": "MASTERCLASS"}}, member=ada)
    assert answer == {
        "data": {
            "experiences": {
                "nodes": [
                    {
                        "id": gid("Experience", glow["id"]),
                        "title": "Summer glow masterclass",
                        "description": "Layering SPF under make-up, with our artists.",
                        "kind": "MASTERCLASS",
                        "tags": ["skincare", "spf"],
                        "host": {"kind": "BRAND", "member": None, "isYou": False},
                        "rating": {
                            "count": 0,
                            "average": None,
                            "distribution": [{"rating": r, "count": 0} for r in range(1, 6)],
                        },
                    }
                ]
            }
        }
    }
    workshops = await graphql(query, {"filter": {"kind": "WORKSHOP"}}, member=ada)
    assert [n["title"] for n in workshops["data"]["experiences"]["nodes"]] == ["Curls"]
    mine = await graphql(query, {"filter": {"hostedByMe": True}}, member=ada)
    assert mine == {"data": {"experiences": {"nodes": []}}}


# --- Hosting, check-in, reviews ---------------------------------------------------------------


HOST = """
mutation($input: HostExperienceInput!) {
  hostExperience(input: $input) {
    experience { id title kind tags host { kind member { id displayName } isYou } }
    userErrors { field code message }
  }
}
"""

SCHEDULE = """
mutation($input: ScheduleSessionInput!) {
  scheduleSession(input: $input) {
    session { id title capacity seatsLeft place { kind address url } checkInCode }
    userErrors { field code message }
  }
}
"""

CHECK_IN = """
mutation($input: CheckInAttendeeInput!) {
  checkInAttendee(input: $input) { booking { id status checkedInAt } userErrors { field code } }
}
"""

REVIEW = """
mutation($input: ReviewExperienceInput!) {
  reviewExperience(input: $input) {
    review { rating text reviewer { displayName } }
    userErrors { field code }
  }
}
"""


async def test_a_trusted_member_hosts_checks_guests_in_and_guests_review(
    graphql: GraphQL,
    session: AsyncSession,
    make_guest: Any,
) -> None:
    host = await make_guest(display_name="Hana")
    guest = await make_guest(display_name="Gus")
    body = {"title": "Curl club", "kind": "MEETUP", "tags": ["Curls"]}

    # Hosting needs a trust level the member has not reached: nothing is written.
    early = await graphql(HOST, {"input": body}, member=host)
    assert early["data"]["hostExperience"]["experience"] is None
    assert [e["code"] for e in early["data"]["hostExperience"]["userErrors"]] == [
        "TrustLevelTooLow"
    ]
    assert await session.scalar(select(func.count()).select_from(ExperienceRow)) == 0
    await session.execute(
        update(CommunityMember).where(CommunityMember.member_id == host.id).values(trust_level=3)
    )

    hosted = await graphql(HOST, {"input": body}, member=host)
    experience = hosted["data"]["hostExperience"]["experience"]
    assert hosted["data"]["hostExperience"] == {
        "experience": {
            "id": experience["id"],
            "title": "Curl club",
            "kind": "MEETUP",
            "tags": ["curls"],
            "host": {
                "kind": "MEMBER",
                "member": {"id": gid("Member", str(host.id)), "displayName": "Hana"},
                "isYou": True,
            },
        },
        "userErrors": [],
    }

    starts = utcnow() + timedelta(days=2)
    schedule = {
        "experienceId": experience["id"],
        "startsAt": starts.isoformat(),
        "endsAt": (starts + timedelta(hours=2)).isoformat(),
        "timeZone": "Europe/Paris",
        "place": {"url": "https://meet.example.com/curls"},
        "capacity": 4,
    }
    scheduled = await graphql(SCHEDULE, {"input": schedule}, member=host)
    made = scheduled["data"]["scheduleSession"]["session"]
    assert scheduled["data"]["scheduleSession"] == {
        "session": {
            "id": made["id"],
            "title": "Curl club",
            "capacity": 4,
            "seatsLeft": 4,
            "place": {"kind": "ONLINE", "address": None, "url": "https://meet.example.com/curls"},
            "checkInCode": made["checkInCode"],
        },
        "userErrors": [],
    }
    assert len(made["checkInCode"]) == 6
    not_host = await graphql(SCHEDULE, {"input": schedule}, member=guest)
    assert not_host["data"]["scheduleSession"]["userErrors"] == [
        {
            "field": None,
            "code": "NotTheHost",
            "message": "Only the experience's host (or the brand's staff) may do this.",
        }
    ]
    past = await graphql(
        SCHEDULE,
        {
            "input": schedule
            | {"startsAt": "2020-01-01T10:00:00Z", "endsAt": "2020-01-01T12:00:00Z"}
        },
        member=host,
    )
    assert past["data"]["scheduleSession"]["userErrors"][0]["field"] == ["input", "startsAt"]

    booked = await graphql(
        BOOK, {"input": {"sessionId": made["id"], "idempotencyKey": "g"}}, member=guest
    )
    booking_id = booked["data"]["bookSession"]["booking"]["id"]

    # The guest list is the host's; others are refused.
    guests = """query($id: ID!) { node(id: $id) { ... on Session {
        bookings(first: 10) { nodes { id guest { id displayName } status } } } } }"""
    seen = await graphql(guests, {"id": made["id"]}, member=host)
    assert seen == {
        "data": {
            "node": {
                "bookings": {
                    "nodes": [
                        {
                            "id": booking_id,
                            "guest": {"id": gid("Member", str(guest.id)), "displayName": "Gus"},
                            "status": "CONFIRMED",
                        }
                    ]
                }
            }
        }
    }
    refused = await graphql(guests, {"id": made["id"]}, member=guest)
    assert refused["errors"][0]["extensions"] == {"code": "FORBIDDEN", "serviceCode": "NotTheHost"}

    # The session took place an hour ago: the host checks the guest in, once.
    session_uuid = str(decode_global_id(made["id"])[1])
    now = utcnow()
    await move_session(session, session_uuid, now - timedelta(hours=3), now - timedelta(hours=1))
    by_guest = await graphql(CHECK_IN, {"input": {"bookingId": booking_id}}, member=guest)
    assert by_guest["data"]["checkInAttendee"]["userErrors"] == [
        {"field": None, "code": "NotTheHost"}
    ]
    checked = await graphql(CHECK_IN, {"input": {"bookingId": booking_id}}, member=host)
    assert checked["data"]["checkInAttendee"]["booking"]["status"] == "CONFIRMED"
    assert checked["data"]["checkInAttendee"]["booking"]["checkedInAt"] is not None
    twice = await graphql(CHECK_IN, {"input": {"bookingId": booking_id}}, member=host)
    assert twice["data"]["checkInAttendee"] == {
        "booking": None,
        "userErrors": [{"field": None, "code": "AlreadyCheckedIn"}],
    }

    review = {"sessionId": made["id"], "rating": 5, "text": "Loved it"}
    by_host = await graphql(REVIEW, {"input": review}, member=host)
    assert by_host["data"]["reviewExperience"]["userErrors"] == [
        {"field": None, "code": "NotAnAttendee"}
    ]
    too_high = await graphql(REVIEW, {"input": review | {"rating": 6}}, member=guest)
    assert too_high["data"]["reviewExperience"]["userErrors"] == [
        {"field": ["input", "rating"], "code": "ValidationError"}
    ]
    reviewed = await graphql(REVIEW, {"input": review}, member=guest)
    assert reviewed["data"]["reviewExperience"] == {
        "review": {
            "rating": 5,
            "text": "Loved it",
            "reviewer": {"displayName": "Gus"},
        },
        "userErrors": [],
    }
    summary = await graphql(
        """query($id: ID!) { node(id: $id) { ... on Experience {
             rating { count average } reviews(first: 5) { nodes { rating text } } } } }""",
        {"id": experience["id"]},
        member=guest,
    )
    assert summary == {
        "data": {
            "node": {
                "rating": {"count": 1, "average": 5.0},
                "reviews": {"nodes": [{"rating": 5, "text": "Loved it"}]},
            }
        }
    }
