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
from dataclasses import dataclass

import structlog
from prometheus_client import Gauge
from redis.asyncio import Redis

from services.kernel.consumer import as_text, consumer_specs
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
    milliseconds, _, sequence = as_text(entry_id).partition("-")
    return int(milliseconds), int(sequence or 0)


def _after(entry_id: StreamId) -> StreamId:
    milliseconds, sequence = entry_id
    return milliseconds, sequence + 1


def declared_groups(services: Sequence[ServiceModule]) -> dict[str, dict[str, bool]]:
    """Each stream the services read, with the groups they declare on it (True: live)."""
    declared: dict[str, dict[str, bool]] = {}
    for spec in consumer_specs(services):
        for stream in spec.streams:
            declared.setdefault(stream, {})[spec.name] = False
    for live in live_consumer_specs(services):
        for stream in live.streams:
            declared.setdefault(stream, {})[live.name] = True
    return declared


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """One consumer group of a stream, as `XINFO GROUPS` tells it."""

    name: str
    last_delivered: StreamId
    consumers: int
    pending: int  # read and not acknowledged
    lag: int | None  # not read yet; None where Redis cannot tell (before 7, or after deletions)


async def group_infos(redis: Redis, stream: str) -> list[GroupInfo] | None:
    """The stream's groups; None without a stream."""
    if not await redis.exists(stream):
        return None
    return [
        GroupInfo(
            name=as_text(found["name"]),
            last_delivered=_parse(found["last-delivered-id"]),
            consumers=int(found["consumers"]),
            pending=int(found["pending"]),
            lag=int(found["lag"]) if found.get("lag") is not None else None,
        )
        for found in await redis.xinfo_groups(stream)
    ]


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
        live: set[str] = set()
        for stream, groups in declared_groups(services).items():
            inbox = {name for name, is_live in groups.items() if not is_live}
            if inbox:
                expected[stream] = inbox
            live |= {name for name, is_live in groups.items() if is_live}
        return cls(redis, expected, live)

    async def trim_all(self) -> int:
        """Trims every stream that can be; returns how many entries were removed."""
        removed = 0
        for stream, groups in self.expected.items():
            removed += await self.trim(stream, groups)
        return removed

    async def trim(self, stream: str, expected: set[str]) -> int:
        groups = await group_infos(self.redis, stream)
        _measure(stream, groups or ())
        if groups is None:
            return 0  # no stream (yet, or any more)
        if not expected <= {group.name for group in groups}:
            return 0  # a group that will read it from the start is missing
        needed: list[StreamId] = []
        for group in groups:
            if group.name in self.live:
                continue
            if group.pending:
                # Read, not acknowledged: may be claimed again.
                summary = await self.redis.xpending(stream, group.name)
                needed.append(_parse(summary["min"]))
            else:
                needed.append(_after(group.last_delivered))
        if not needed:
            return 0
        oldest = min(needed)
        removed = int(
            await self.redis.xtrim(stream, minid=f"{oldest[0]}-{oldest[1]}", approximate=False)
        )
        if removed:
            log.debug("streams.trimmed", stream=stream, removed=removed)
        return removed


# The groups each stream's figures were last set for, in this process.
_MEASURED: dict[str, set[str]] = {}


def _measure(stream: str, groups: Sequence[GroupInfo]) -> None:
    """The figures of the stream's groups now. A group that is gone (dropped, or its stream
    deleted) loses its figures rather than keeping the last ones."""
    now = {group.name for group in groups}
    for gone in _MEASURED.get(stream, set()) - now:
        for gauge in (GROUP_PENDING, GROUP_LAG):
            with contextlib.suppress(KeyError):
                gauge.remove(stream, gone)
    _MEASURED[stream] = now
    for group in groups:
        GROUP_PENDING.labels(stream, group.name).set(group.pending)
        # No figure where Redis cannot tell one, rather than the last one it could.
        if group.lag is not None:
            GROUP_LAG.labels(stream, group.name).set(group.lag)
        else:
            with contextlib.suppress(KeyError):
                GROUP_LAG.remove(stream, group.name)
