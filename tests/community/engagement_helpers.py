"""Helpers for the tests of prompts, challenges and reputation: consumers fed from the outbox as
the kernel's consumer runner feeds them, and the few writes those tests make through the API."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import orjson
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.members.repository import CommunityMemberRepository
from services.community.models import INBOX, OUTBOX, Post
from services.kernel.auth import MemberTokenCodec
from services.kernel.clock import utcnow
from services.kernel.consumer import ConsumerSpec
from services.kernel.db import Database
from services.kernel.events import Event, parse_event
from services.kernel.ids import new_id
from services.kernel.settings import Settings
from services.members import service as members_service
from services.registry import SERVICES
from tests.conftest import BrandFixture, MemberFixture, app_for, bearer, make_runtime, purge_brand


async def outbox_events(session: AsyncSession) -> list[Event]:
    """Every event in the community outbox so far, oldest first, as typed events."""
    table = OUTBOX.table
    rows = await session.execute(select(table.c.payload).order_by(table.c.id))
    return [parse_event(orjson.dumps(payload)) for (payload,) in rows]


async def _first_time(session: AsyncSession, spec: ConsumerSpec, event: Event) -> bool:
    """Records the event in the group's inbox; False when it was there already."""
    inserted = await session.execute(
        insert(INBOX)
        .values(consumer=spec.name, event_id=event.id)
        .on_conflict_do_nothing()
        .returning(INBOX.c.event_id)
    )
    return inserted.first() is not None


async def deliver(session: AsyncSession, spec: ConsumerSpec, event: Event) -> bool:
    """What the consumer runner does with one event: record it in the inbox and run the handler
    in the same transaction, unless the inbox has it already. True when the handler ran."""
    async with session.begin_nested():
        if not await _first_time(session, spec, event):
            return False
        await spec.handler(session, event)
    return True


async def replay(session: AsyncSession, *specs: ConsumerSpec, batched: bool = False) -> int:
    """Feeds every outbox event each consumer wants to it, in order, as the relay and runner
    would (again and again: the inbox skips what was handled). Repeats until the handlers add no
    new events (a completion's badge, say). Returns how many deliveries ran a handler.

    `batched`: each round's new events go to the consumer's `handle_batch` at once, as the runner
    hands it a stream read, instead of one by one."""
    ran = 0
    while True:
        before = ran
        events = await outbox_events(session)
        for spec in specs:
            wanted = [event for event in events if spec.wants(event.type)]
            if batched:
                ran += await deliver_batch(session, spec, wanted)
                continue
            for event in wanted:
                if await deliver(session, spec, event):
                    ran += 1
        if ran == before:
            return ran


async def deliver_batch(session: AsyncSession, spec: ConsumerSpec, events: list[Event]) -> int:
    """What the consumer runner does with one read: the new events go to `handle_batch` in one
    transaction. Returns how many were new."""
    async with session.begin_nested():
        new = [event for event in events if await _first_time(session, spec, event)]
        if new:
            await spec.handle_batch(session, new)
    return len(new)


def error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]


async def post(
    client: httpx.AsyncClient, author: MemberFixture, body: str = "My summer look", **fields: Any
) -> dict[str, Any]:
    response = await client.post(
        "/community/v1/posts", json={"body": body, **fields}, headers=author.headers
    )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def react(
    client: httpx.AsyncClient, member: MemberFixture, post_id: str, kind: str = "love"
) -> None:
    response = await client.post(
        f"/community/v1/posts/{post_id}/reactions", json={"kind": kind}, headers=member.headers
    )
    assert response.status_code in (200, 201), response.text


async def comment(
    client: httpx.AsyncClient, member: MemberFixture, post_id: str, body: str = "Gorgeous!"
) -> dict[str, Any]:
    response = await client.post(
        f"/community/v1/posts/{post_id}/comments", json={"body": body}, headers=member.headers
    )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def delete_post(client: httpx.AsyncClient, author: MemberFixture, post_id: str) -> None:
    response = await client.delete(f"/community/v1/posts/{post_id}", headers=author.headers)
    assert response.status_code == 204, response.text


async def create_badge(
    client: httpx.AsyncClient, brand: BrandFixture, **fields: Any
) -> dict[str, Any]:
    body = {"name": "Trendsetter", "description": "Started something", **fields}
    response = await client.post("/community/v1/badges", json=body, headers=brand.headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def post_count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Post)) or 0)


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def uuid_of(value: str) -> uuid.UUID:
    return uuid.UUID(value)


# --- Committed data, for races ------------------------------------------------------------------


@dataclass(frozen=True)
class Committed:
    """A brand of its own on the pooled engine: every request and delivery commits."""

    client: httpx.AsyncClient
    brand_id: uuid.UUID
    staff: dict[str, str]
    database: Database
    tokens: MemberTokenCodec

    async def member(self, name: str) -> MemberFixture:
        """A member known to the community (as its members projection writes them)."""
        member_id = new_id()
        async with self.database.unit_of_work() as session:
            await CommunityMemberRepository(session).upsert_profile(
                brand_id=self.brand_id,
                member_id=member_id,
                display_name=name,
                member_status="active",
                seen_at=utcnow(),
                joined=True,
            )
        token = self.tokens.issue(self.brand_id, member_id, timedelta(minutes=10))
        return MemberFixture(member_id, self.brand_id, name, token)

    async def deliver_all(self, spec: ConsumerSpec, events: list[Event]) -> None:
        """Each event in its own transaction, all at once, as parallel consumers would."""

        async def one(event: Event) -> None:
            async with self.database.unit_of_work() as session:
                await deliver(session, spec, event)

        await asyncio.gather(*(one(event) for event in events))


@asynccontextmanager
async def committed_brand(
    settings: Settings, database: Database, redis: Redis
) -> AsyncIterator[Committed]:
    app = app_for(SERVICES, settings, make_runtime(settings, database, redis))
    async with database.unit_of_work() as session:
        brand, key = await members_service.create_brand(session, f"Race {uuid.uuid4().hex[:6]}")
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://kinfolk.test") as client:
            yield Committed(client, brand.id, bearer(key), database, MemberTokenCodec(settings))
    finally:
        await purge_brand(database, brand.id)
