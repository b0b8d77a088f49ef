"""Streams keep exactly what some consumer group still needs, on a real Redis."""

from __future__ import annotations

from prometheus_client import REGISTRY
from redis.asyncio import Redis

from services.kernel.stream_trim import StreamTrimmer
from services.registry import SERVICES

STREAM = "kinfolk:events:probe"


async def _publish(redis: Redis, count: int) -> list[bytes]:
    return [await redis.xadd(STREAM, {"n": str(n)}) for n in range(count)]


async def _read(redis: Redis, group: str, count: int) -> list[bytes]:
    """`count` new entries delivered to `group` (pending until acknowledged)."""
    answer = await redis.xreadgroup(group, "c1", {STREAM: ">"}, count=count)
    return [entry_id for _, entries in answer for entry_id, _ in entries]


async def _kept(redis: Redis) -> list[bytes]:
    return [entry_id for entry_id, _ in await redis.xrange(STREAM)]


GROUPS = ("rewards.orders", "webhooks.intake")


def _group_figures() -> dict[str, dict[str, float]]:
    """The figures of GROUPS on STREAM, as the metrics show them (other tests of the process
    leave their own groups' there)."""
    figures: dict[str, dict[str, float]] = {}
    for figure in ("lag", "pending"):
        for metric in REGISTRY.collect():
            if metric.name != f"kinfolk_consumer_group_{figure}":
                continue
            for sample in metric.samples:
                if sample.labels["stream"] == STREAM and sample.labels["group"] in GROUPS:
                    figures.setdefault(sample.labels["group"], {})[figure] = sample.value
    return figures


async def test_entries_leave_once_every_group_has_acknowledged_them(redis: Redis) -> None:
    ids = await _publish(redis, 6)
    for group in ("rewards.orders", "webhooks.intake"):
        await redis.xgroup_create(STREAM, group, id="0")
    trimmer = StreamTrimmer(redis, {STREAM: {"rewards.orders", "webhooks.intake"}}, set())

    # rewards has read and acknowledged four; webhooks has read three and acknowledged two.
    await redis.xack(STREAM, "rewards.orders", *await _read(redis, "rewards.orders", 4))
    read = await _read(redis, "webhooks.intake", 3)
    await redis.xack(STREAM, "webhooks.intake", *read[:2])
    assert await trimmer.trim_all() == 2
    # The third stays: read but not acknowledged, another consumer may claim it.
    assert await _kept(redis) == ids[2:]
    # What each group has yet to read, and has read but not acknowledged, is in the metrics.
    assert _group_figures() == {
        "rewards.orders": {"lag": 2.0, "pending": 0.0},
        "webhooks.intake": {"lag": 3.0, "pending": 1.0},
    }

    await redis.xack(STREAM, "webhooks.intake", read[2])
    await redis.xack(STREAM, "webhooks.intake", *await _read(redis, "webhooks.intake", 3))
    await redis.xack(STREAM, "rewards.orders", *await _read(redis, "rewards.orders", 2))
    assert await trimmer.trim_all() == 4
    assert await _kept(redis) == []
    assert _group_figures() == {
        "rewards.orders": {"lag": 0.0, "pending": 0.0},
        "webhooks.intake": {"lag": 0.0, "pending": 0.0},
    }
    # Nothing is lost to an entry published after the trim.
    later = await _publish(redis, 1)
    assert await _read(redis, "rewards.orders", 10) == later

    # A group that is dropped, then the stream deleted: their figures go, not stay as they were.
    await redis.xgroup_destroy(STREAM, "webhooks.intake")
    await trimmer.trim_all()
    assert set(_group_figures()) == {"rewards.orders"}
    await redis.delete(STREAM)
    assert await trimmer.trim_all() == 0
    assert _group_figures() == {}


async def test_nothing_is_trimmed_until_every_declared_group_exists(redis: Redis) -> None:
    ids = await _publish(redis, 3)
    await redis.xgroup_create(STREAM, "rewards.orders", id="$")  # has read everything
    trimmer = StreamTrimmer(redis, {STREAM: {"rewards.orders", "marketing.journal"}}, set())
    # marketing's group, made later at the stream's start, must still find all three.
    assert await trimmer.trim_all() == 0
    assert await _kept(redis) == ids
    await redis.xgroup_create(STREAM, "marketing.journal", id="0")
    assert await _read(redis, "marketing.journal", 10) == ids


async def test_a_live_group_holds_nothing_back_and_an_undeclared_one_does(redis: Redis) -> None:
    ids = await _publish(redis, 4)
    await redis.xgroup_create(STREAM, "rewards.orders", id="$")
    await redis.xgroup_create(STREAM, "gateway.live", id="0")  # behind, and only live
    trimmer = StreamTrimmer(redis, {STREAM: {"rewards.orders"}}, {"gateway.live"})
    assert await trimmer.trim_all() == 4

    more = await _publish(redis, 2)
    await redis.xgroup_create(STREAM, "retired.group", id="0")  # no service declares it
    await redis.xgroup_setid(STREAM, "rewards.orders", id="$")
    assert await trimmer.trim_all() == 0  # it has not read them: kept for it
    assert await _kept(redis) == more
    assert ids  # published and gone


def test_the_services_declare_a_group_on_every_stream_they_publish_to() -> None:
    """Every service stream some group reads is trimmed, with that group's name expected."""
    trimmer = StreamTrimmer.for_services(Redis(), SERVICES)
    assert "kinfolk:events:members" in trimmer.expected
    assert "rewards.members" in trimmer.expected["kinfolk:events:members"]
    assert trimmer.live
    assert not trimmer.live & {g for groups in trimmer.expected.values() for g in groups}
