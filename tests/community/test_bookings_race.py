"""Members racing for the last seats of a session, on committed data through the HTTP API.

Unlike most community tests these commit (each request is its own transaction on the pooled
engine, on its own connection), under a brand of their own that is purged at the end.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import select

from services.community.experiences.models import Booking, BookingStatus, ExperienceSession
from services.community.members.repository import CommunityMemberRepository
from services.kernel.auth import MemberTokenCodec
from services.kernel.clock import utcnow
from services.kernel.db import Database
from services.kernel.settings import Settings
from services.members import service as members_service
from services.registry import SERVICES
from tests.community.experience_helpers import API, create_session
from tests.conftest import app_for, bearer, make_runtime, purge_brand

# The engine's pool is 10 + 10 connections: stay under it so requests queue on rows, not on it.
CONCURRENCY = 16


@dataclass(frozen=True)
class Race:
    client: httpx.AsyncClient
    brand_id: uuid.UUID
    staff: dict[str, str]
    database: Database
    tokens: MemberTokenCodec

    async def members(self, count: int) -> list[tuple[uuid.UUID, dict[str, str]]]:
        """Members known to the community (as the projection writes them), with tokens."""
        made = []
        async with self.database.unit_of_work() as session:
            repository = CommunityMemberRepository(session)
            for n in range(count):
                member_id = uuid.uuid4()
                await repository.upsert_profile(
                    brand_id=self.brand_id,
                    member_id=member_id,
                    display_name=f"Racer {n}",
                    member_status="active",
                    seen_at=utcnow(),
                    joined=True,
                )
                token = self.tokens.issue(self.brand_id, member_id, timedelta(minutes=10))
                made.append((member_id, bearer(token)))
        return made

    async def book_all(
        self, session_id: str, headers: list[dict[str, str]]
    ) -> list[httpx.Response]:
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(member_headers: dict[str, str]) -> httpx.Response:
            async with gate:
                return await self.client.post(
                    f"{API}/sessions/{session_id}/bookings",
                    json={"seats": 1},
                    headers={**member_headers, "Idempotency-Key": uuid.uuid4().hex},
                )

        return await asyncio.gather(*(one(h) for h in headers))


@pytest.fixture
async def race(
    base_settings: Settings, engine_database: Database, redis: Redis
) -> AsyncIterator[Race]:
    app = app_for(SERVICES, base_settings, make_runtime(base_settings, engine_database, redis))
    async with engine_database.unit_of_work() as session:
        brand, key = await members_service.create_brand(session, f"Race {uuid.uuid4().hex[:6]}")
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://kinfolk.test") as client:
            yield Race(
                client, brand.id, bearer(key), engine_database, MemberTokenCodec(base_settings)
            )
    finally:
        await purge_brand(engine_database, brand.id)


async def test_50_members_racing_for_10_seats_get_10_bookings_and_40_places_in_order(
    race: Race,
) -> None:
    scheduled = await create_session(race.client, race.staff, capacity=10)
    members = await race.members(50)

    responses = await race.book_all(scheduled["id"], [headers for _, headers in members])

    assert Counter((r.status_code, r.json()["status"]) for r in responses) == {
        (201, "confirmed"): 10,
        (201, "waitlisted"): 40,
    }
    positions = sorted(
        r.json()["waitlist_position"] for r in responses if r.json()["status"] == "waitlisted"
    )
    assert positions == list(range(1, 41))
    async with race.database.unit_of_work() as session:
        row = await session.get(ExperienceSession, uuid.UUID(scheduled["id"]))
        assert row is not None
        assert (row.seats_taken, row.waitlist_counter) == (10, 40)
        stored = (
            await session.scalars(
                select(Booking).where(Booking.session_id == row.id).order_by(Booking.created_at)
            )
        ).all()
    assert Counter(b.status for b in stored) == {
        BookingStatus.CONFIRMED: 10,
        BookingStatus.WAITLISTED: 40,
    }
    assert len({b.member_id for b in stored}) == 50
    # Each answer's position is the place its request got in line (the waitlist number taken
    # under the session lock), so places are the order in which requests were served.
    by_id = {b.id: b for b in stored}
    for response in responses:
        body = response.json()
        if body["status"] == "waitlisted":
            assert by_id[uuid.UUID(body["id"])].waitlist_number == body["waitlist_position"]

    # The first in line moves up when a confirmed member cancels, on committed data too.
    winner = next(
        (headers, r.json()["id"])
        for (_, headers), r in zip(members, responses, strict=True)
        if r.json()["status"] == "confirmed"
    )
    cancelled = await race.client.post(f"{API}/bookings/{winner[1]}/cancel", headers=winner[0])
    assert cancelled.status_code == 200, cancelled.text
    first_in_line = next(b for b in stored if b.waitlist_number == 1)
    async with race.database.unit_of_work() as session:
        promoted = await session.get(Booking, first_in_line.id)
        assert promoted is not None
        assert (promoted.status, promoted.promoted) == (BookingStatus.CONFIRMED, True)
        still_waiting = await session.scalars(
            select(Booking.waitlist_number)
            .where(Booking.session_id == row.id, Booking.status == BookingStatus.WAITLISTED)
            .order_by(Booking.waitlist_number)
        )
        assert list(still_waiting) == list(range(2, 41))
    second = next(b for b in stored if b.waitlist_number == 2)
    second_headers = next(h for m, h in members if m == second.member_id)
    now_first = await race.client.get(f"{API}/bookings/{second.id}", headers=second_headers)
    assert now_first.json()["waitlist_position"] == 1


async def test_one_member_racing_10_bookings_gets_exactly_one(race: Race) -> None:
    scheduled = await create_session(race.client, race.staff, capacity=5)
    [(member_id, headers)] = await race.members(1)

    responses = await race.book_all(scheduled["id"], [headers] * 10)

    assert Counter((r.status_code, r.json().get("error", "created")) for r in responses) == {
        (201, "created"): 1,
        (409, "AlreadyBooked"): 9,
    }
    async with race.database.unit_of_work() as session:
        row = await session.get(ExperienceSession, uuid.UUID(scheduled["id"]))
        assert row is not None
        assert row.seats_taken == 1
        count = (
            await session.scalars(select(Booking.id).where(Booking.member_id == member_id))
        ).all()
        assert len(count) == 1
