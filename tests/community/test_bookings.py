"""Booking sessions: seats, the waitlist, paying in points through rewards' events, cancelling
with or without a refund, early access by tier, and every bad input."""

from __future__ import annotations

import uuid
from datetime import timedelta
from types import SimpleNamespace

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.experiences import bookings
from services.community.experiences.models import Booking, BookingStatus
from services.community.experiences.payments import apply_payment_answer
from services.community.models import CommunityMember
from services.kernel.clock import utcnow
from services.kernel.events import Event
from services.kernel.ids import new_id
from tests.community.conftest import MakeMember, community_events
from tests.community.experience_helpers import (
    API,
    book,
    booking_count,
    create_session,
    error,
    move_session,
    payment_declined,
    points_redeemed,
    seats_taken,
    set_tier,
)
from tests.conftest import BrandFixture, MemberFixture


async def events_of(session: AsyncSession, *types: str) -> list[tuple[str, dict[str, object]]]:
    return [(t, d) for t, d in await community_events(session) if t in types]


# --- Free sessions ----------------------------------------------------------------------------


async def test_a_free_booking_is_confirmed_at_once_and_a_retry_replays_it(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    scheduled = await create_session(client, brand.headers, max_seats_per_booking=3)
    created = await book(client, member, scheduled["id"], key="k-1", seats=2)
    assert created.status_code == 201, created.text
    booking = created.json()
    assert booking == {
        "id": booking["id"],
        "session_id": scheduled["id"],
        "experience_id": scheduled["experience_id"],
        "member_id": str(member.id),
        "seats": 2,
        "status": "confirmed",
        "waitlist_position": None,
        "promoted_from_waitlist": False,
        "points": 0,
        "paid_points": 0,
        "refund_points": 0,
        "payment_due_at": None,
        "confirmed_at": booking["confirmed_at"],
        "cancelled_at": None,
        "cancelled_by": None,
        "checked_in_at": None,
        "check_in_method": None,
        "created_at": booking["created_at"],
    }
    assert await events_of(session, "experience.booked") == [
        (
            "experience.booked",
            {
                "booking_id": booking["id"],
                "member_id": str(member.id),
                "session_id": scheduled["id"],
                "experience_id": scheduled["experience_id"],
                "seats": 2,
                "points": 0,
                "promoted_from_waitlist": False,
                "starts_at": scheduled["starts_at"],
            },
        )
    ]

    replay = await book(client, member, scheduled["id"], key="k-1", seats=2)
    assert (replay.status_code, replay.json()) == (201, booking)
    assert replay.headers["Idempotent-Replayed"] == "true"
    reused = await book(client, member, scheduled["id"], key="k-1", seats=1)
    assert error(reused) == (409, "IdempotencyKeyReused")
    missing = await client.post(
        f"{API}/sessions/{scheduled['id']}/bookings", json={}, headers=member.headers
    )
    assert error(missing) == (422, "ValidationError")
    assert await booking_count(session) == 1
    assert await seats_taken(session, scheduled["id"]) == 2

    mine = await client.get(f"{API}/me/bookings", headers=member.headers)
    assert [b["id"] for b in mine.json()["items"]] == [booking["id"]]


async def test_bad_bookings_are_refused_and_nothing_is_written(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
    make_member: MakeMember,
) -> None:
    scheduled = await create_session(client, brand.headers, capacity=3, max_seats_per_booking=2)
    past = await create_session(client, brand.headers)
    await move_session(session, past["id"], utcnow() - timedelta(minutes=1))
    cancelled = await create_session(client, brand.headers)
    await client.post(
        f"{API}/sessions/{cancelled['id']}/cancel", json={"reason": "Rain"}, headers=brand.headers
    )
    assert (await book(client, member, scheduled["id"])).status_code == 201
    written = (await booking_count(session), len(await community_events(session)))

    cases = [
        (book(client, other_member, past["id"]), (409, "SessionStarted")),
        (book(client, other_member, cancelled["id"]), (409, "SessionCancelled")),
        (book(client, other_member, scheduled["id"], seats=3), (422, "TooManySeats")),
        (book(client, other_member, scheduled["id"], seats=0), (422, "ValidationError")),
        (book(client, other_member, scheduled["id"], seats="2"), (422, "ValidationError")),
        (book(client, other_member, scheduled["id"], extra=1), (422, "ValidationError")),
        (book(client, other_member, str(uuid.uuid4())), (404, "SessionNotFound")),
        (book(client, member, scheduled["id"]), (409, "AlreadyBooked")),
    ]
    for request, expected in cases:
        response = await request
        assert error(response) == expected, response.text
    assert (await booking_count(session), len(await community_events(session))) == written
    assert await seats_taken(session, scheduled["id"]) == 1

    # A full session with join_waitlist false refuses, writing nothing either.
    assert (await book(client, other_member, scheduled["id"], seats=2)).status_code == 201
    late = await make_member("late")
    full = await book(client, late, scheduled["id"], join_waitlist=False)
    assert error(full) == (409, "SessionFull")
    assert await booking_count(session) == 2


# --- The waitlist -----------------------------------------------------------------------------


async def test_a_full_session_waitlists_and_a_cancellation_promotes_the_first_that_fits(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    make_member: MakeMember,
) -> None:
    ada, bea, cy, dee = [await make_member(name) for name in ("ada", "bea", "cy", "dee")]
    scheduled = await create_session(client, brand.headers, capacity=2, max_seats_per_booking=2)
    first = (await book(client, ada, scheduled["id"], seats=2)).json()
    waiting = {}
    for who, seats in ((bea, 1), (cy, 2), (dee, 1)):
        response = await book(client, who, scheduled["id"], seats=seats)
        assert response.status_code == 201, response.text
        waiting[who.external_id] = response.json()
    assert [(w["status"], w["waitlist_position"]) for w in waiting.values()] == [
        ("waitlisted", 1),
        ("waitlisted", 2),
        ("waitlisted", 3),
    ]
    assert [d["position"] for _, d in await events_of(session, "experience.waitlisted")] == [
        1,
        2,
        3,
    ]
    before = len(await community_events(session))

    # Two seats free up: bea (1) fits, cy (2) no longer does, dee (1) does.
    cancelled = await client.post(f"{API}/bookings/{first['id']}/cancel", headers=ada.headers)
    assert cancelled.status_code == 200, cancelled.text
    assert (cancelled.json()["status"], cancelled.json()["refund_points"]) == ("cancelled", 0)
    after = (await community_events(session))[before:]
    assert after == [
        (
            "experience.cancelled",
            {
                "booking_id": first["id"],
                "member_id": str(ada.id),
                "session_id": scheduled["id"],
                "experience_id": scheduled["experience_id"],
                "seats": 2,
                "previous_status": "confirmed",
                "reason": "member",
                "refund_points": 0,
            },
        ),
        *[
            (
                "experience.booked",
                {
                    "booking_id": waiting[name]["id"],
                    "member_id": waiting[name]["member_id"],
                    "session_id": scheduled["id"],
                    "experience_id": scheduled["experience_id"],
                    "seats": 1,
                    "points": 0,
                    "promoted_from_waitlist": True,
                    "starts_at": scheduled["starts_at"],
                },
            )
            for name in ("bea", "dee")
        ],
    ]

    async def state(name: str, who: MemberFixture) -> tuple[str, int | None]:
        read = await client.get(f"{API}/bookings/{waiting[name]['id']}", headers=who.headers)
        return read.json()["status"], read.json()["waitlist_position"]

    assert await state("bea", bea) == ("confirmed", None)
    assert await state("dee", dee) == ("confirmed", None)
    assert await state("cy", cy) == ("waitlisted", 1)
    assert await seats_taken(session, scheduled["id"]) == 2

    # The host's list shows every booking, oldest first, with places in line.
    listed = await client.get(f"{API}/sessions/{scheduled['id']}/bookings", headers=brand.headers)
    assert [(b["member_id"], b["status"]) for b in listed.json()["items"]] == [
        (str(ada.id), "cancelled"),
        (str(bea.id), "confirmed"),
        (str(cy.id), "waitlisted"),
        (str(dee.id), "confirmed"),
    ]
    not_host = await client.get(f"{API}/sessions/{scheduled['id']}/bookings", headers=bea.headers)
    assert error(not_host) == (403, "NotTheHost")

    # Both single seats cancelled: cy's two fit now.
    for name, who in (("bea", bea), ("dee", dee)):
        await client.post(f"{API}/bookings/{waiting[name]['id']}/cancel", headers=who.headers)
    assert await state("cy", cy) == ("confirmed", None)
    again = await client.post(f"{API}/bookings/{waiting['bea']['id']}/cancel", headers=bea.headers)
    assert error(again) == (409, "BookingNotActive")
    others = await client.post(f"{API}/bookings/{waiting['cy']['id']}/cancel", headers=bea.headers)
    assert error(others) == (404, "BookingNotFound")

    # A member may leave the waitlist, and book again after cancelling.
    rebooked = await book(client, ada, scheduled["id"])
    assert rebooked.json()["status"] == "waitlisted"
    left = await client.post(f"{API}/bookings/{rebooked.json()['id']}/cancel", headers=ada.headers)
    assert (left.json()["status"], left.json()["waitlist_position"]) == ("cancelled", None)


async def test_a_cancellation_sent_again_with_its_key_gets_the_first_answer_and_does_nothing_more(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    make_member: MakeMember,
) -> None:
    ada, bea = await make_member("ada"), await make_member("bea")
    scheduled = await create_session(client, brand.headers, capacity=1)
    first = (await book(client, ada, scheduled["id"])).json()
    waiting = (await book(client, bea, scheduled["id"])).json()
    assert waiting["status"] == "waitlisted"
    cancel = f"{API}/bookings/{first['id']}/cancel"
    keyed = {**ada.headers, "Idempotency-Key": "cancel-1"}

    cancelled = await client.post(cancel, headers=keyed)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert "Idempotent-Replayed" not in cancelled.headers
    events = await community_events(session)
    assert [t for t, _ in events[-2:]] == ["experience.cancelled", "experience.booked"]

    # The answer was lost; the app sends the same request again: the first answer, no new event.
    again = await client.post(cancel, headers=keyed)
    assert (again.status_code, again.headers["Idempotent-Replayed"]) == (200, "true")
    assert again.json() == cancelled.json()
    assert await community_events(session) == events
    # Without the key, the booking is simply no longer active.
    unkeyed = await client.post(cancel, headers=ada.headers)
    assert error(unkeyed) == (409, "BookingNotActive")

    # The key names that one cancellation: on another booking it is refused, which stays booked.
    rebooked = (await book(client, ada, scheduled["id"])).json()
    events = await community_events(session)
    reused = await client.post(f"{API}/bookings/{rebooked['id']}/cancel", headers=keyed)
    assert error(reused) == (409, "IdempotencyKeyReused")
    still = await client.get(f"{API}/bookings/{rebooked['id']}", headers=ada.headers)
    assert still.json()["status"] == "waitlisted"
    assert await community_events(session) == events
    # Keys are each member's own: bea may use the same one.
    bea_cancels = await client.post(
        f"{API}/bookings/{waiting['id']}/cancel",
        headers={**bea.headers, "Idempotency-Key": "cancel-1"},
    )
    assert (bea_cancels.status_code, bea_cancels.json()["status"]) == (200, "cancelled")


# --- Paying in points -------------------------------------------------------------------------


async def test_a_priced_booking_waits_for_rewards_and_is_confirmed_when_paid(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    scheduled = await create_session(
        client, brand.headers, capacity=2, max_seats_per_booking=2, price_points=150
    )
    created = await book(client, member, scheduled["id"], seats=2)
    booking = created.json()
    assert (booking["status"], booking["points"], booking["paid_points"]) == (
        "awaiting_payment",
        300,
        0,
    )
    assert booking["payment_due_at"] is not None
    assert await seats_taken(session, scheduled["id"]) == 2  # held while rewards answers
    assert await events_of(session, "experience.payment_requested", "experience.booked") == [
        (
            "experience.payment_requested",
            {
                "booking_id": booking["id"],
                "member_id": str(member.id),
                "session_id": scheduled["id"],
                "experience_id": scheduled["experience_id"],
                "points": 300,
                "title": "Summer glow masterclass",
            },
        )
    ]
    waiting = await book(client, other_member, scheduled["id"])
    assert waiting.json()["status"] == "waitlisted"

    # Points taken for something else (a perk) change nothing here.
    perk = points_redeemed(brand.id, member.id, booking["id"], 300)
    unrelated = perk.model_copy(
        update={"data": perk.data.model_copy(update={"source_type": "redemption"})}
    )
    await apply_payment_answer(session, unrelated)
    assert (await events_of(session, "experience.booked")) == []

    await apply_payment_answer(session, points_redeemed(brand.id, member.id, booking["id"], 300))
    read = (await client.get(f"{API}/bookings/{booking['id']}", headers=member.headers)).json()
    assert (read["status"], read["paid_points"], read["payment_due_at"]) == ("confirmed", 300, None)
    booked = await events_of(session, "experience.booked")
    assert booked == [
        (
            "experience.booked",
            {
                "booking_id": booking["id"],
                "member_id": str(member.id),
                "session_id": scheduled["id"],
                "experience_id": scheduled["experience_id"],
                "seats": 2,
                "points": 300,
                "promoted_from_waitlist": False,
                "starts_at": scheduled["starts_at"],
            },
        )
    ]
    # A second answer for the same booking (a different event) has no effect.
    await apply_payment_answer(session, points_redeemed(brand.id, member.id, booking["id"], 300))
    assert len(await events_of(session, "experience.booked")) == 1


async def test_a_declined_payment_frees_the_seats_for_the_waitlist_and_a_late_payment_is_refunded(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    scheduled = await create_session(client, brand.headers, capacity=1, price_points=100)
    unpaid = (await book(client, member, scheduled["id"])).json()
    waiting = (await book(client, other_member, scheduled["id"])).json()
    before = len(await community_events(session))

    await apply_payment_answer(session, payment_declined(brand.id, member.id, unpaid["id"], 100))
    declined = (await client.get(f"{API}/bookings/{unpaid['id']}", headers=member.headers)).json()
    assert (declined["status"], declined["refund_points"]) == ("payment_declined", 0)
    promoted = (await client.get(f"{API}/bookings/{waiting['id']}", headers=brand.headers)).json()
    assert (promoted["status"], promoted["promoted_from_waitlist"]) == ("awaiting_payment", True)
    assert await seats_taken(session, scheduled["id"]) == 1
    assert [(t, d["booking_id"]) for t, d in (await community_events(session))[before:]] == [
        ("experience.cancelled", unpaid["id"]),
        ("experience.payment_requested", waiting["id"]),
    ]
    cancelled = (await community_events(session))[before][1]
    assert (cancelled["reason"], cancelled["previous_status"], cancelled["refund_points"]) == (
        "payment_declined",
        "awaiting_payment",
        0,
    )

    # Rewards took the points after all (answers crossed): every point goes back.
    await apply_payment_answer(session, points_redeemed(brand.id, member.id, unpaid["id"], 100))
    late = (await client.get(f"{API}/bookings/{unpaid['id']}", headers=member.headers)).json()
    assert (late["status"], late["paid_points"], late["refund_points"]) == (
        "payment_declined",
        100,
        100,
    )
    refunds = await events_of(session, "experience.cancelled")
    assert [(d["reason"], d["refund_points"]) for _, d in refunds] == [
        ("payment_declined", 0),
        ("late_payment", 100),
    ]

    # The promoted member pays: confirmed, told they came from the waitlist.
    await apply_payment_answer(
        session, points_redeemed(brand.id, other_member.id, waiting["id"], 100)
    )
    booked = await events_of(session, "experience.booked")
    assert [(d["booking_id"], d["promoted_from_waitlist"], d["points"]) for _, d in booked] == [
        (waiting["id"], True, 100)
    ]


async def test_the_payment_consumer_matches_answers_by_type_and_fields(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    """Any event of the two types naming an experience booking works, whatever its class."""
    scheduled = await create_session(client, brand.headers, price_points=10)
    unpaid = (await book(client, member, scheduled["id"])).json()
    generic = Event.model_construct(
        type="points.payment_declined",
        version=1,
        id=new_id(),
        brand_id=brand.id,
        subject_id=member.id,
        occurred_at=utcnow(),
        # Any payload with these fields: the consumer reads fields, not a class.
        data=SimpleNamespace(  # type: ignore[arg-type]
            source_type="experience_booking", source_id=unpaid["id"], points=10
        ),
    )
    await apply_payment_answer(session, generic)
    read = (await client.get(f"{API}/bookings/{unpaid['id']}", headers=member.headers)).json()
    assert read["status"] == "payment_declined"
    # An unknown booking id, or another brand's, is ignored.
    await apply_payment_answer(session, points_redeemed(brand.id, member.id, str(uuid.uuid4()), 10))
    await apply_payment_answer(session, points_redeemed(uuid.uuid4(), member.id, unpaid["id"], 10))
    assert (await client.get(f"{API}/bookings/{unpaid['id']}", headers=member.headers)).json()[
        "paid_points"
    ] == 0


async def test_unanswered_payments_expire_and_give_their_seats_back(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    scheduled = await create_session(client, brand.headers, capacity=1, price_points=50)
    unpaid = (await book(client, member, scheduled["id"])).json()
    waiting = (await book(client, other_member, scheduled["id"])).json()

    assert await bookings.expire_overdue_payments(session, now=utcnow() + timedelta(minutes=5)) == 0
    later = utcnow() + bookings.PAYMENT_WINDOW + timedelta(minutes=1)
    assert await bookings.expire_overdue_payments(session, now=later) == 1
    expired = await session.get(Booking, uuid.UUID(unpaid["id"]), populate_existing=True)
    assert expired is not None
    assert expired.status == BookingStatus.PAYMENT_EXPIRED
    promoted = await session.get(Booking, uuid.UUID(waiting["id"]), populate_existing=True)
    assert promoted is not None
    assert promoted.status == BookingStatus.AWAITING_PAYMENT
    assert await seats_taken(session, scheduled["id"]) == 1
    cancelled = await events_of(session, "experience.cancelled")
    assert [(d["booking_id"], d["reason"]) for _, d in cancelled] == [
        (unpaid["id"], "payment_expired")
    ]


# --- Cancelling -------------------------------------------------------------------------------


async def test_cancelling_before_the_cut_off_refunds_the_points_and_after_it_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
    make_member: MakeMember,
) -> None:
    early = await create_session(
        client, brand.headers, price_points=100, cancellation_cutoff_hours=24
    )
    late = await create_session(
        client, brand.headers, price_points=100, cancellation_cutoff_hours=24
    )
    paid = {}
    for scheduled in (early, late):
        booking = (await book(client, member, scheduled["id"])).json()
        await apply_payment_answer(
            session, points_redeemed(brand.id, member.id, booking["id"], 100)
        )
        paid[scheduled["id"]] = booking
    await move_session(session, late["id"], utcnow() + timedelta(hours=2))  # inside the cut-off

    refunded = await client.post(
        f"{API}/bookings/{paid[early['id']]['id']}/cancel", headers=member.headers
    )
    assert (refunded.json()["status"], refunded.json()["refund_points"]) == ("cancelled", 100)
    kept = await client.post(
        f"{API}/bookings/{paid[late['id']]['id']}/cancel", headers=member.headers
    )
    assert (kept.json()["status"], kept.json()["refund_points"]) == ("cancelled", 0)
    assert await seats_taken(session, late["id"]) == 0  # still freed for others
    cancelled = await events_of(session, "experience.cancelled")
    assert [(d["booking_id"], d["refund_points"]) for _, d in cancelled] == [
        (paid[early["id"]]["id"], 100),
        (paid[late["id"]]["id"], 0),
    ]

    # An unpaid booking refunds nothing; once the session started, no cancelling at all.
    unpaid = (await book(client, other_member, early["id"])).json()
    dropped = await client.post(
        f"{API}/bookings/{unpaid['id']}/cancel", headers=other_member.headers
    )
    assert (dropped.json()["status"], dropped.json()["refund_points"]) == ("cancelled", 0)
    cleo = await make_member("cleo")
    started_booking = (await book(client, cleo, late["id"])).json()
    await move_session(session, late["id"], utcnow() - timedelta(minutes=5))
    started = await client.post(
        f"{API}/bookings/{started_booking['id']}/cancel", headers=cleo.headers
    )
    assert error(started) == (409, "SessionStarted")


async def test_a_session_cancelled_by_its_host_cancels_every_booking_with_full_refunds(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
    make_member: MakeMember,
) -> None:
    host = await make_member("host", trust_level=3)
    experience = (
        await client.post(
            f"{API}/experiences",
            json={"title": "Perfume walk", "kind": "meetup"},
            headers=host.headers,
        )
    ).json()
    scheduled = await create_session(
        client, host.headers, experience["id"], capacity=2, price_points=100
    )
    paid = (await book(client, member, scheduled["id"])).json()
    await apply_payment_answer(session, points_redeemed(brand.id, member.id, paid["id"], 100))
    unpaid = (await book(client, other_member, scheduled["id"])).json()
    waiter = await make_member("waiter")
    waiting = (await book(client, waiter, scheduled["id"])).json()
    assert waiting["status"] == "waitlisted"

    refused = await client.post(
        f"{API}/sessions/{scheduled['id']}/cancel", json={}, headers=member.headers
    )
    assert error(refused) == (403, "NotTheHost")
    before = len(await community_events(session))
    cancelled = await client.post(
        f"{API}/sessions/{scheduled['id']}/cancel",
        json={"reason": "The venue flooded"},
        headers=host.headers,
    )
    assert cancelled.status_code == 200, cancelled.text
    assert (cancelled.json()["status"], cancelled.json()["cancel_reason"]) == (
        "cancelled",
        "The venue flooded",
    )
    assert cancelled.json()["seats_taken"] == 0
    emitted = (await community_events(session))[before:]
    assert [
        (t, d.get("booking_id"), d.get("previous_status"), d.get("refund_points"))
        for t, d in emitted
    ] == [
        ("experience.cancelled", paid["id"], "confirmed", 100),
        ("experience.cancelled", unpaid["id"], "awaiting_payment", 0),
        ("experience.cancelled", waiting["id"], "waitlisted", 0),
        ("experience.session_cancelled", None, None, None),
    ]
    assert {d.get("reason") for t, d in emitted if t == "experience.cancelled"} == {
        "session_cancelled"
    }
    assert emitted[-1][1]["bookings_cancelled"] == 3
    for booking, who in ((paid, member), (unpaid, other_member), (waiting, waiter)):
        read = (await client.get(f"{API}/bookings/{booking['id']}", headers=who.headers)).json()
        assert (read["status"], read["cancelled_by"]) == ("cancelled", "host")

    again = await client.post(
        f"{API}/sessions/{scheduled['id']}/cancel", json={}, headers=brand.headers
    )
    assert again.json()["cancel_reason"] == "The venue flooded"
    assert len(await community_events(session)) == before + 4
    rebook = await book(client, member, scheduled["id"])
    assert error(rebook) == (409, "SessionCancelled")
    changed = await client.patch(
        f"{API}/sessions/{scheduled['id']}", json={"capacity": 5}, headers=host.headers
    )
    assert error(changed) == (409, "SessionCancelled")


# --- Early access -----------------------------------------------------------------------------


async def test_early_access_tiers_book_first(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    gold, silver = uuid.uuid4(), uuid.uuid4()
    await set_tier(session, member.id, gold)
    await set_tier(session, other_member.id, silver)
    opens = utcnow() + timedelta(days=1)
    scheduled = await create_session(
        client,
        brand.headers,
        early_access_tier_ids=[str(gold)],
        general_booking_opens_at=opens.isoformat(),
    )
    assert (await book(client, member, scheduled["id"])).json()["status"] == "confirmed"
    refused = await book(client, other_member, scheduled["id"])
    assert error(refused) == (403, "EarlyAccessOnly")
    assert refused.json()["detail"]["general_booking_opens_at"] == opens.isoformat()
    assert await booking_count(session) == 1

    # Once general booking opens, every tier books.
    opened = await client.patch(
        f"{API}/sessions/{scheduled['id']}",
        json={"early_access_tier_ids": [], "general_booking_opens_at": None},
        headers=brand.headers,
    )
    assert opened.status_code == 200, opened.text
    assert (await book(client, other_member, scheduled["id"])).json()["status"] == "confirmed"


async def test_a_suspended_member_cannot_book(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    scheduled = await create_session(client, brand.headers)
    await session.execute(
        update(CommunityMember)
        .where(CommunityMember.member_id == member.id)
        .values(suspended_until=utcnow() + timedelta(days=1))
    )
    assert error(await book(client, member, scheduled["id"])) == (403, "MemberSuspended")
    assert await booking_count(session) == 0


async def test_a_suspended_member_keeps_their_waitlist_place_but_is_not_promoted(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    make_member: MakeMember,
) -> None:
    ada, bea, cy = [await make_member(name) for name in ("ada", "bea", "cy")]
    scheduled = await create_session(client, brand.headers, capacity=1)
    first = (await book(client, ada, scheduled["id"])).json()
    bea_place = (await book(client, bea, scheduled["id"])).json()
    cy_place = (await book(client, cy, scheduled["id"])).json()
    await session.execute(
        update(CommunityMember)
        .where(CommunityMember.member_id == bea.id)
        .values(suspended_until=utcnow() + timedelta(days=7))
    )

    cancelled = await client.post(f"{API}/bookings/{first['id']}/cancel", headers=ada.headers)
    assert cancelled.status_code == 200, cancelled.text
    assert [d["member_id"] for _, d in await events_of(session, "experience.booked")] == [
        str(ada.id),
        str(cy.id),
    ]
    read = await client.get(f"{API}/bookings/{bea_place['id']}", headers=brand.headers)
    assert (read.json()["status"], read.json()["waitlist_position"]) == ("waitlisted", 1)
    read = await client.get(f"{API}/bookings/{cy_place['id']}", headers=brand.headers)
    assert read.json()["status"] == "confirmed"
