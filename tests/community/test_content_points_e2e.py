"""End to end, committed: a post held by the first pass earns pending points; a moderator's
approval makes them available, a removal voids them (or takes them back once approved) —
through the community API, its outbox, the relay, Redis Streams and rewards' consumer."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from services.kernel.auth import MemberTokenCodec
from services.kernel.db import Database
from services.kernel.drain import drain_events
from services.kernel.runtime import Runtime
from services.kernel.settings import Settings
from services.members import service as members_service
from services.registry import SERVICES
from tests.conftest import app_for, bearer, make_runtime, purge_brand


@dataclass
class Brand:
    client: httpx.AsyncClient
    runtime: Runtime
    staff: dict[str, str]
    member_id: str
    member: dict[str, str]

    async def settle(self) -> None:
        await drain_events(self.runtime, SERVICES, "e2e")

    async def call(self, method: str, path: str, headers: dict[str, str], body: Any = None) -> Any:
        response = await self.client.request(method, path, json=body, headers=headers)
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    async def balance(self) -> tuple[int, int]:
        found = await self.call("GET", f"/rewards/v1/members/{self.member_id}/balance", self.staff)
        return found["available"], found["pending"]

    async def held_post(self, body: str) -> str:
        post = await self.call("POST", "/community/v1/posts", self.member, {"body": body})
        assert post["status"] == "held"
        return str(post["id"])

    async def decide(self, post_id: str, action: str) -> None:
        await self.call(
            "POST",
            "/community/v1/moderation/decisions",
            self.staff,
            {"target_kind": "post", "target_id": post_id, "action": action, "reason": "review"},
        )


@pytest.fixture
async def brand(
    base_settings: Settings, engine_database: Database, redis: Redis
) -> AsyncIterator[Brand]:
    settings = base_settings.model_copy(update={"consumer_retry_after_seconds": 0})
    runtime = make_runtime(settings, engine_database, redis)
    app = app_for(SERVICES, settings, runtime)
    async with engine_database.unit_of_work() as session:
        created, key = await members_service.create_brand(session, f"E2E {uuid.uuid4().hex[:6]}")
    staff = bearer(key)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://kinfolk.test") as client:
            put = await client.put(
                "/rewards/v1/program", json={"currency": "EUR", "points_per_unit": 1}, headers=staff
            )
            assert put.status_code == 200, put.text
            rule = {"kind": "activity", "name": "Post", "activity": "post.approved", "points": 20}
            assert (await client.post("/rewards/v1/rules", json=rule, headers=staff)).is_success
            # The first pass holds what names the blocked term: the brand's own rule.
            term = await client.post(
                "/community/v1/moderation/blocklist", json={"term": "miracle"}, headers=staff
            )
            assert term.status_code == 201, term.text
            made = await client.post(
                "/members/v1/members", json={"external_id": "ada"}, headers=staff
            )
            member_id = made.json()["id"]
            token = MemberTokenCodec(settings).issue(
                created.id, uuid.UUID(member_id), timedelta(hours=1)
            )
            found = Brand(client, runtime, staff, member_id, bearer(token))
            await found.settle()  # rewards and the community learn the member
            yield found
    finally:
        await purge_brand(engine_database, created.id)


async def test_points_for_a_held_post_are_pending_until_a_moderator_approves_it(
    brand: Brand,
) -> None:
    post_id = await brand.held_post("This miracle cream changed my skin in a week.")
    await brand.settle()
    assert await brand.balance() == (0, 20)

    await brand.decide(post_id, "approve")
    await brand.settle()
    assert await brand.balance() == (20, 0)

    await brand.decide(post_id, "remove")  # removed after approval: the points go back
    await brand.settle()
    assert await brand.balance() == (0, 0)


async def test_points_for_a_held_post_removed_before_approval_are_voided(brand: Brand) -> None:
    post_id = await brand.held_post("A miracle, buy now, link in bio!")
    await brand.settle()
    assert await brand.balance() == (0, 20)

    await brand.decide(post_id, "remove")
    await brand.settle()
    assert await brand.balance() == (0, 0)
    ledger = await brand.call("GET", f"/rewards/v1/members/{brand.member_id}/ledger", brand.staff)
    assert sorted((e["kind"], e["bucket"], e["points"]) for e in ledger["items"]) == [
        ("earn", "pending", 20),
        ("void", "pending", -20),
    ]
