"""Consumers: each event takes effect once per group, failures retry, poison is parked."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel import consumer as consumer_module
from services.kernel.consumer import (
    ConsumerRunner,
    ConsumerSpec,
    ParsedEvents,
    dead_letter_stream,
    stream_for,
    type_matches,
)
from services.kernel.db import Database
from services.kernel.events import Event, event_json, parse_event
from services.kernel.settings import Settings
from tests.kernel.eventing import (
    BRAND,
    OtherNoticed,
    ThingChanged,
    ThingData,
    Throwaway,
    decoded,
    happened,
    message_fields,
    throwaway_service,
    xadd_events,
)

GROUP = "consumertest.effects"
STREAM = "kinfolk:events:consumertest"

Handler = Callable[[AsyncSession, Event], Awaitable[None]]


@pytest.fixture(scope="module")
async def thing(engine_database: Database) -> AsyncIterator[Throwaway]:
    async with throwaway_service(engine_database, "consumertest") as service:
        yield service


@pytest.fixture(autouse=True)
async def _clean(thing: Throwaway, engine_database: Database) -> None:
    await thing.reset(engine_database)


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    # Retries are due at once, so a test drives them with process_once and never sleeps.
    return base_settings.model_copy(
        update={
            "consumer_retry_after_seconds": 0,
            "consumer_max_deliveries": 3,
            "consumer_batch_size": 5,
        }
    )


class Recorder:
    """A handler that writes one effects row per call, then maybe raises (rolling it back)."""

    def __init__(self, thing: Throwaway, group: str, fail: Callable[[Event, int], bool]) -> None:
        self.thing = thing
        self.group = group
        self.fail = fail
        self.calls: list[uuid.UUID] = []

    async def __call__(self, session: AsyncSession, event: Event) -> None:
        self.calls.append(event.id)
        data = event.data
        assert isinstance(data, ThingData)
        await session.execute(
            self.thing.effects.insert().values(consumer=self.group, event_id=event.id, n=data.n)
        )
        if self.fail(event, self.calls.count(event.id)):
            raise RuntimeError(f"handler failed on n={data.n}")


def never(_: Event, __: int) -> bool:
    return False


def runner(
    database: Database, redis: Redis, settings: Settings, *specs: ConsumerSpec
) -> ConsumerRunner:
    return ConsumerRunner(database, redis, specs, settings, "consumer-1")


async def drain(runner: ConsumerRunner, passes: int = 10) -> int:
    """Passes until one finds nothing to do; returns how many passes did work."""
    for done in range(passes):
        if await runner.process_once() == 0:
            return done
    raise AssertionError("still busy after the allowed passes")


async def pending(redis: Redis, group: str = GROUP) -> int:
    return int((await redis.xpending(STREAM, group))["pending"])


def test_stream_names_match_the_service_module(thing: Throwaway) -> None:
    assert stream_for("consumertest") == thing.service.stream == STREAM
    assert dead_letter_stream(STREAM) == "kinfolk:events:consumertest:dead"


async def test_a_crash_mid_batch_is_retried_and_every_effect_lands_once(
    thing: Throwaway, engine_database: Database, redis: Redis, settings: Settings
) -> None:
    events = [happened(n) for n in range(5)]
    await xadd_events(redis, STREAM, events)
    third = events[2].id
    # Its first call fails in the batch's transaction, its second on its own delivery.
    handler = Recorder(thing, GROUP, lambda e, call: e.id == third and call <= 2)
    consumer = runner(
        engine_database,
        redis,
        settings,
        ConsumerSpec(GROUP, ["consumertest"], handler, thing.inbox),
    )

    assert await consumer.process_once() == 5
    # The failure rolled back its effect and its inbox row; the rest committed.
    assert await thing.effects_rows(engine_database) == [
        (GROUP, e.id, n) for n, e in enumerate(events) if n != 2
    ]
    assert await thing.inbox_ids(engine_database, GROUP) == sorted(
        e.id for e in events if e.id != third
    )
    assert await pending(redis) == 1

    assert await consumer.process_once() == 1  # the retry
    assert await consumer.process_once() == 0
    rows = await thing.effects_rows(engine_database)
    assert sorted(rows, key=lambda r: r[2]) == [(GROUP, e.id, n) for n, e in enumerate(events)]
    assert await thing.inbox_ids(engine_database, GROUP) == sorted(e.id for e in events)
    # The batch got as far as the third; then each on its own; then the retry.
    first_two = [e.id for e in events[:2]]
    assert handler.calls == [*first_two, third, *(e.id for e in events), third]
    assert await pending(redis) == 0
    assert await redis.xlen(dead_letter_stream(STREAM)) == 0


async def test_a_duplicate_message_of_the_same_event_takes_effect_once(
    thing: Throwaway, engine_database: Database, redis: Redis, settings: Settings
) -> None:
    event = happened(1)
    await xadd_events(redis, STREAM, [event, event])
    handler = Recorder(thing, GROUP, never)
    consumer = runner(
        engine_database,
        redis,
        settings,
        ConsumerSpec(GROUP, ["consumertest"], handler, thing.inbox),
    )
    assert await consumer.process_once() == 2
    assert await thing.effects_rows(engine_database) == [(GROUP, event.id, 1)]
    assert handler.calls == [event.id]
    assert await pending(redis) == 0


async def test_a_crash_after_commit_before_ack_redelivers_without_a_second_effect(
    thing: Throwaway,
    engine_database: Database,
    redis: Redis,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    event = happened(1)
    await xadd_events(redis, STREAM, [event])
    handler = Recorder(thing, GROUP, never)
    consumer = runner(
        engine_database,
        redis,
        settings,
        ConsumerSpec(GROUP, ["consumertest"], handler, thing.inbox),
    )

    async def lost_ack(*_: Any) -> int:
        raise ConnectionResetError("died before XACK")

    monkeypatch.setattr(redis, "xack", lost_ack)
    with pytest.raises(ConnectionResetError):
        await consumer.process_once()
    monkeypatch.undo()
    assert await pending(redis) == 1

    # Redelivery through XCLAIM: the inbox has the id, so the handler does not run again.
    assert await consumer.process_once() == 1
    assert await consumer.process_once() == 0
    assert handler.calls == [event.id]
    assert await thing.effects_rows(engine_database) == [(GROUP, event.id, 1)]
    assert await pending(redis) == 0


async def test_two_groups_each_get_every_event_once(
    thing: Throwaway, engine_database: Database, redis: Redis, settings: Settings
) -> None:
    events = [happened(n) for n in range(3)]
    await xadd_events(redis, STREAM, events)
    first = Recorder(thing, "consumertest.first", never)
    second = Recorder(thing, "consumertest.second", never)
    consumer = runner(
        engine_database,
        redis,
        settings,
        ConsumerSpec("consumertest.first", ["consumertest"], first, thing.inbox),
        ConsumerSpec("consumertest.second", ["consumertest"], second, thing.inbox),
    )
    assert await consumer.process_once() == 6
    assert await consumer.process_once() == 0
    rows = await thing.effects_rows(engine_database)
    for group in ("consumertest.first", "consumertest.second"):
        assert [(e, n) for g, e, n in rows if g == group] == [
            (e.id, n) for n, e in enumerate(events)
        ]
        assert await thing.inbox_ids(engine_database, group) == sorted(e.id for e in events)
        assert await pending(redis, group) == 0


async def test_the_groups_of_a_runner_parse_each_message_once(
    thing: Throwaway,
    engine_database: Database,
    redis: Redis,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parsed: list[str] = []

    def counting(payload: bytes | str) -> Event:
        parsed.append(str(payload))
        return parse_event(payload)

    monkeypatch.setattr(consumer_module, "parse_event", counting)
    events = [happened(n) for n in range(3)]
    await xadd_events(redis, STREAM, events)
    seen: dict[str, list[Event]] = {"consumertest.first": [], "consumertest.second": []}

    def keep(group: str) -> Handler:
        async def handler(_: AsyncSession, event: Event) -> None:
            seen[group].append(event)

        return handler

    consumer = runner(
        engine_database,
        redis,
        settings,
        *(ConsumerSpec(group, ["consumertest"], keep(group), thing.inbox) for group in seen),
    )
    assert await consumer.process_once() == 6
    assert len(parsed) == 3  # not 6
    assert seen["consumertest.first"] == seen["consumertest.second"] == events


def test_parsed_events_keep_the_latest_and_never_cache_a_failure() -> None:
    kept = ParsedEvents(size=2)
    one, two, three = (event_json(happened(n)).decode() for n in range(3))
    first = kept.parse(one)
    assert kept.parse(one) is first
    kept.parse(two)
    kept.parse(three)  # pushes out the first
    assert kept.parse(one) is not first
    assert kept.parse(one) == first
    for _ in range(2):
        with pytest.raises(LookupError):
            kept.parse('{"type": "no.such", "version": 1}')


async def test_a_new_group_sees_events_published_before_it_existed(
    thing: Throwaway, engine_database: Database, redis: Redis, settings: Settings
) -> None:
    early = happened(1)
    await xadd_events(redis, STREAM, [early])
    handler = Recorder(thing, GROUP, never)
    consumer = runner(
        engine_database,
        redis,
        settings,
        ConsumerSpec(GROUP, ["consumertest"], handler, thing.inbox),
    )
    await drain(consumer)
    assert handler.calls == [early.id]


async def test_a_poison_message_is_parked_after_max_deliveries(
    thing: Throwaway, engine_database: Database, redis: Redis, settings: Settings
) -> None:
    poison, fine = happened(13), happened(14)
    [poison_id, _] = await xadd_events(redis, STREAM, [poison, fine])
    handler = Recorder(thing, GROUP, lambda e, _: e.id == poison.id)
    consumer = runner(
        engine_database,
        redis,
        settings,
        ConsumerSpec(GROUP, ["consumertest"], handler, thing.inbox),
    )
    assert await drain(consumer) == 3  # first delivery, then two retries
    # The batch fails on the poison first (rolling back, `fine` never reached), then each goes
    # on its own: the poison fails, `fine` lands; then the two retries.
    assert handler.calls == [poison.id, poison.id, fine.id, poison.id, poison.id]
    assert await thing.effects_rows(engine_database) == [(GROUP, fine.id, 14)]
    assert await thing.inbox_ids(engine_database, GROUP) == [fine.id]
    assert await pending(redis) == 0

    [(_, raw)] = await redis.xrange(dead_letter_stream(STREAM))
    letter = decoded(raw)
    assert letter.pop("dead_at")
    assert "RuntimeError: handler failed on n=13" in letter.pop("traceback")
    assert letter == {
        **message_fields(poison),
        "group": GROUP,
        "stream": STREAM,
        "original_id": poison_id.decode(),
        "error": "RuntimeError: handler failed on n=13",
        "deliveries": "3",
        "consumer": "consumer-1",
    }


async def test_unparsable_and_unknown_messages_are_parked_at_once(
    thing: Throwaway, engine_database: Database, redis: Redis, settings: Settings
) -> None:
    not_json = {"event_id": "x", "type": "kerneltest.thing_happened", "payload": "{not json"}
    unknown_payload = orjson.dumps({"type": "kerneltest.unheard_of", "version": 1}).decode()
    unknown = {"event_id": "y", "type": "kerneltest.unheard_of", "payload": unknown_payload}
    invalid_payload = orjson.dumps({"type": "kerneltest.thing_happened", "version": 1}).decode()
    invalid = {"event_id": "z", "type": "kerneltest.thing_happened", "payload": invalid_payload}
    ids = [await redis.xadd(STREAM, fields) for fields in (not_json, unknown, invalid)]  # type: ignore[arg-type]
    handler = Recorder(thing, GROUP, never)
    consumer = runner(
        engine_database,
        redis,
        settings,
        ConsumerSpec(GROUP, ["consumertest"], handler, thing.inbox),
    )
    assert await consumer.process_once() == 3
    assert await consumer.process_once() == 0
    assert handler.calls == []
    assert await pending(redis) == 0
    letters = [decoded(raw) for _, raw in await redis.xrange(dead_letter_stream(STREAM))]
    assert [letter["original_id"] for letter in letters] == [i.decode() for i in ids]
    assert [letter["deliveries"] for letter in letters] == ["1", "1", "1"]
    assert letters[0]["error"].startswith("JSONDecodeError: ")
    assert letters[1]["error"] == "LookupError: unknown event type 'kerneltest.unheard_of' v1"
    assert letters[2]["error"].startswith("ValidationError: ")
    assert letters[0]["payload"] == "{not json"


async def test_event_type_filters_exact_and_wildcard(
    thing: Throwaway, engine_database: Database, redis: Redis, settings: Settings
) -> None:
    subject = uuid.uuid4()
    events: list[Event] = [
        happened(1, subject),
        ThingChanged(brand_id=BRAND, data=ThingData(n=2)),
        OtherNoticed(brand_id=BRAND, data=ThingData(n=3)),
    ]
    await xadd_events(redis, STREAM, events)
    exact = Recorder(thing, "consumertest.exact", never)
    wildcard = Recorder(thing, "consumertest.wildcard", never)
    everything = Recorder(thing, "consumertest.everything", never)
    consumer = runner(
        engine_database,
        redis,
        settings,
        ConsumerSpec(
            "consumertest.exact",
            ["consumertest"],
            exact,
            thing.inbox,
            event_types=frozenset({"kerneltest.thing_changed", "othertest.nothing"}),
        ),
        ConsumerSpec(
            "consumertest.wildcard",
            ["consumertest"],
            wildcard,
            thing.inbox,
            event_types=frozenset({"kerneltest.*"}),
        ),
        ConsumerSpec("consumertest.everything", ["consumertest"], everything, thing.inbox),
    )
    assert await consumer.process_once() == 9
    assert exact.calls == [events[1].id]
    assert wildcard.calls == [events[0].id, events[1].id]
    assert everything.calls == [e.id for e in events]
    for group in ("consumertest.exact", "consumertest.wildcard", "consumertest.everything"):
        assert await pending(redis, group) == 0  # skipped messages are acknowledged too
    # Skipped events leave no inbox row: the group never handled them.
    assert await thing.inbox_ids(engine_database, "consumertest.exact") == [events[1].id]


def test_type_patterns() -> None:
    assert type_matches("member.created", "member.created")
    assert not type_matches("member.created", "member.created_again")
    assert type_matches("member.*", "member.created")
    assert type_matches("member.*", "member.consent.granted")
    assert not type_matches("member.*", "members.created")
    assert not type_matches("member.*", "member")
    assert type_matches("*", "anything.at_all")
    for bad in ("member*", "*.created", "member.*.x", ".*"):
        with pytest.raises(ValueError, match="pattern"):
            ConsumerSpec("g", ["s"], Recorder.__call__, None, event_types=frozenset({bad}))  # type: ignore[arg-type]


async def test_run_consumes_until_stopped(
    thing: Throwaway, engine_database: Database, redis: Redis, settings: Settings
) -> None:
    handler = Recorder(thing, GROUP, never)
    consumer = ConsumerRunner(
        engine_database,
        redis,
        [ConsumerSpec(GROUP, ["consumertest"], handler, thing.inbox)],
        settings,
        "consumer-1",
        block_ms=20,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    event = happened(5)
    await xadd_events(redis, STREAM, [event])
    for _ in range(500):
        if handler.calls:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert handler.calls == [event.id]
    assert await thing.effects_rows(engine_database) == [(GROUP, event.id, 5)]
    assert await pending(redis) == 0


async def test_messages_of_a_consumer_that_died_are_claimed_and_applied_once(
    thing: Throwaway, engine_database: Database, redis: Redis, settings: Settings
) -> None:
    events = [happened(n) for n in range(2)]
    await xadd_events(redis, STREAM, events)
    await redis.xgroup_create(STREAM, GROUP, id="0")
    # Another consumer read both and died before handling them.
    assert len((await redis.xreadgroup(GROUP, "ghost", {STREAM: ">"}))[0][1]) == 2
    handler = Recorder(thing, GROUP, never)
    consumer = runner(
        engine_database,
        redis,
        settings,
        ConsumerSpec(GROUP, ["consumertest"], handler, thing.inbox),
    )
    assert await drain(consumer) == 1
    assert handler.calls == [e.id for e in events]
    assert await pending(redis) == 0


async def test_a_message_whose_consumers_keep_dying_is_parked(
    thing: Throwaway, engine_database: Database, redis: Redis, settings: Settings
) -> None:
    event = happened(1)
    [message_id] = await xadd_events(redis, STREAM, [event])
    await redis.xgroup_create(STREAM, GROUP, id="0")
    await redis.xreadgroup(GROUP, "ghost", {STREAM: ">"})
    for _ in range(2):  # two more deliveries, each to a consumer that died: 3 = the maximum
        await redis.xclaim(STREAM, GROUP, "ghost", min_idle_time=0, message_ids=[message_id])
    handler = Recorder(thing, GROUP, never)
    consumer = runner(
        engine_database,
        redis,
        settings,
        ConsumerSpec(GROUP, ["consumertest"], handler, thing.inbox),
    )
    assert await drain(consumer) == 1
    assert handler.calls == []
    assert await pending(redis) == 0
    [(_, raw)] = await redis.xrange(dead_letter_stream(STREAM))
    letter = decoded(raw)
    assert (letter["original_id"], letter["deliveries"]) == (message_id.decode(), "3")
    assert letter["error"] == "delivered 3 times without completing (consumer stopped?)"


async def test_a_deleted_stream_is_recreated_on_the_next_pass(
    thing: Throwaway, engine_database: Database, redis: Redis, settings: Settings
) -> None:
    handler = Recorder(thing, GROUP, never)
    consumer = runner(
        engine_database,
        redis,
        settings,
        ConsumerSpec(GROUP, ["consumertest"], handler, thing.inbox),
    )
    assert await consumer.process_once() == 0
    await redis.delete(STREAM)
    assert await consumer.process_once() == 0  # NOGROUP: noted, not raised
    event = happened(1)
    await xadd_events(redis, STREAM, [event])
    assert await consumer.process_once() == 1
    assert handler.calls == [event.id]


class BatchRecorder:
    """A `handle_many` that writes one effects row per event in one statement, then raises
    (rolling the batch back) if `fail` holds for any of its events."""

    def __init__(self, thing: Throwaway, group: str, fail: Callable[[Event], bool]) -> None:
        self.thing = thing
        self.group = group
        self.fail = fail
        self.calls: list[list[uuid.UUID]] = []

    async def __call__(self, session: AsyncSession, events: Sequence[Event]) -> None:
        self.calls.append([event.id for event in events])
        rows = []
        for event in events:
            assert isinstance(event.data, ThingData)
            rows.append({"consumer": self.group, "event_id": event.id, "n": event.data.n})
        await session.execute(self.thing.effects.insert(), rows)
        if any(self.fail(event) for event in events):
            raise RuntimeError("batch failed")


def batch_spec(
    thing: Throwaway, single: Recorder, many: BatchRecorder, **kwargs: Any
) -> ConsumerSpec:
    return ConsumerSpec(GROUP, ["consumertest"], single, thing.inbox, handle_many=many, **kwargs)


async def test_a_batch_handler_gets_only_new_events_once_each_in_stream_order(
    thing: Throwaway, engine_database: Database, redis: Redis, settings: Settings
) -> None:
    early, *events = [happened(n) for n in range(4)]
    single = Recorder(thing, GROUP, never)
    many = BatchRecorder(thing, GROUP, lambda _: False)
    consumer = runner(engine_database, redis, settings, batch_spec(thing, single, many))
    await xadd_events(redis, STREAM, [early])
    assert await consumer.process_once() == 1

    # A republished event (already in the inbox) and the same new event twice in one read.
    await xadd_events(redis, STREAM, [events[0], early, events[1], events[0], events[2]])
    assert await consumer.process_once() == 5
    assert await consumer.process_once() == 0
    assert single.calls == []
    assert many.calls == [[early.id], [e.id for e in events]]
    assert await thing.effects_rows(engine_database) == [
        (GROUP, e.id, n) for n, e in enumerate([early, *events])
    ]
    assert await thing.inbox_ids(engine_database, GROUP) == sorted(e.id for e in [early, *events])
    assert await pending(redis) == 0


async def test_a_failed_batch_is_handled_one_by_one_and_its_poison_parked_as_before(
    thing: Throwaway, engine_database: Database, redis: Redis, settings: Settings
) -> None:
    fine, poison, also_fine = happened(1), happened(13), happened(2)
    [_, poison_id, _] = await xadd_events(redis, STREAM, [fine, poison, also_fine])
    single = Recorder(thing, GROUP, lambda e, _: e.id == poison.id)
    many = BatchRecorder(thing, GROUP, lambda e: e.id == poison.id)
    consumer = runner(engine_database, redis, settings, batch_spec(thing, single, many))

    assert await drain(consumer) == 3  # the batch and its fallback, then two retries
    # The batch rolled back whole; the fallback and the retries count deliveries as before.
    assert many.calls == [[fine.id, poison.id, also_fine.id]]
    assert single.calls == [fine.id, poison.id, also_fine.id, poison.id, poison.id]
    assert await thing.effects_rows(engine_database) == [
        (GROUP, fine.id, 1),
        (GROUP, also_fine.id, 2),
    ]
    assert await thing.inbox_ids(engine_database, GROUP) == sorted([fine.id, also_fine.id])
    assert await pending(redis) == 0
    [(_, raw)] = await redis.xrange(dead_letter_stream(STREAM))
    letter = decoded(raw)
    assert (letter["original_id"], letter["deliveries"]) == (poison_id.decode(), "3")
    assert letter["error"] == "RuntimeError: handler failed on n=13"


async def test_a_batch_skips_unwanted_types_and_parks_unparsable_messages(
    thing: Throwaway, engine_database: Database, redis: Redis, settings: Settings
) -> None:
    first, second = happened(1), happened(2)
    other = OtherNoticed(brand_id=BRAND, data=ThingData(n=3))
    await xadd_events(redis, STREAM, [first, other])
    not_json = {"event_id": "x", "type": "kerneltest.thing_happened", "payload": "{not json"}
    [bad_id] = [await redis.xadd(STREAM, not_json)]  # type: ignore[arg-type]
    await xadd_events(redis, STREAM, [second])
    single = Recorder(thing, GROUP, never)
    many = BatchRecorder(thing, GROUP, lambda _: False)
    spec = batch_spec(thing, single, many, event_types=frozenset({"kerneltest.*"}))
    consumer = runner(engine_database, redis, settings, spec)

    assert await consumer.process_once() == 4
    assert await consumer.process_once() == 0
    assert many.calls == [[first.id, second.id]]
    assert single.calls == []
    assert await pending(redis) == 0
    [(_, raw)] = await redis.xrange(dead_letter_stream(STREAM))
    letter = decoded(raw)
    assert (letter["original_id"], letter["deliveries"]) == (bad_id.decode(), "1")
    assert letter["error"].startswith("JSONDecodeError: ")
