"""Staff featuring one post twice at once, on committed data through the HTTP API: each request
is its own transaction on the pooled engine, under a brand of its own purged at the end."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select

from services.community.members.repository import CommunityMemberRepository
from services.community.models import ContentStatus, Post, PostKind
from services.community.testimonials.models import FeaturedPost
from services.kernel.clock import utcnow
from services.kernel.db import Database
from services.kernel.ids import new_id
from services.kernel.settings import Settings
from services.members import service as members_service
from services.registry import SERVICES
from tests.conftest import app_for, bearer, make_runtime, purge_brand


@pytest.fixture
async def staff_and_post(
    base_settings: Settings, engine_database: Database, redis: Redis
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str], uuid.UUID]]:
    app = app_for(SERVICES, base_settings, make_runtime(base_settings, engine_database, redis))
    async with engine_database.unit_of_work() as session:
        brand, key = await members_service.create_brand(session, f"Feat {uuid.uuid4().hex[:6]}")
        author_id = uuid.uuid4()
        await CommunityMemberRepository(session).upsert_profile(
            brand_id=brand.id,
            member_id=author_id,
            display_name="Ada",
            member_status="active",
            seen_at=utcnow(),
            joined=True,
        )
        post = Post(
            id=new_id(),
            brand_id=brand.id,
            author_id=author_id,
            kind=PostKind.POST,
            body="Love it",
            status=ContentStatus.PUBLISHED,
            body_hash="h",
        )
        session.add(post)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://kinfolk.test") as client:
            yield client, bearer(key), post.id
    finally:
        await purge_brand(engine_database, brand.id)


async def test_featuring_one_post_at_once_makes_one_request(
    staff_and_post: tuple[httpx.AsyncClient, dict[str, str], uuid.UUID],
    engine_database: Database,
) -> None:
    client, staff, post_id = staff_and_post

    responses = await asyncio.gather(
        *(
            client.post("/community/v1/testimonials", json={"post_id": str(post_id)}, headers=staff)
            for _ in range(6)
        )
    )

    outcomes = Counter(
        (r.status_code, "requested" if r.status_code == 201 else r.json()["error"])
        for r in responses
    )
    assert outcomes == {(201, "requested"): 1, (409, "AlreadyFeatured"): 5}
    async with engine_database.unit_of_work() as session:
        count = await session.scalar(
            select(func.count()).select_from(FeaturedPost).where(FeaturedPost.post_id == post_id)
        )
        assert count == 1
