"""What the event streams hold and how far behind each consumer group is (`kinfolk streams`),
and dropping a group no service declares any more.

A group Redis keeps after its service stopped declaring it (a consumer renamed or retired)
still counts for trimming (`stream_trim.py`): its stream keeps everything the group has not
acknowledged and, once full, holds its outbox back (`relay.py`). Only a person can tell that
the group is gone for good, so dropping it is a command, and only for an undeclared group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from services.kernel.consumer import DEAD_LETTER_SUFFIX, STREAM_PREFIX, as_text
from services.kernel.module import ServiceModule
from services.kernel.stream_trim import declared_groups, group_infos


@dataclass(frozen=True, slots=True)
class GroupStatus:
    name: str
    declared: bool  # a service of this deployment declares it on the stream
    live: bool  # a live group (at most once, while fresh): it holds nothing back
    consumers: int
    pending: int  # read and not acknowledged
    # Entries not read yet: as Redis 7 tells it, or counted where it cannot (Redis 6, or
    # entries deleted in between), then at most COUNTED_LAG.
    lag: int
    lag_counted: bool = False


@dataclass(frozen=True, slots=True)
class StreamStatus:
    service: str
    stream: str
    entries: int
    groups: tuple[GroupStatus, ...]
    # Declared inbox groups not created yet: the stream is not trimmed until they are (a group
    # starts at the stream's beginning). Live groups start at its end and are not listed.
    missing: tuple[str, ...]

    @property
    def retired(self) -> tuple[GroupStatus, ...]:
        return tuple(group for group in self.groups if not group.declared)


async def stream_status(redis: Redis, services: Sequence[ServiceModule]) -> list[StreamStatus]:
    """Every event stream, declared or found in Redis, by name."""
    declared = declared_groups(services)
    found = {
        as_text(key)
        async for key in redis.scan_iter(match=f"{STREAM_PREFIX}*", count=1_000, _type="stream")
    }
    streams = sorted(
        {name for name in found if not name.endswith(DEAD_LETTER_SUFFIX)} | set(declared)
    )
    return [await _status(redis, stream, declared.get(stream, {})) for stream in streams]


# Where Redis cannot say how far behind a group is, `status` counts the entries after the last
# one the group was given, up to this many (a count of a stream's payloads, for a person asking).
COUNTED_LAG = 10_000


async def _status(redis: Redis, stream: str, declared: dict[str, bool]) -> StreamStatus:
    groups: list[GroupStatus] = []
    for info in await group_infos(redis, stream) or []:
        lag, counted = info.lag, False
        if lag is None:
            milliseconds, sequence = info.last_delivered
            after = f"({milliseconds}-{sequence}"
            lag = len(await redis.xrange(stream, min=after, max="+", count=COUNTED_LAG))
            counted = True
        groups.append(
            GroupStatus(
                name=info.name,
                declared=info.name in declared,
                live=declared.get(info.name, False),
                consumers=info.consumers,
                pending=info.pending,
                lag=lag,
                lag_counted=counted,
            )
        )
    present = {group.name for group in groups}
    return StreamStatus(
        service=stream.removeprefix(STREAM_PREFIX),
        stream=stream,
        entries=int(await redis.xlen(stream)),
        groups=tuple(sorted(groups, key=lambda group: group.name)),
        missing=tuple(
            sorted(name for name, live in declared.items() if not live and name not in present)
        ),
    )


# A group one of whose consumers read within this long is taken to be in use: a worker reading
# it blocks a second at a time, so a running one is never idle for more than a few seconds.
IN_USE_SECONDS = 600


class GroupInUse(ValueError):
    """A process read from the group lately: in a rolling deploy, an older release still runs
    it, and dropping it would make that release read the stream from its start again."""


async def drop_retired_group(
    redis: Redis,
    services: Sequence[ServiceModule],
    service: str,
    group: str,
    *,
    force: bool = False,
    in_use_seconds: float = IN_USE_SECONDS,
) -> int:
    """Deletes `group` from the stream of `service`, with what it had pending; returns the
    entries it had pending. Refuses (ValueError) a group a service declares: its workers would
    create it again at the stream's start and handle everything since once more (their inbox
    would only skip what it still remembers); and, unless `force`, one a consumer read from
    within `in_use_seconds` (GroupInUse): an older release that still declares it is running.
    LookupError for a group that is not there."""
    stream = f"{STREAM_PREFIX}{service}"
    declared = declared_groups(services).get(stream, {})
    if group in declared:
        raise ValueError(
            f"{group!r} is declared by a service of this deployment on {stream}: it is not "
            "retired. Stop declaring it (deploy that) before you drop it."
        )
    groups = await group_infos(redis, stream) or []
    found = next((g for g in groups if g.name == group), None)
    if found is None:
        present = ", ".join(g.name for g in groups) or "none"
        raise LookupError(f"no group {group!r} on {stream} (its groups: {present})")
    if not force:
        consumers = await redis.xinfo_consumers(stream, group)
        busy = [c for c in consumers if int(c["idle"]) < in_use_seconds * 1_000]
        if busy:
            latest = min(busy, key=lambda c: int(c["idle"]))
            raise GroupInUse(
                f"{group!r} on {stream} was read {int(latest['idle']) / 1_000:.0f} s ago by "
                f"{as_text(latest['name'])}: a process of an older release still runs it. Drop "
                "it once none does (no reads for ten minutes), or with --force."
            )
    await redis.xgroup_destroy(stream, group)
    return found.pending
