"""The outbox relay: committed events reach the stream in order; a crash republishes, loses none."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from sqlalchemy import func, select, update

from services.kernel import loops
from services.kernel.consumer import ConsumerRunner, ConsumerSpec
from services.kernel.db import Database, service_metadata
from services.kernel.drain import apply_unpublished, drain_events
from services.kernel.events import Event, parse_event
from services.kernel.module import ServiceModule
from services.kernel.outbox import Outbox
from services.kernel.relay import Relay
from services.kernel.settings import Settings
from tests.conftest import make_runtime
from tests.kernel.eventing import BRAND, Throwaway, decoded, happened, throwaway_service


@pytest.fixture(scope="module")
async def thing(engine_database: Database) -> AsyncIterator[Throwaway]:
    async with throwaway_service(engine_database, "relaytest") as service:
        yield service


@pytest.fixture(autouse=True)
async def _clean(thing: Throwaway, engine_database: Database) -> None:
    await thing.reset(engine_database)


def small_batches(settings: Settings, size: int = 2) -> Settings:
    return settings.model_copy(update={"relay_batch_size": size, "consumer_retry_after_seconds": 0})


async def write(database: Database, thing: Throwaway, events: list[Event]) -> None:
    async with database.unit_of_work() as session:
        for event in events:
            await Outbox(thing.outbox).add(session, event)


async def write_then_fail(database: Database, thing: Throwaway, event: Event) -> None:
    async with database.unit_of_work() as session:
        await Outbox(thing.outbox).add(session, event)
        raise RuntimeError("rolled back")


async def unpublished_ids(database: Database, thing: Throwaway) -> list[uuid.UUID]:
    async with database.unit_of_work() as session:
        found = await session.scalars(
            select(thing.outbox.c.id).where(thing.outbox.c.published_at.is_(None))
        )
        return list(found)


async def stream_event_ids(redis: Redis, stream: str) -> list[uuid.UUID]:
    return [uuid.UUID(fields[b"event_id"].decode()) for _, fields in await redis.xrange(stream)]


async def test_committed_events_reach_the_stream_in_order_with_exact_fields(
    thing: Throwaway, engine_database: Database, redis: Redis, base_settings: Settings
) -> None:
    subject = uuid.uuid4()
    events: list[Event] = [happened(1, subject), happened(2), happened(3, subject)]
    await write(engine_database, thing, events)
    with pytest.raises(RuntimeError, match="rolled back"):
        await write_then_fail(engine_database, thing, happened(99))

    relay = Relay(engine_database, redis, [thing.service], base_settings)
    assert await relay.publish_pending() == 3
    assert await relay.publish_pending() == 0

    entries = await redis.xrange("kinfolk:events:relaytest")
    assert len(entries) == 3
    for (_, raw), event in zip(entries, events, strict=True):
        fields = decoded(raw)
        payload = fields.pop("payload")
        assert fields == {
            "event_id": str(event.id),
            "type": "kerneltest.thing_happened",
            "version": "1",
            "brand_id": str(BRAND),
            "subject_id": "" if event.subject_id is None else str(subject),
        }
        assert parse_event(payload) == event
    assert await unpublished_ids(engine_database, thing) == []


async def test_full_batches_loop_until_the_outbox_is_drained(
    thing: Throwaway, engine_database: Database, redis: Redis, base_settings: Settings
) -> None:
    events: list[Event] = [happened(n) for n in range(5)]
    await write(engine_database, thing, events)
    relay = Relay(engine_database, redis, [thing.service], small_batches(base_settings))
    assert await relay.publish_pending() == 5
    assert await stream_event_ids(redis, thing.stream) == [e.id for e in events]


async def test_concurrent_relays_publish_each_event_once(
    thing: Throwaway, engine_database: Database, redis: Redis, base_settings: Settings
) -> None:
    events: list[Event] = [happened(n) for n in range(20)]
    await write(engine_database, thing, events)
    settings = small_batches(base_settings, 3)
    relays = [Relay(engine_database, redis, [thing.service], settings) for _ in range(3)]
    counts = await asyncio.gather(*(relay.publish_pending() for relay in relays))
    # SKIP LOCKED hands each row to one relay; a relay that finds the rest locked stops early
    # and the next pass picks up whatever is left.
    counts.append(await relays[0].publish_pending())
    assert sum(counts) == 20
    published = await stream_event_ids(redis, thing.stream)
    assert sorted(published) == sorted(e.id for e in events)


async def test_a_crash_between_xadd_and_commit_republishes_and_consumers_apply_once(
    thing: Throwaway, engine_database: Database, redis: Redis, base_settings: Settings
) -> None:
    settings = small_batches(base_settings)
    events: list[Event] = [happened(n) for n in range(5)]
    await write(engine_database, thing, events)

    crashing = Relay(engine_database, redis, [thing.service], settings)
    marks = 0
    original_mark = crashing._mark_published

    async def mark_then_die(*args: Any) -> None:
        nonlocal marks
        marks += 1
        if marks == 2:  # the second batch is in Redis, but its UPDATE never commits
            raise ConnectionResetError("relay killed")
        await original_mark(*args)

    crashing._mark_published = mark_then_die  # type: ignore[method-assign]
    with pytest.raises(ConnectionResetError):
        await crashing.publish_pending()
    ids = [e.id for e in events]
    assert await stream_event_ids(redis, thing.stream) == ids[:4]

    restarted = Relay(engine_database, redis, [thing.service], settings)
    assert await restarted.publish_pending() == 3
    # Events 2 and 3 are in the stream twice: at least once, never lost.
    assert await stream_event_ids(redis, thing.stream) == [*ids[:4], ids[2], ids[3], ids[4]]

    async def record(session: Any, event: Event) -> None:
        await session.execute(
            thing.effects.insert().values(consumer="c", event_id=event.id, n=event.data.n)  # type: ignore[attr-defined]
        )

    spec = ConsumerSpec("relaytest.effects", ["relaytest"], record, thing.inbox)
    runner = ConsumerRunner(engine_database, redis, [spec], settings, "c1")
    assert await runner.process_once() == 7
    assert await runner.process_once() == 0
    assert await thing.effects_rows(engine_database) == [
        ("c", e.id, n) for n, e in enumerate(events)
    ]
    assert (await redis.xpending(thing.stream, "relaytest.effects"))["pending"] == 0


async def test_run_survives_a_failed_pass_and_stops_when_asked(
    thing: Throwaway,
    engine_database: Database,
    redis: Redis,
    base_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(loops, "BACKOFF_INITIAL_SECONDS", 0.01)
    settings = base_settings.model_copy(update={"relay_idle_seconds": 0.01})
    relay = Relay(engine_database, redis, [thing.service], settings)
    original = relay.publish_pending
    calls = 0

    async def flaky() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionRefusedError("redis is restarting")
        return await original()

    relay.publish_pending = flaky  # type: ignore[method-assign]
    event = happened(7)
    await write(engine_database, thing, [event])
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    for _ in range(500):
        if await redis.xlen(thing.stream):
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert calls >= 2
    assert await stream_event_ids(redis, thing.stream) == [event.id]


async def test_services_without_an_outbox_are_skipped(
    engine_database: Database, redis: Redis, base_settings: Settings
) -> None:
    stateless = ServiceModule(
        name="gatewaytest",
        schema="gatewaytest",
        metadata=service_metadata("gatewaytest"),
        router=APIRouter(),
        migrations=Path("."),
    )
    relay = Relay(engine_database, redis, [stateless], base_settings)
    assert relay.outboxes == []
    assert await relay.publish_pending() == 0


def consumed_by(thing: Throwaway, *groups: str) -> tuple[ServiceModule, list[ConsumerSpec]]:
    """The throwaway service with consumer groups `relaytest.<name>`, each recording the events
    it handles as effects of consumer `<name>`."""

    def recorder(name: str) -> Any:
        async def record(session: Any, event: Event) -> None:
            await session.execute(
                thing.effects.insert().values(consumer=name, event_id=event.id, n=event.data.n)  # type: ignore[attr-defined]
            )

        return record

    specs = [
        ConsumerSpec(f"relaytest.{name}", ["relaytest"], recorder(name), thing.inbox)
        for name in groups
    ]
    return dataclasses.replace(thing.service, consumers=specs), specs


async def test_a_full_stream_holds_its_outbox_back_until_the_group_catches_up(
    thing: Throwaway, engine_database: Database, redis: Redis, base_settings: Settings
) -> None:
    settings = small_batches(base_settings).model_copy(update={"stream_max_entries": 3})
    events: list[Event] = [happened(n) for n in range(7)]
    await write(engine_database, thing, events)
    service, specs = consumed_by(thing, "c")
    relay = Relay(engine_database, redis, [service], settings)
    runner = ConsumerRunner(engine_database, redis, specs, settings, "c1")
    ids = [e.id for e in events]

    assert await runner.process_once() == 0  # the group exists before anything is published
    assert await relay.publish_pending() == 3  # a batch of 2, then the 1 the stream has room for
    assert relay.held_back == {"relaytest"}
    # Full, and the group has read nothing: the rest waits in the outbox, none is dropped.
    assert await relay.publish_pending() == 0
    assert await stream_event_ids(redis, thing.stream) == ids[:3]

    assert await runner.process_once() == 3
    assert await relay.trimmer.trim_all() == 3
    assert await relay.publish_pending() == 3
    assert await stream_event_ids(redis, thing.stream) == ids[3:6]
    assert await runner.process_once() == 3
    await relay.trimmer.trim_all()
    assert await relay.publish_pending() == 1
    assert await runner.process_once() == 1
    assert relay.held_back == set()

    assert await thing.effects_rows(engine_database) == [("c", i, n) for n, i in enumerate(ids)]
    assert await unpublished_ids(engine_database, thing) == []


async def test_draining_goes_on_past_a_full_stream(
    thing: Throwaway, engine_database: Database, redis: Redis, base_settings: Settings
) -> None:
    settings = base_settings.model_copy(update={"stream_max_entries": 3})
    events: list[Event] = [happened(n) for n in range(8)]
    await write(engine_database, thing, events)
    service, _ = consumed_by(thing, "c")

    handled = await drain_events(make_runtime(settings, engine_database, redis), [service])

    assert handled == 8
    assert await thing.effects_rows(engine_database) == [
        ("c", e.id, n) for n, e in enumerate(events)
    ]
    assert await redis.xlen(thing.stream) == 0  # every entry acknowledged, then trimmed


async def test_unpublished_events_reach_the_named_groups_straight_and_the_others_by_the_relay(
    thing: Throwaway, engine_database: Database, redis: Redis, base_settings: Settings
) -> None:
    events: list[Event] = [happened(n) for n in range(3)]
    await write(engine_database, thing, events)
    service, _ = consumed_by(thing, "a", "b")

    assert await apply_unpublished(engine_database, [service], {"relaytest.a"}) == 3
    assert await thing.effects_rows(engine_database) == [
        ("a", e.id, n) for n, e in enumerate(events)
    ]
    assert await redis.exists(thing.stream) == 0  # no stream carried them
    # Still the relay's to publish, for every group.
    assert len(await unpublished_ids(engine_database, thing)) == 3

    # The relay brings them to both groups: the second delivery is a duplicate for the first.
    assert await drain_events(make_runtime(base_settings, engine_database, redis), [service]) == 6
    assert await thing.effects_rows(engine_database) == [
        *[("a", e.id, n) for n, e in enumerate(events)],
        *[("b", e.id, n) for n, e in enumerate(events)],
    ]
    assert await apply_unpublished(engine_database, [service], {"relaytest.a"}) == 0


def _per_group(rows: list[tuple[str, uuid.UUID, int]]) -> dict[str, list[int]]:
    """Each group's effects in the order it wrote them (the groups write side by side)."""
    found: dict[str, list[int]] = {}
    for consumer, _, n in rows:
        found.setdefault(consumer, []).append(n)
    return found


async def test_unpublished_events_reach_every_named_group_in_order_batch_after_batch(
    thing: Throwaway, engine_database: Database
) -> None:
    events: list[Event] = [happened(n) for n in range(7)]
    await write(engine_database, thing, events)
    service, _ = consumed_by(thing, "a", "b")

    assert (
        await apply_unpublished(
            engine_database, [service], {"relaytest.a", "relaytest.b"}, batch_size=2
        )
        == 14
    )
    rows = await thing.effects_rows(engine_database)
    assert _per_group(rows) == {"a": list(range(7)), "b": list(range(7))}
    assert len(rows) == 14  # none twice


async def test_events_the_handlers_write_to_the_outbox_being_read_are_applied_too(
    thing: Throwaway, engine_database: Database
) -> None:
    """The next batch is read while one is applied; what the batch's handlers add to the same
    outbox is after it, and is read once they have committed."""

    async def record_and_follow(session: Any, event: Event) -> None:
        n = event.data.n  # type: ignore[attr-defined]
        await session.execute(thing.effects.insert().values(consumer="a", event_id=event.id, n=n))
        if n < 3:
            await Outbox(thing.outbox).add(session, happened(n + 1))

    spec = ConsumerSpec("relaytest.a", ["relaytest"], record_and_follow, thing.inbox)
    service = dataclasses.replace(thing.service, consumers=[spec])
    await write(engine_database, thing, [happened(0)])

    assert await apply_unpublished(engine_database, [service], {"relaytest.a"}, batch_size=2) == 4
    assert _per_group(await thing.effects_rows(engine_database)) == {"a": [0, 1, 2, 3]}


async def test_a_failing_handler_stops_the_load_with_its_own_error_after_the_others_finish(
    thing: Throwaway, engine_database: Database
) -> None:
    def recorder(name: str, fails_at: int | None) -> Any:
        async def record(session: Any, event: Event) -> None:
            n = event.data.n  # type: ignore[attr-defined]
            if n == fails_at:
                raise RuntimeError(f"{name} cannot take {n}")
            await session.execute(
                thing.effects.insert().values(consumer=name, event_id=event.id, n=n)
            )

        return record

    specs = [
        ConsumerSpec("relaytest.a", ["relaytest"], recorder("a", 3), thing.inbox),
        ConsumerSpec("relaytest.b", ["relaytest"], recorder("b", None), thing.inbox),
    ]
    service = dataclasses.replace(thing.service, consumers=specs)
    await write(engine_database, thing, [happened(n) for n in range(6)])

    with pytest.raises(RuntimeError, match="a cannot take 3"):  # itself, not a group of errors
        await apply_unpublished(
            engine_database, [service], {"relaytest.a", "relaytest.b"}, batch_size=2
        )
    # a's second batch rolled back whole; b finished that batch; nobody went further.
    assert _per_group(await thing.effects_rows(engine_database)) == {
        "a": [0, 1],
        "b": [0, 1, 2, 3],
    }
    async with engine_database.unit_of_work() as session:
        inbox = await session.execute(select(thing.inbox.c.consumer, thing.inbox.c.event_id))
        assert (
            sorted(consumer for consumer, _ in inbox) == ["relaytest.a"] * 2 + ["relaytest.b"] * 4
        )


async def test_applying_unpublished_events_to_an_unknown_group_is_refused(
    thing: Throwaway, engine_database: Database
) -> None:
    await write(engine_database, thing, [happened(1)])
    service, _ = consumed_by(thing, "a")
    with pytest.raises(ValueError, match=r"no consumer group named relaytest\.nope"):
        await apply_unpublished(engine_database, [service], {"relaytest.a", "relaytest.nope"})
    assert await thing.effects_rows(engine_database) == []


async def test_the_relay_reports_how_long_the_oldest_unpublished_event_has_waited(
    thing: Throwaway, engine_database: Database, redis: Redis, base_settings: Settings
) -> None:
    def waited() -> float | None:
        return REGISTRY.get_sample_value(
            "kinfolk_relay_oldest_unpublished_seconds", {"service": "relaytest"}
        )

    relay = Relay(engine_database, redis, [thing.service], base_settings)
    await relay.measure_waiting()
    assert waited() == 0.0  # nothing waits
    await write(engine_database, thing, [happened(1), happened(2)])
    async with engine_database.unit_of_work() as session:
        # The first written 90 s ago (a relay down that long), the second just now.
        first = min(await unpublished_ids(engine_database, thing))
        await session.execute(
            update(thing.outbox)
            .where(thing.outbox.c.id == first)
            .values(created_at=func.now() - timedelta(seconds=90))
        )
    await relay.measure_waiting()
    assert 90.0 <= (waited() or 0.0) < 120.0
    assert await relay.publish_pending() == 2
    await relay.measure_waiting()
    assert waited() == 0.0
