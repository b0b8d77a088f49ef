"""Reviews: a post kind tied to a sku with a 1-5 rating, one live review per member and sku."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.members.repository import CommunityMemberRepository
from services.community.members.service import known_member
from services.community.models import OUTBOX, Post, PostKind
from services.community.posts import service
from services.community.posts.errors import ReviewExists
from services.community.posts.schemas import PostCreate
from services.kernel.auth import MemberTokenCodec
from services.kernel.clock import utcnow
from services.kernel.db import Database
from services.kernel.settings import Settings
from services.members import service as members_service
from services.registry import SERVICES
from tests.community.conftest import community_events
from tests.community.posts_helpers import POSTS, error, post_count, write_post
from tests.conftest import MemberFixture, app_for, bearer, make_runtime, purge_brand


def review(sku: str = "SKU-LIP-1", rating: int = 5, body: str = "Love it") -> dict[str, object]:
    return {"kind": "review", "review_sku": sku, "rating": rating, "body": body}


async def test_a_review_carries_its_sku_and_rating_in_the_post_and_its_events(
    client: httpx.AsyncClient, session: AsyncSession, member: MemberFixture
) -> None:
    post = await write_post(client, member, **review(rating=4))
    assert (post["kind"], post["review_sku"], post["rating"], post["incentivised"]) == (
        "review",
        "SKU-LIP-1",
        4,
        False,
    )
    events = await community_events(session)
    assert [(t, d["kind"], d["review_sku"], d["rating"]) for t, d in events] == [
        ("post.created", "review", "SKU-LIP-1", 4),
        ("post.approved", "review", "SKU-LIP-1", 4),
    ]


async def test_a_second_review_of_the_same_sku_is_409_and_writes_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    first = await write_post(client, member, **review())
    before = await community_events(session)
    again = await client.post(POSTS, json=review(body="Still love it"), headers=member.headers)
    assert error(again) == (409, "ReviewExists")
    assert "SKU-LIP-1" in again.json()["detail"]
    assert await post_count(session) == 1
    assert await community_events(session) == before

    # Other skus, and other members on the same sku, are fine.
    await write_post(client, member, **review(sku="SKU-LIP-2"))
    await write_post(client, other_member, **review())
    # Deleting the review frees the sku for a new one.
    assert (
        await client.delete(f"{POSTS}/{first['id']}", headers=member.headers)
    ).status_code == 204
    redo = await write_post(client, member, **review(rating=3, body="Changed my mind"))
    assert redo["rating"] == 3


async def test_the_service_marks_incentivised_reviews_and_prompt_answers(
    session: AsyncSession, member: MemberFixture
) -> None:
    author = await known_member(session, member.brand_id, member.id)
    payload = PostCreate.model_validate(review())
    post = await service.create_post(session, author, payload, incentivised=True)
    assert (post.kind, post.incentivised) == (PostKind.REVIEW, True)
    events = await community_events(session)
    assert [d["incentivised"] for _, d in events] == [True, True]
    with pytest.raises(ReviewExists):
        await service.create_post(session, author, payload)


@pytest.fixture
async def committed(
    base_settings: Settings, engine_database: Database, redis: Redis
) -> AsyncIterator[tuple[httpx.AsyncClient, uuid.UUID, dict[str, str]]]:
    """An app on the pooled engine (each request commits) and a member of a brand of its own,
    purged at the end: for races, which need separate connections."""
    app = app_for(SERVICES, base_settings, make_runtime(base_settings, engine_database, redis))
    async with engine_database.unit_of_work() as session:
        brand, _ = await members_service.create_brand(session, f"Reviews {uuid.uuid4().hex[:6]}")
        member_id = uuid.uuid4()
        await CommunityMemberRepository(session).upsert_profile(
            brand_id=brand.id,
            member_id=member_id,
            display_name="Racer",
            member_status="active",
            seen_at=utcnow(),
            joined=True,
        )
    token = MemberTokenCodec(base_settings).issue(brand.id, member_id, timedelta(minutes=10))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://kinfolk.test") as client:
            yield client, brand.id, bearer(token)
    finally:
        await purge_brand(engine_database, brand.id)


async def test_racing_reviews_of_one_sku_land_exactly_once(
    committed: tuple[httpx.AsyncClient, uuid.UUID, dict[str, str]], engine_database: Database
) -> None:
    client, brand_id, headers = committed
    responses = await asyncio.gather(
        *(client.post(POSTS, json=review(body=f"take {n}"), headers=headers) for n in range(8))
    )
    codes = sorted((r.status_code, r.json().get("error", "created")) for r in responses)
    assert codes == [(201, "created")] + [(409, "ReviewExists")] * 7
    async with engine_database.unit_of_work() as session:
        posts = await session.scalar(
            select(func.count()).select_from(Post).where(Post.brand_id == brand_id)
        )
        events = await session.scalar(
            select(func.count())
            .select_from(OUTBOX.table)
            .where(OUTBOX.table.c.brand_id == brand_id, OUTBOX.table.c.type == "post.created")
        )
    assert (posts, events) == (1, 1)
