"""Requests that ask another service hosted by the same process, many at once, on a pool smaller
than their number. The service asked needs a connection of the same pool: a request that held
its own through the call would starve the very call it waits on (every request then waits out
the pool's timeout and answers 503). Each gives its connection back first
(`kernel.db.release_connection`), so every request is served: first requests for members a
service has not heard of yet (rewards and the community ask the members service), members'
exports of their data (the members service asks every other service), and segment previews
with affinity conditions (marketing asks the recommender).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import select

from services.community.models import Post
from services.kernel.auth import MemberTokenCodec
from services.kernel.db import Database
from services.kernel.settings import Settings
from services.registry import SERVICES
from services.rewards.ledger import service as ledger
from services.rewards.models import LedgerEntry
from tests.conftest import (
    BrandFixture,
    MemberFixture,
    app_for,
    make_brand,
    make_runtime,
    purge_brand,
)
from tests.rewards.conftest import DEFAULT_PROGRAM
from tests.rewards.purchase_helpers import purchase

NEWCOMERS = 8


@pytest.fixture
async def brand(small_pool: Database) -> AsyncIterator[BrandFixture]:
    async with small_pool.unit_of_work() as session:
        brand = await make_brand(session, "Newcomers")
    yield brand
    await purge_brand(small_pool, brand.id)


@pytest.fixture
async def client(
    small_pool: Database, redis: Redis, base_settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    app = app_for(SERVICES, base_settings, make_runtime(base_settings, small_pool, redis))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://kinfolk") as client:
        yield client


async def _newcomers(
    client: httpx.AsyncClient, brand: BrandFixture, base_settings: Settings
) -> list[MemberFixture]:
    """Members created through the members API whose events no other service has seen."""
    tokens = MemberTokenCodec(base_settings)
    made = []
    for n in range(NEWCOMERS):
        body = {"external_id": f"new-{n}", "display_name": f"New {n}"}
        created = await client.post("/members/v1/members", json=body, headers=brand.headers)
        assert created.status_code == 201, created.text
        member_id = uuid.UUID(created.json()["id"])
        token = tokens.issue(brand.id, member_id, timedelta(hours=1))
        made.append(MemberFixture(member_id, brand.id, f"new-{n}", token))
    return made


def _all_served(answers: list[httpx.Response], status: int) -> None:
    assert [a.status_code for a in answers] == [status] * NEWCOMERS, [
        a.text[:200] for a in answers if a.status_code != status
    ]


@pytest.mark.timeout(60)
async def test_first_purchases_of_many_newcomers_at_once_are_all_recorded(
    client: httpx.AsyncClient, small_pool: Database, brand: BrandFixture, base_settings: Settings
) -> None:
    async with small_pool.unit_of_work() as session:
        await ledger.configure_program(session, brand.id, DEFAULT_PROGRAM)
    members = await _newcomers(client, brand, base_settings)

    answers = await asyncio.gather(
        *(
            client.post(
                "/rewards/v1/purchases",
                json=purchase(member, f"O-{n}", 1_000),
                headers=brand.headers,
            )
            for n, member in enumerate(members)
        )
    )
    _all_served(answers, 201)
    async with small_pool.unit_of_work() as session:
        earned = (
            await session.execute(
                select(LedgerEntry.member_id, LedgerEntry.points).where(
                    LedgerEntry.brand_id == brand.id
                )
            )
        ).all()
    assert sorted(earned) == sorted((m.id, 10) for m in members)


@pytest.mark.timeout(60)
async def test_first_posts_of_many_newcomers_at_once_are_all_published(
    client: httpx.AsyncClient, small_pool: Database, brand: BrandFixture, base_settings: Settings
) -> None:
    members = await _newcomers(client, brand, base_settings)

    answers = await asyncio.gather(
        *(
            client.post("/community/v1/posts", json={"body": "Hello"}, headers=member.headers)
            for member in members
        )
    )
    _all_served(answers, 201)
    async with small_pool.unit_of_work() as session:
        authors = await session.scalars(select(Post.author_id).where(Post.brand_id == brand.id))
        assert sorted(authors) == sorted(m.id for m in members)


@pytest.mark.timeout(60)
async def test_many_members_exporting_their_data_at_once_all_get_it(
    client: httpx.AsyncClient, brand: BrandFixture, base_settings: Settings
) -> None:
    members = await _newcomers(client, brand, base_settings)

    answers = await asyncio.gather(
        *(client.get("/members/v1/me/export", headers=member.headers) for member in members)
    )
    _all_served(answers, 200)
    exports = [answer.json() for answer in answers]
    assert [e["member_id"] for e in exports] == [str(m.id) for m in members]
    assert all(set(e["services"]) >= {"rewards", "community"} for e in exports)


@pytest.mark.timeout(60)
async def test_many_segment_previews_that_ask_the_recommender_at_once_are_all_answered(
    client: httpx.AsyncClient, brand: BrandFixture
) -> None:
    # An item the recommender does not know: each preview reaches it and is told so (422); a
    # preview starved of a connection would be answered 503 instead.
    rules = [{"affinity": {"item": f"perk:{uuid.uuid4()}", "top_share": 0.5}} for _ in range(8)]
    answers = await asyncio.gather(
        *(
            client.post(
                "/marketing/v1/segments/preview",
                json={"rule": rule, "purpose": "analytics"},
                headers=brand.headers,
            )
            for rule in rules
        )
    )
    assert [(a.status_code, a.json()["error"]) for a in answers] == [
        (422, "UnknownItem")
    ] * NEWCOMERS
