"""Votes racing on one idea, on committed data through the HTTP API: each request is its own
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

from services.community.ideas.models import Idea, IdeaVote
from services.community.members.repository import CommunityMemberRepository
from services.community.models import OUTBOX
from services.kernel.auth import MemberTokenCodec
from services.kernel.clock import utcnow
from services.kernel.db import Database
from services.kernel.settings import Settings
from services.members import service as members_service
from services.registry import SERVICES
from tests.conftest import app_for, bearer, make_runtime, purge_brand

# The engine's pool is 10 + 10 connections: stay under it so requests queue on rows, not on it.
CONCURRENCY = 16


@dataclass(frozen=True)
class Board:
    client: httpx.AsyncClient
    brand_id: uuid.UUID
    database: Database
    tokens: MemberTokenCodec

    async def members(self, count: int) -> list[dict[str, str]]:
        """Members known to the community (as its projection writes them), as token headers."""
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
                made.append(bearer(self.tokens.issue(self.brand_id, member_id, timedelta(hours=1))))
        return made


@pytest.fixture
async def board(
    base_settings: Settings, engine_database: Database, redis: Redis
) -> AsyncIterator[Board]:
    app = app_for(SERVICES, base_settings, make_runtime(base_settings, engine_database, redis))
    async with engine_database.unit_of_work() as session:
        brand, _ = await members_service.create_brand(session, f"Ideas {uuid.uuid4().hex[:6]}")
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://kinfolk.test") as client:
            yield Board(client, brand.id, engine_database, MemberTokenCodec(base_settings))
    finally:
        await purge_brand(engine_database, brand.id)


async def test_racing_votes_count_each_member_once_and_the_total_exactly(board: Board) -> None:
    author, eager, *others = await board.members(12)
    created = await board.client.post(
        "/community/v1/ideas",
        json={"title": "Refills", "body": "Please.", "category": "product"},
        headers=author,
    )
    assert created.status_code == 201, created.text
    idea_id = uuid.UUID(created.json()["id"])
    gate = asyncio.Semaphore(CONCURRENCY)

    async def vote(headers: dict[str, str]) -> httpx.Response:
        async with gate:
            return await board.client.post(f"/community/v1/ideas/{idea_id}/vote", headers=headers)

    attempts = [eager] * 6 + others
    responses = await asyncio.gather(*(vote(h) for h in attempts))

    outcomes = Counter(
        (r.status_code, "voted" if r.status_code == 200 else r.json()["error"]) for r in responses
    )
    assert outcomes == {(200, "voted"): 11, (409, "AlreadyVoted"): 5}
    async with board.database.unit_of_work() as session:
        idea = await session.get(Idea, idea_id)
        assert idea is not None
        assert idea.vote_count == 12
        votes = await session.scalar(
            select(func.count()).select_from(IdeaVote).where(IdeaVote.idea_id == idea_id)
        )
        assert votes == 12
        table = OUTBOX.table
        voted_events = await session.scalar(
            select(func.count())
            .select_from(table)
            .where(table.c.brand_id == board.brand_id, table.c.type == "idea.voted")
        )
        assert voted_events == 11
