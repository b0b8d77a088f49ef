"""Joins and reports racing, on committed data through the HTTP API: each request is its own
transaction on the pooled engine, under a brand of its own that is purged at the end."""

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
from sqlalchemy import func, select

from services.community.members.repository import CommunityMemberRepository
from services.community.models import OUTBOX, GroupMembership
from services.community.moderation.models import Report
from services.kernel.auth import MemberTokenCodec
from services.kernel.clock import utcnow
from services.kernel.db import Database
from services.kernel.settings import Settings
from services.members import service as members_service
from services.registry import SERVICES
from tests.conftest import app_for, bearer, make_runtime, purge_brand

# The engine's pool is 10 + 10 connections: stay under it so requests queue on rows, not on it.
CONCURRENCY = 10


@dataclass(frozen=True)
class Race:
    client: httpx.AsyncClient
    brand_id: uuid.UUID
    staff: dict[str, str]
    database: Database
    tokens: MemberTokenCodec

    async def members(self, count: int) -> list[tuple[uuid.UUID, dict[str, str]]]:
        """Members known to the community, as its projection writes them."""
        made = []
        async with self.database.unit_of_work() as session:
            repository = CommunityMemberRepository(session)
            for _ in range(count):
                member_id = uuid.uuid4()
                await repository.upsert_profile(
                    brand_id=self.brand_id,
                    member_id=member_id,
                    display_name=None,
                    member_status="active",
                    seen_at=utcnow(),
                    joined=True,
                )
                token = self.tokens.issue(self.brand_id, member_id, timedelta(minutes=10))
                made.append((member_id, bearer(token)))
        return made

    async def all_at_once(
        self, requests: list[tuple[str, dict[str, str], dict[str, str] | None]]
    ) -> list[httpx.Response]:
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(
            path: str, headers: dict[str, str], body: dict[str, str] | None
        ) -> httpx.Response:
            async with gate:
                return await self.client.post(path, json=body, headers=headers)

        return await asyncio.gather(*(one(*request) for request in requests))

    async def event_count(self, event_type: str) -> int:
        table = OUTBOX.table
        async with self.database.unit_of_work() as session:
            found = await session.scalar(
                select(func.count()).where(
                    table.c.brand_id == self.brand_id, table.c.type == event_type
                )
            )
        return int(found or 0)


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


async def test_members_racing_to_join_are_each_counted_once(race: Race) -> None:
    created = await race.client.post(
        "/community/v1/groups", json={"name": "Curly hair"}, headers=race.staff
    )
    group_id = created.json()["id"]
    members = await race.members(8)
    path = f"/community/v1/groups/{group_id}/members"
    # Every member joins three times at once.
    responses = await race.all_at_once([(path, headers, None) for _, headers in members * 3])

    assert Counter(r.status_code for r in responses) == {201: 8, 200: 16}
    group = await race.client.get(f"/community/v1/groups/{group_id}", headers=race.staff)
    assert group.json()["member_count"] == 8
    assert await race.event_count("group.joined") == 8
    async with race.database.unit_of_work() as session:
        rows = await session.scalar(
            select(func.count()).where(GroupMembership.group_id == uuid.UUID(group_id))
        )
    assert rows == 8


async def test_a_member_reporting_the_same_post_at_once_files_one_report(race: Race) -> None:
    (_, author), (_, reporter) = await race.members(2)
    post = await race.client.post("/community/v1/posts", json={"body": "Hello"}, headers=author)
    assert post.status_code == 201, post.text
    body = {"target_kind": "post", "target_id": post.json()["id"], "reason": "spam"}

    responses = await race.all_at_once([("/community/v1/reports", reporter, body)] * 10)

    assert Counter(r.status_code for r in responses) == {201: 1, 200: 9}
    assert len({r.json()["id"] for r in responses}) == 1
    assert await race.event_count("moderation.reported") == 1
    async with race.database.unit_of_work() as session:
        reports = await session.scalar(select(func.count()).where(Report.brand_id == race.brand_id))
    assert reports == 1
