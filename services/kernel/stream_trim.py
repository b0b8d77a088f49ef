"""Event streams keep only what a consumer group still needs.

An entry every group has read and acknowledged is of no more use in Redis: the outbox keeps the
event for a week as the replay source (docs/operations.md), and an entry left in the stream is a
copy of whatever the event carries, personal data included, which an erasure cannot reach. So
each stream is trimmed up to the oldest entry some group has not acknowledged (`XTRIM MINID`),
and only once every group that the services declare for it exists: a group created later starts
at the stream's beginning (see `ConsumerRunner._ensure_groups`) and must still find everything
published before it. Groups Redis has that no service declares (one a deployment retired, say)
are respected too, until someone deletes them (`kinfolk streams drop-group`, `streams.py`).
Live groups (`services/kernel/live.py`) deliver at most once and only while fresh, so they hold
nothing back.

A stream whose groups fall behind stops growing at `stream_max_entries`: the relay holds its
outbox back until trimming makes room (`relay.py`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import structlog
from prometheus_client import Gauge
from redis.asyncio import Redis

from services.kernel.consumer import consumer_specs
from services.kernel.live import live_consumer_specs
from services.kernel.module import ServiceModule

log = structlog.get_logger(__name__)

# How often the relay trims its streams.
TRIM_INTERVAL_SECONDS = 30.0

# Read off each stream as it is trimmed: what an alert on a stuck or slow consumer group needs.
GROUP_PENDING = Gauge(
    "kinfolk_consumer_group_pending",
    "Entries a consumer group has read and not acknowledged (being handled, or waiting for a "
    "retry), as of the relay's last trim of the stream.",
    ["stream", "group"],
)
GROUP_LAG = Gauge(
    "kinfolk_consumer_group_lag",
    "Entries of the stream a consumer group has not read yet, as of the relay's last trim "
    "(Redis 7 and later; absent where Redis cannot tell).",
    ["stream", "group"],
)

StreamId = tuple[int, int]


def _parse(entry_id: bytes | str) -> StreamId:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    milliseconds, _, sequence = text.partition("-")
    return int(milliseconds), int(sequence or 0)


def _after(entry_id: StreamId) -> StreamId:
    milliseconds, sequence = entry_id
    return milliseconds, sequence + 1


class StreamTrimmer:
    """Trims streams: each named with the groups that must exist on it before it is trimmed;
    `live` names the groups that hold nothing back."""

    def __init__(self, redis: Redis, expected: dict[str, set[str]], live: set[str]) -> None:
        self.redis = redis
        self.expected = expected
        self.live = live

    @classmethod
    def for_services(cls, redis: Redis, services: Sequence[ServiceModule]) -> StreamTrimmer:
        """The streams the services' consumers read, each with the groups they declare."""
        expected: dict[str, set[str]] = {}
        for spec in consumer_specs(services):
            for stream in spec.streams:
                expected.setdefault(stream, set()).add(spec.name)
        return cls(redis, expected, {spec.name for spec in live_consumer_specs(services)})

    async def trim_all(self) -> int:
        """Trims every stream that can be; returns how many entries were removed."""
        removed = 0
        for stream, groups in self.expected.items():
            removed += await self.trim(stream, groups)
        return removed

    async def trim(self, stream: str, expected: set[str]) -> int:
        groups = await self._groups(stream)
        if groups is None or not expected <= set(groups):
            return 0  # no stream yet, or a group that will read it from the start is missing
        needed: list[StreamId] = []
        for name, last_delivered in groups.items():
            if name in self.live:
                continue
            pending = await self.redis.xpending(stream, name)
            if pending["pending"]:
                needed.append(_parse(pending["min"]))  # read, not acknowledged: may be claimed
            else:
                needed.append(_after(last_delivered))
        if not needed:
            return 0
        oldest = min(needed)
        removed = int(
            await self.redis.xtrim(stream, minid=f"{oldest[0]}-{oldest[1]}", approximate=False)
        )
        if removed:
            log.debug("streams.trimmed", stream=stream, removed=removed)
        return removed

    async def _groups(self, stream: str) -> dict[str, StreamId] | None:
        """Each group of the stream with the last entry it was given; None without a stream."""
        if not await self.redis.exists(stream):
            return None
        groups: dict[str, StreamId] = {}
        for found in await self.redis.xinfo_groups(stream):
            name = found["name"].decode() if isinstance(found["name"], bytes) else found["name"]
            groups[name] = _parse(found["last-delivered-id"])
            GROUP_PENDING.labels(stream, name).set(int(found["pending"]))
            # Redis 7 says how far behind a group is, unless entries were deleted in between:
            # then no figure, rather than the last one it could tell.
            if found.get("lag") is not None:
                GROUP_LAG.labels(stream, name).set(int(found["lag"]))
            else:
                with contextlib.suppress(KeyError):
                    GROUP_LAG.remove(stream, name)
        return groups
