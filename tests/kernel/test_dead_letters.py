"""Dead letters: retrying a parked event with the group that failed on it once the cause is
fixed (exactly once, the letter then gone), listing them, and deleting those that name erased
members, across streams and pages, with the job plumbing that hands such a job the worker's
Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Set
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel import dead_letters
from services.kernel.clients import Peers
from services.kernel.consumer import (
    Applied,
    ConsumerRunner,
    ConsumerSpec,
    apply_event,
    apply_new_events,
    dead_letter_stream,
)
from services.kernel.db import Database
from services.kernel.dead_letters import (
    Retried,
    dead_letter_streams,
    dead_letters_named,
    forget_dead_letters,
    letter_ref,
    parse_letter_ref,
    retry_dead_letters,
)
from services.kernel.events import Event
from services.kernel.jobs import JobSpec, arq_functions
from services.kernel.settings import Settings
from tests.kernel.eventing import (
    BRAND,
    ThingData,
    ThingHappened,
    Throwaway,
    happened,
    throwaway_service,
    xadd_events,
)

ERASED = {uuid.uuid4(), uuid.uuid4()}
KEPT = uuid.uuid4()


async def _erased_among(ids: Set[uuid.UUID]) -> Set[uuid.UUID]:
    return ids & ERASED


async def test_letters_naming_an_erased_member_go_on_every_page_of_every_stream(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dead_letters, "PAGE", 3)
    erased = sorted(ERASED)
    names = [erased[0], KEPT, erased[1], None, erased[0], KEPT, erased[0]]
    for number, member in enumerate(names):
        # Where the id appears varies: the payload, the subject, an upper-cased traceback.
        field = ("payload", "subject_id", "traceback")[number % 3]
        value = "" if member is None else str(member)
        await redis.xadd(
            "kinfolk:events:rewards:dead",
            {"n": str(number), field: value.upper() if field == "traceback" else value},
        )
    await redis.xadd("kinfolk:events:community:dead", {"n": "c", "payload": str(erased[1])})
    await redis.xadd("kinfolk:events:rewards", {"n": "live", "payload": str(erased[0])})
    await redis.set("kinfolk:events:webhooks:dead", "not a stream")

    assert await forget_dead_letters(redis, _erased_among) == 5
    left = [f[b"n"] for _, f in await redis.xrange("kinfolk:events:rewards:dead")]
    assert left == [b"1", b"3", b"5"]  # the kept member's letters and the one naming no one
    assert await redis.xlen("kinfolk:events:community:dead") == 0
    assert await redis.xlen("kinfolk:events:rewards") == 1  # a live stream is not touched
    assert await dead_letter_streams(redis) == [
        b"kinfolk:events:community:dead",
        b"kinfolk:events:rewards:dead",
    ]
    assert await forget_dead_letters(redis, _erased_among) == 0


async def test_a_job_gets_the_workers_redis_and_peers_only_when_it_says_it_needs_them(
    engine_database: Database, redis: Redis
) -> None:
    seen: list[Any] = []

    async def job(session: AsyncSession, *, redis: Redis, extra: int) -> int:
        seen.append(redis)
        return extra

    async def calling(session: AsyncSession, *, peers: Peers, extra: int) -> int:
        seen.append(peers)
        return extra

    plain = JobSpec("test.plain", lambda session, extra: _answer(extra))
    needing = JobSpec("test.needs_redis", job, needs_redis=True)
    needs_peers = JobSpec("test.needs_peers", calling, needs_peers=True)
    peers = Peers(Settings())
    run_plain, run_needing, run_calling = arq_functions(
        engine_database, [plain, needing, needs_peers], peers
    )
    assert await run_needing.coroutine({"redis": redis}, extra=7) == 7
    assert await run_calling.coroutine({"redis": redis}, extra=9) == 9
    assert seen == [redis, peers]
    assert await run_plain.coroutine({"redis": redis}, extra=8) == 8  # handed neither


async def _answer(value: int) -> int:
    return value


# --- Retrying ---------------------------------------------------------------------------------

BROKEN = "deadtest.broken"  # fails on events with n < 0 while `broken` is set
SOUND = "deadtest.sound"  # never fails
STREAM = "kinfolk:events:deadtest"
DEAD = dead_letter_stream(STREAM)


@pytest.fixture(scope="module")
async def thing(engine_database: Database) -> AsyncIterator[Throwaway]:
    async with throwaway_service(engine_database, "deadtest") as service:
        yield service


@pytest.fixture(autouse=True)
async def _clean(thing: Throwaway, engine_database: Database) -> None:
    await thing.reset(engine_database)


class Effects:
    """A group's handler: one effects row per call; raises on a negative n while broken."""

    def __init__(self, thing: Throwaway, group: str) -> None:
        self.thing = thing
        self.group = group
        self.broken = group == BROKEN

    async def __call__(self, session: AsyncSession, event: Event) -> None:
        data = event.data
        assert isinstance(data, ThingData)
        await session.execute(
            self.thing.effects.insert().values(consumer=self.group, event_id=event.id, n=data.n)
        )
        if self.broken and data.n < 0:
            raise RuntimeError(f"cannot take n={data.n}")

    def spec(self) -> ConsumerSpec:
        return ConsumerSpec(self.group, ["deadtest"], self, self.thing.inbox)


async def _park(
    engine_database: Database, redis: Redis, base_settings: Settings, specs: list[ConsumerSpec]
) -> None:
    """Consume the stream until every message is handled or parked (two deliveries each)."""
    settings = base_settings.model_copy(
        update={"consumer_retry_after_seconds": 0, "consumer_max_deliveries": 2}
    )
    runner = ConsumerRunner(engine_database, redis, specs, settings, "deadtest-1")
    for _ in range(10):
        if await runner.process_once() == 0:
            return
    raise AssertionError("the consumers did not settle")


async def test_a_fixed_group_takes_its_parked_events_once_and_the_letters_go(
    thing: Throwaway, engine_database: Database, redis: Redis, base_settings: Settings
) -> None:
    broken, sound = Effects(thing, BROKEN), Effects(thing, SOUND)
    specs = [broken.spec(), sound.spec()]
    poison, other_poison, fine = happened(-1), happened(-2), happened(3)
    await xadd_events(redis, STREAM, [poison, fine, other_poison])
    await _park(engine_database, redis, base_settings, specs)
    before = await thing.effects_rows(engine_database)
    taken = [(BROKEN, fine.id, 3), (SOUND, fine.id, 3)]
    assert sorted(before) == sorted([*taken, (SOUND, poison.id, -1), (SOUND, other_poison.id, -2)])

    letters = await dead_letters.dead_letters(redis)
    assert [(x.group, x.event_id, x.event_type, x.deliveries) for x in letters] == [
        (BROKEN, str(poison.id), "kerneltest.thing_happened", 2),
        (BROKEN, str(other_poison.id), "kerneltest.thing_happened", 2),
    ]
    assert letters[0].error == "RuntimeError: cannot take n=-1"
    assert letters[0].ref == f"deadtest:{letters[0].letter_id}"
    assert await dead_letters.dead_letters(redis, group=SOUND) == []

    # Still broken: each fails again, the letters stay, nothing is written.
    again = await retry_dead_letters(engine_database, redis, specs, letters, _erased_among)
    assert [(r.outcome, r.error) for r in again] == [
        (Retried.FAILED, "RuntimeError: cannot take n=-1"),
        (Retried.FAILED, "RuntimeError: cannot take n=-2"),
    ]
    assert await dead_letters.dead_letters(redis) == letters
    assert await thing.effects_rows(engine_database) == before

    # Fixed: the one letter named is taken by the broken group alone, once, and deleted.
    broken.broken = False
    [first] = await dead_letters_named(redis, [letters[0].ref])
    [done] = await retry_dead_letters(engine_database, redis, specs, [first], _erased_among)
    assert done.outcome is Retried.HANDLED
    assert await thing.effects_rows(engine_database) == [*before, (BROKEN, poison.id, -1)]
    assert await dead_letters.dead_letters(redis) == letters[1:]
    # A second retry of it (another operator's, from an older listing) changes nothing.
    [late] = await retry_dead_letters(engine_database, redis, specs, [first], _erased_among)
    assert late.outcome is Retried.ALREADY
    assert await thing.effects_rows(engine_database) == [*before, (BROKEN, poison.id, -1)]
    assert await thing.inbox_ids(engine_database, BROKEN) == sorted([fine.id, poison.id])

    # The rest, by group.
    rest = await retry_dead_letters(
        engine_database,
        redis,
        specs,
        await dead_letters.dead_letters(redis, group=BROKEN),
        _erased_among,
    )
    assert [r.outcome for r in rest] == [Retried.HANDLED]
    assert await redis.xlen(DEAD) == 0
    assert await redis.xlen(STREAM) == 3  # the events themselves were not published again


async def test_letters_no_group_here_can_take_or_that_do_not_parse_stay(
    thing: Throwaway, engine_database: Database, redis: Redis
) -> None:
    sound = Effects(thing, SOUND)
    event = happened(5)
    await redis.xadd(
        DEAD, {"group": "deadtest.retired", "type": event.type, "payload": event.model_dump_json()}
    )
    unknown = orjson.dumps({"type": "kerneltest.unheard_of", "version": 1}).decode()
    await redis.xadd(DEAD, {"group": SOUND, "type": "kerneltest.unheard_of", "payload": unknown})
    letters = await dead_letters.dead_letters(redis)
    results = await retry_dead_letters(
        engine_database, redis, [sound.spec()], letters, _erased_among
    )
    assert [(r.outcome, r.error) for r in results] == [
        (Retried.NO_GROUP, ""),
        (Retried.FAILED, "LookupError: unknown event type 'kerneltest.unheard_of' v1"),
    ]
    assert await redis.xlen(DEAD) == 2
    assert await thing.effects_rows(engine_database) == []


async def test_a_letter_about_an_erased_member_is_deleted_not_retried(
    thing: Throwaway, engine_database: Database, redis: Redis
) -> None:
    """Applied after the erasure, an old event would put the member's data back."""
    sound = Effects(thing, SOUND)
    about_erased, about_kept = happened(1, sorted(ERASED)[0]), happened(2, KEPT)
    for event in (about_erased, about_kept):
        await redis.xadd(
            DEAD, {"group": SOUND, "type": event.type, "payload": event.model_dump_json()}
        )
    letters = await dead_letters.dead_letters(redis)
    results = await retry_dead_letters(
        engine_database, redis, [sound.spec()], letters, _erased_among
    )
    assert [r.outcome for r in results] == [Retried.ERASED, Retried.HANDLED]
    assert await thing.effects_rows(engine_database) == [(SOUND, about_kept.id, 2)]
    assert await redis.xlen(DEAD) == 0


async def test_a_letter_is_named_by_service_and_entry_id(redis: Redis) -> None:
    entry = (await redis.xadd(DEAD, {"group": SOUND, "payload": "{}"})).decode()
    ref = letter_ref(DEAD, entry)
    assert ref == f"deadtest:{entry}"
    assert parse_letter_ref(ref) == (DEAD, entry)
    [found] = await dead_letters_named(redis, [ref])
    assert (found.stream, found.letter_id, found.group) == (DEAD, entry, SOUND)
    for bad in ("deadtest", "deadtest:", ":1-0", "deadtest:12", "deadtest:x-0"):
        with pytest.raises(ValueError, match="is not a dead letter: write <service>:<entry id>"):
            parse_letter_ref(bad)
    with pytest.raises(LookupError, match="no dead letter deadtest:1-0, rewards:2-0"):
        await dead_letters_named(redis, [ref, "deadtest:1-0", "rewards:2-0"])


async def test_a_latest_wins_group_never_applies_an_older_event_over_a_newer_one(
    thing: Throwaway, engine_database: Database, redis: Redis, base_settings: Settings
) -> None:
    """An event about a member fails and is parked; then a newer one about the same member takes
    effect. Retried, the old one is recorded as superseded, not applied, and its letter goes;
    an old event about a member with nothing newer is applied as usual. An older event the
    stream redelivers (a failed message retried) is recorded and not applied either."""
    member, other = uuid.uuid4(), uuid.uuid4()
    t0 = datetime(2026, 11, 1, tzinfo=UTC)

    def about(subject: uuid.UUID, at: datetime, n: int) -> ThingHappened:
        data = ThingData(n=n)
        return ThingHappened(brand_id=BRAND, subject_id=subject, occurred_at=at, data=data)

    old, lone = about(member, t0, -1), about(other, t0, -3)
    new = about(member, t0 + timedelta(hours=1), 2)
    broken = Effects(thing, BROKEN)
    spec = replace(broken.spec(), latest_wins=True)
    await xadd_events(redis, STREAM, [old, lone])
    await _park(engine_database, redis, base_settings, [spec])
    await xadd_events(redis, STREAM, [new])
    await _park(engine_database, redis, base_settings, [spec])
    assert await thing.effects_rows(engine_database) == [(BROKEN, new.id, 2)]

    broken.broken = False
    letters = await dead_letters.dead_letters(redis)
    results = await retry_dead_letters(engine_database, redis, [spec], letters, _erased_among)
    assert [(r.letter.event_id, r.outcome) for r in results] == [
        (str(old.id), Retried.SUPERSEDED),
        (str(lone.id), Retried.HANDLED),
    ]
    after = [(BROKEN, new.id, 2), (BROKEN, lone.id, -3)]
    assert await thing.effects_rows(engine_database) == after
    assert await dead_letters.dead_letters(redis) == []

    # Redelivered older events: recorded (so acknowledged), not applied.
    older, oldest = about(member, t0 - timedelta(hours=1), 5), about(member, t0, 6)
    assert await apply_event(engine_database, spec, older) is Applied.SUPERSEDED
    assert await apply_new_events(engine_database, spec, [oldest]) == {oldest.id}
    assert await thing.effects_rows(engine_database) == after
    assert {older.id, oldest.id} <= set(await thing.inbox_ids(engine_database, BROKEN))
    # Without `latest_wins` the same redelivery takes effect (groups that add events up).
    assert await apply_event(engine_database, broken.spec(), about(member, t0, 7)) is Applied.NOW


async def test_a_latest_wins_group_drops_a_failing_event_a_newer_one_has_superseded(
    thing: Throwaway, engine_database: Database, redis: Redis, base_settings: Settings
) -> None:
    """A message that failed is retried after the newer one about the same member took
    effect: it is superseded, acknowledged and never parked."""
    member = uuid.uuid4()
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    old = ThingHappened(brand_id=BRAND, subject_id=member, occurred_at=t0, data=ThingData(n=-1))
    new = ThingHappened(
        brand_id=BRAND, subject_id=member, occurred_at=t0 + timedelta(hours=1), data=ThingData(n=2)
    )
    broken = Effects(thing, BROKEN)
    await xadd_events(redis, STREAM, [old, new])
    await _park(engine_database, redis, base_settings, [replace(broken.spec(), latest_wins=True)])
    assert await thing.effects_rows(engine_database) == [(BROKEN, new.id, 2)]
    assert await dead_letters.dead_letters(redis) == []
