"""Live consumers: at most once, only what arrives after the group exists, only while fresh."""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from services.kernel.events import Event
from services.kernel.live import LiveConsumerRunner, LiveConsumerSpec
from services.kernel.settings import Settings
from tests.kernel.eventing import OtherNoticed, ThingData, happened, message_fields, xadd_events

GROUP = "livetest.news"
STREAM = "kinfolk:events:livetest"


class Seen:
    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.fail = fail

    async def __call__(self, redis: Redis, events: Sequence[Event]) -> None:
        batch = []
        for event in events:
            assert isinstance(event.data, ThingData)
            batch.append(event.data.n)
        self.batches.append(batch)
        if self.fail:
            raise RuntimeError("the socket side is down")


def live(redis: Redis, settings: Settings, seen: Seen) -> LiveConsumerRunner:
    spec = LiveConsumerSpec(
        GROUP, ["livetest"], seen, event_types=frozenset({"kerneltest.thing_happened"})
    )
    return LiveConsumerRunner(redis, [spec], settings, "live-1")


async def test_only_what_comes_after_the_group_is_made_is_handled_once_and_nothing_pends(
    redis: Redis, base_settings: Settings
) -> None:
    await xadd_events(redis, STREAM, [happened(0)])  # history: never announced
    seen = Seen()
    runner = live(redis, base_settings, seen)
    await runner.prepare()
    other = OtherNoticed(brand_id=happened(0).brand_id, data=ThingData(n=9))
    await xadd_events(redis, STREAM, [happened(1), other, happened(2)])
    assert await runner.process_once() == 3
    assert await runner.process_once() == 0
    assert seen.batches == [[1, 2]]  # the unwanted type is skipped
    assert (await redis.xpending(STREAM, GROUP))["pending"] == 0


async def test_a_failing_handler_loses_its_messages_instead_of_retrying_them_late(
    redis: Redis, base_settings: Settings
) -> None:
    seen = Seen(fail=True)
    runner = live(redis, base_settings, seen)
    await runner.prepare()
    await xadd_events(redis, STREAM, [happened(1)])
    assert await runner.process_once() == 1
    seen.fail = False
    await xadd_events(redis, STREAM, [happened(2)])
    assert await runner.process_once() == 1
    assert seen.batches == [[1], [2]]
    assert (await redis.xpending(STREAM, GROUP))["pending"] == 0


async def test_messages_that_waited_past_max_age_are_dropped(
    redis: Redis, base_settings: Settings
) -> None:
    seen = Seen()
    runner = live(redis, base_settings, seen)
    await runner.prepare()
    # Published ten minutes ago (the entry id is the publication time), read only now.
    seconds, _ = await redis.time()
    stale_id = f"{(seconds - 600) * 1000}-0"
    await redis.xadd(STREAM, message_fields(happened(1)), id=stale_id)  # type: ignore[arg-type]
    await xadd_events(redis, STREAM, [happened(2)])
    assert await runner.process_once() == 2
    assert seen.batches == [[2]]
