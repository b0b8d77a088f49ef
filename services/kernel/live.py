"""Live consumers: consumer groups whose effect is ephemeral, so they need no inbox.

A live notification ("you earned 120 points", pushed to an open socket) is worth something now
or never, and it writes nothing a retry could repair. Such a consumer reads its group with NOACK:
Redis hands each message to one consumer of the group and forgets it, so nothing stays pending,
and a handler that fails loses those messages instead of delivering them late. For the same
reason:

- the group starts at the end of its streams (`$`, where `ConsumerRunner` starts at `0`): a new
  deployment does not announce everything the streams still hold;
- a message that waited in the stream longer than the spec's `max_age` (the workers were down) is
  dropped. Its age is the stream entry's id, the time the relay published it, not the event's
  `occurred_at`, which is business time (a purchase sent in a day late is still news).

Messages that do not parse, or whose type this process does not know, are skipped: there is no
dead-letter stream to park them in, and the inbox consumers of the same streams park them anyway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from services.kernel.clock import utcnow
from services.kernel.consumer import (
    BLOCK_MILLISECONDS,
    as_text,
    check_pattern,
    decoded_fields,
    stream_for,
    type_matches,
)
from services.kernel.events import Event, parse_event
from services.kernel.loops import Backoff, sleep_or_stop
from services.kernel.module import ServiceModule
from services.kernel.settings import Settings

log = structlog.get_logger(__name__)

# Gets the wanted events of one read, in stream order, with the process's Redis client.
LiveHandler = Callable[[Redis, Sequence[Event]], Awaitable[None]]

LIVE_MESSAGES = Counter(
    "kinfolk_live_consumer_messages_total",
    "Stream messages a live consumer group read, by outcome.",
    ["group", "outcome"],
)


@dataclass(frozen=True)
class LiveConsumerSpec:
    """One live consumer group: no inbox, no retries; at most once, and only while fresh."""

    name: str  # the consumer group
    services: Sequence[str]  # names of the services whose streams it reads
    handler: LiveHandler
    event_types: frozenset[str] | None = None  # exact types or `prefix.*`; None wants everything
    max_age: timedelta = timedelta(minutes=2)

    def __post_init__(self) -> None:
        if not self.services:
            raise ValueError(f"live consumer {self.name!r} reads no service's stream")
        for pattern in self.event_types or ():
            check_pattern(pattern)

    @property
    def streams(self) -> list[str]:
        return [stream_for(name) for name in self.services]

    def wants(self, event_type: str) -> bool:
        if self.event_types is None:
            return True
        return any(type_matches(p, event_type) for p in self.event_types)


def _published_ms(message_id: bytes | str) -> int:
    """When the relay XADDed the entry: the milliseconds part of its id."""
    return int(as_text(message_id).partition("-")[0])


class LiveConsumerRunner:
    """Runs live consumer groups as one named consumer (unique per process)."""

    def __init__(
        self,
        redis: Redis,
        specs: Sequence[LiveConsumerSpec],
        settings: Settings,
        consumer_name: str,
        *,
        block_ms: int = BLOCK_MILLISECONDS,
    ) -> None:
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"live consumer group names must be unique: {names}")
        self.redis = redis
        self.specs = list(specs)
        self.settings = settings
        self.consumer_name = consumer_name
        self.block_ms = block_ms
        self._groups_ready: set[str] = set()

    async def prepare(self) -> None:
        """Create every group now: one created after an event was published starts past it."""
        for spec in self.specs:
            await self._ensure_groups(spec)

    async def process_once(self) -> int:
        """One non-blocking read per group; returns how many messages were read."""
        total = 0
        for spec in self.specs:
            total += await self._process(spec, block_ms=None)
        return total

    async def run(self, stop: asyncio.Event) -> None:
        if not self.specs:
            return
        log.info(
            "live_consumer.started",
            consumer=self.consumer_name,
            groups=[s.name for s in self.specs],
        )
        await asyncio.gather(*(self._run_group(spec, stop) for spec in self.specs))

    async def _run_group(self, spec: LiveConsumerSpec, stop: asyncio.Event) -> None:
        backoff = Backoff()
        while not stop.is_set():
            try:
                await self._process(spec, block_ms=self.block_ms)
            except Exception:
                self._groups_ready.discard(spec.name)
                delay = backoff.next_delay()
                log.exception("live_consumer.pass_failed", group=spec.name, retry_in=delay)
                await sleep_or_stop(stop, delay)
            else:
                backoff.reset()

    async def _ensure_groups(self, spec: LiveConsumerSpec) -> None:
        if spec.name in self._groups_ready:
            return
        for stream in spec.streams:
            try:
                await self.redis.xgroup_create(stream, spec.name, id="$", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        self._groups_ready.add(spec.name)

    async def _process(self, spec: LiveConsumerSpec, block_ms: int | None) -> int:
        await self._ensure_groups(spec)
        try:
            entries: Any = await self.redis.xreadgroup(
                spec.name,
                self.consumer_name,
                dict.fromkeys(spec.streams, ">"),
                count=self.settings.consumer_batch_size,
                block=block_ms,
                noack=True,
            )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._groups_ready.discard(spec.name)
            return 0
        count = 0
        for _stream, messages in entries or []:
            count += len(messages)
            events = self._fresh_events(spec, messages)
            if not events:
                continue
            try:
                await spec.handler(self.redis, events)
            except Exception:
                # At most once: retrying later would deliver stale news.
                LIVE_MESSAGES.labels(group=spec.name, outcome="failed").inc(len(events))
                log.exception("live_consumer.handler_failed", group=spec.name, events=len(events))
            else:
                LIVE_MESSAGES.labels(group=spec.name, outcome="handled").inc(len(events))
        return count

    def _fresh_events(self, spec: LiveConsumerSpec, messages: Sequence[Any]) -> list[Event]:
        oldest_ms = int((utcnow() - spec.max_age).timestamp() * 1000)
        events: list[Event] = []
        for message_id, raw in messages:
            if raw is None:
                continue
            fields = decoded_fields(raw)
            declared = fields.get("type")
            if declared is not None and not spec.wants(declared):
                LIVE_MESSAGES.labels(group=spec.name, outcome="skipped").inc()
                continue
            if _published_ms(message_id) < oldest_ms:
                LIVE_MESSAGES.labels(group=spec.name, outcome="stale").inc()
                continue
            try:
                event = parse_event(fields["payload"])
            except Exception as exc:
                LIVE_MESSAGES.labels(group=spec.name, outcome="unreadable").inc()
                log.warning(
                    "live_consumer.unreadable",
                    group=spec.name,
                    message_id=as_text(message_id),
                    error=f"{type(exc).__name__}: {exc}",
                )
                continue
            if spec.wants(event.type):
                events.append(event)
        return events


def live_consumer_specs(services: Iterable[ServiceModule]) -> list[LiveConsumerSpec]:
    """Every live consumer the given services declare."""
    return [spec for service in services for spec in service.live_consumers]
