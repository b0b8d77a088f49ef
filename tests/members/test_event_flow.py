"""Members events, end to end: API → outbox → relay → Redis Stream → consumer groups.

Unlike the rest of the members suite, this test commits (the relay and the consumers open their
own transactions), on the worker's own database, under a brand of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.consumer import ConsumerRunner, ConsumerSpec
from services.kernel.db import Database
from services.kernel.events import Event
from services.kernel.relay import Relay
from services.kernel.settings import Settings
from services.members import service
from services.members.models import OUTBOX
from services.members.module import MEMBERS
from services.registry import SERVICES
from tests.conftest import app_for, make_runtime, purge_brand
from tests.kernel.eventing import Throwaway, throwaway_service


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    return base_settings.model_copy(
        update={
            "relay_batch_size": 3,
            "consumer_batch_size": 4,
            "consumer_retry_after_seconds": 0,
            "consumer_max_deliveries": 3,
        }
    )


@pytest.fixture
async def committed(
    settings: Settings, engine_database: Database, redis: Redis
) -> AsyncIterator[tuple[httpx.AsyncClient, uuid.UUID, dict[str, str]]]:
    """A client whose requests commit, and a brand of this test's own with its admin key."""
    app = app_for(SERVICES, settings, make_runtime(settings, engine_database, redis))
    async with engine_database.unit_of_work() as session:
        brand, key = await service.create_brand(session, f"Flow {uuid.uuid4().hex[:6]}")
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://kinfolk.test") as client:
            yield client, brand.id, {"Authorization": f"Bearer {key}"}
    finally:
        await purge_brand(engine_database, brand.id)


@pytest.fixture
async def sink(engine_database: Database) -> AsyncIterator[Throwaway]:
    """Where the test's consumer groups record what they handled (with an inbox of their own)."""
    async with throwaway_service(engine_database, "flowsink") as sink:
        yield sink


async def _brand_outbox(database: Database, brand_id: uuid.UUID) -> list[tuple[uuid.UUID, str]]:
    async with database.unit_of_work() as session:
        rows = await session.execute(
            select(OUTBOX.table.c.id, OUTBOX.table.c.type)
            .where(OUTBOX.table.c.brand_id == brand_id)
            .order_by(OUTBOX.table.c.id)
        )
        return [(r.id, r.type) for r in rows]


async def _stream_ids(redis: Redis, brand_id: uuid.UUID) -> list[uuid.UUID]:
    entries = await redis.xrange(MEMBERS.stream)
    return [
        uuid.UUID(fields[b"event_id"].decode())
        for _, fields in entries
        if fields[b"brand_id"].decode() == str(brand_id)
    ]


async def test_member_events_survive_a_relay_crash_and_take_effect_once_per_group(
    committed: tuple[httpx.AsyncClient, uuid.UUID, dict[str, str]],
    sink: Throwaway,
    engine_database: Database,
    redis: Redis,
    settings: Settings,
) -> None:
    client, brand_id, staff = committed
    ids = []
    for n in range(5):
        created = await client.post(
            "/members/v1/members",
            json={"external_id": f"flow-{n}", "email": f"flow{n}@example.com"},
            headers=staff,
        )
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    assert (
        await client.patch(
            f"/members/v1/members/{ids[0]}", json={"display_name": "Ada"}, headers=staff
        )
    ).status_code == 200
    assert (
        await client.put(
            f"/members/v1/members/{ids[1]}/consents/email_marketing",
            json={"granted": True, "source": "checkout"},
            headers=staff,
        )
    ).status_code == 200
    assert (
        await client.post(f"/members/v1/members/{ids[2]}/erase", headers=staff)
    ).status_code == 200

    outbox = await _brand_outbox(engine_database, brand_id)
    assert [t for _, t in outbox] == [
        *["member.created"] * 5,
        "member.updated",
        "member.consent_changed",
        "member.erased",
    ]
    event_ids = [i for i, _ in outbox]

    # The relay dies after its second batch reached Redis but before that batch was marked.
    crashing = Relay(engine_database, redis, [MEMBERS], settings)
    batches = 0
    original_mark = crashing._mark_published

    async def mark_then_die(*args: Any) -> None:
        nonlocal batches
        batches += 1
        if batches == 2:
            raise ConnectionResetError("relay killed")
        await original_mark(*args)

    crashing._mark_published = mark_then_die  # type: ignore[method-assign]
    with pytest.raises(ConnectionResetError):
        await crashing.publish_pending()
    assert await _stream_ids(redis, brand_id) == event_ids[:6]

    # A new relay publishes the rest; the unmarked batch goes out again (at least once).
    await Relay(engine_database, redis, [MEMBERS], settings).publish_pending()
    assert await _stream_ids(redis, brand_id) == [*event_ids[:6], *event_ids[3:]]

    # Two consumer groups: a CRM sync that crashes mid-batch once, and an audit of erasures.
    crashed: set[uuid.UUID] = set()

    async def crm_sync(session: AsyncSession, event: Event) -> None:
        await session.execute(sink.effects.insert().values(consumer="crm", event_id=event.id, n=0))
        if event.id == event_ids[2] and event.id not in crashed:
            crashed.add(event.id)
            raise RuntimeError("CRM timed out")

    async def audit(session: AsyncSession, event: Event) -> None:
        await session.execute(
            sink.effects.insert().values(consumer="audit", event_id=event.id, n=0)
        )

    runner = ConsumerRunner(
        engine_database,
        redis,
        [
            ConsumerSpec("flow.crm", ["members"], crm_sync, sink.inbox, frozenset({"member.*"})),
            ConsumerSpec(
                "flow.audit", ["members"], audit, sink.inbox, frozenset({"member.erased"})
            ),
        ],
        settings,
        "flow-consumer",
    )
    for _ in range(10):
        if await runner.process_once() == 0:
            break
    assert await runner.process_once() == 0

    effects = await sink.effects_rows(engine_database)
    crm = [event_id for consumer, event_id, _ in effects if consumer == "crm"]
    assert crashed == {event_ids[2]}
    assert sorted(crm) == sorted(event_ids)  # every event once, despite duplicates and the crash
    assert [event_id for consumer, event_id, _ in effects if consumer == "audit"] == [event_ids[7]]
    for group in ("flow.crm", "flow.audit"):
        assert (await redis.xpending(MEMBERS.stream, group))["pending"] == 0
    assert await redis.xlen(f"{MEMBERS.stream}:dead") == 0
