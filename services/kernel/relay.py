"""The outbox relay: publishes committed outbox rows to each service's Redis Stream.

Delivery is at-least-once. A batch is XADDed to Redis first and marked published afterwards, in
the transaction that locked the rows; if the process dies between the two, the rows are still
unpublished when the transaction rolls back and are published again by the next pass. Consumers
dedupe on the event id (the inbox), so a duplicate in the stream never takes effect twice.

Several relays may run at once (one per container, say): `FOR UPDATE SKIP LOCKED` hands each
row to one of them. Order in a stream follows the outbox ids (time-ordered UUIDs) within a batch;
across concurrent writers it is the order in which transactions committed and were picked up, so
consumers must not rely on a strict global order.

A stream is never capped by trimming what a group has not read: while one has
`stream_max_entries` entries, its outbox waits (back-pressure), and the trimmer
(`stream_trim.py`) makes room as the groups acknowledge.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Any

import structlog
from prometheus_client import Counter, Gauge
from redis.asyncio import Redis
from sqlalchemy import Row, Table, Text, cast, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.db import Database
from services.kernel.loops import Backoff, sleep_or_stop
from services.kernel.module import ServiceModule
from services.kernel.outbox import OUTBOX_TABLE
from services.kernel.settings import Settings
from services.kernel.stream_trim import TRIM_INTERVAL_SECONDS, StreamTrimmer

log = structlog.get_logger(__name__)

PUBLISHED = Counter(
    "kinfolk_relay_events_published_total",
    "Outbox rows the relay has XADDed to a service's stream (duplicates after a crash included).",
    ["service"],
)
RELAY_ERRORS = Counter(
    "kinfolk_relay_errors_total",
    "Relay passes that failed on a database or Redis error and were retried after a backoff.",
)

# How often the relay trims while it holds an outbox back (else TRIM_INTERVAL_SECONDS).
HELD_TRIM_INTERVAL_SECONDS = 1.0

HELD_BACK = Gauge(
    "kinfolk_relay_held_back",
    "1 while the relay holds a service's outbox back because its stream is full "
    "(`stream_max_entries`: some consumer group is far behind), else 0.",
    ["service"],
)

OLDEST_UNPUBLISHED = Gauge(
    "kinfolk_relay_oldest_unpublished_seconds",
    "How long the oldest event of a service's outbox not yet published has waited, as of the "
    "relay's last trim pass (0: none waits). Growing: the relay is down, slow or held back.",
    ["service"],
)


def outbox_of(service: ServiceModule) -> Table | None:
    """The service's outbox table, or None for a service without one (the gateway)."""
    return service.metadata.tables.get(f"{service.schema}.{OUTBOX_TABLE}")


def stream_fields(row: Row[Any]) -> dict[str, str]:
    """The fields of one stream entry. Redis has no null, so a missing subject is ""."""
    return {
        "event_id": str(row.id),
        "type": row.type,
        "version": str(row.version),
        "brand_id": str(row.brand_id),
        "subject_id": "" if row.subject_id is None else str(row.subject_id),
        "payload": row.payload,
    }


class Relay:
    """Moves committed outbox rows of every given service to that service's stream."""

    def __init__(
        self,
        database: Database,
        redis: Redis,
        services: Sequence[ServiceModule],
        settings: Settings,
    ) -> None:
        self.database = database
        self.redis = redis
        self.settings = settings
        self.outboxes: list[tuple[ServiceModule, Table]] = [
            (service, table) for service in services if (table := outbox_of(service)) is not None
        ]
        self.trimmer = StreamTrimmer.for_services(redis, services)

        self.held_back: set[str] = set()  # services whose stream was full at the last look

    async def publish_pending(self) -> int:
        """One pass over every outbox; returns how many events were published. An outbox whose
        stream is full waits in PostgreSQL (`held_back`) until its groups catch up."""
        total = 0
        for service, table in self.outboxes:
            while True:
                room = await self._room(service)
                if room <= 0:
                    break
                limit = min(room, self.settings.relay_batch_size)
                count = await self._publish_batch(service, table, limit)
                total += count
                # A short batch: the outbox is drained (or the rest is locked by another relay).
                if count < limit:
                    break
        return total

    async def measure_waiting(self) -> None:
        """Sets OLDEST_UNPUBLISHED for each outbox: one row read through the unpublished index."""
        async with self.database.unit_of_work() as session:
            now = await session.scalar(select(func.now()))
            for service, table in self.outboxes:
                oldest = await session.scalar(
                    select(table.c.created_at)
                    .where(table.c.published_at.is_(None))
                    .order_by(table.c.id)
                    .limit(1)
                )
                waited = (now - oldest).total_seconds() if oldest is not None else 0.0
                OLDEST_UNPUBLISHED.labels(service=service.name).set(max(0.0, waited))

    async def _room(self, service: ServiceModule) -> int:
        """How many more entries the service's stream may take now. A full stream means some
        group is far behind: capping it (XADD MAXLEN) would drop entries that group never
        read, so the events wait in the outbox instead, which is what it is for."""
        room = self.settings.stream_max_entries - int(await self.redis.xlen(service.stream))
        full = room <= 0
        if full != (service.name in self.held_back):
            HELD_BACK.labels(service=service.name).set(int(full))
            if full:
                self.held_back.add(service.name)
                log.warning(
                    "relay.held_back",
                    service=service.name,
                    stream=service.stream,
                    entries=self.settings.stream_max_entries - room,
                )
            else:
                self.held_back.discard(service.name)
                log.info("relay.resumed", service=service.name, stream=service.stream)
        return room

    async def _publish_batch(self, service: ServiceModule, table: Table, limit: int) -> int:
        async with self.database.unit_of_work() as session:
            rows = (
                await session.execute(
                    select(
                        table.c.id,
                        table.c.type,
                        table.c.version,
                        table.c.brand_id,
                        table.c.subject_id,
                        # The event JSON as PostgreSQL prints it: no decode and re-encode in Python.
                        cast(table.c.payload, Text).label("payload"),
                    )
                    .where(table.c.published_at.is_(None))
                    .order_by(table.c.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            # MULTI/EXEC: the batch lands in the stream whole or not at all (barring a lost reply).
            async with self.redis.pipeline(transaction=True) as pipe:
                for row in rows:
                    pipe.xadd(service.stream, stream_fields(row))  # type: ignore[arg-type]
                await pipe.execute()
            await self._mark_published(session, table, [row.id for row in rows])
        # Counted after the commit: a crash before it republishes, and is counted again then.
        PUBLISHED.labels(service=service.name).inc(len(rows))
        return len(rows)

    async def _mark_published(self, session: AsyncSession, table: Table, ids: list[Any]) -> None:
        """The step after XADD; a crash before its commit makes the batch publish again."""
        await session.execute(
            update(table).where(table.c.id.in_(ids)).values(published_at=func.now())
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until `stop` is set: poll, idle when there is nothing to do, back off on errors.

        One failed pass (database restarting, Redis unreachable) is logged and retried; the relay
        never exits because of it, since nothing would publish events until someone restarted it.
        """
        backoff = Backoff()
        log.info("relay.started", services=[s.name for s, _ in self.outboxes])
        loop = asyncio.get_running_loop()
        last_trim = -math.inf  # at once: a relay that restarts trims what waited meanwhile
        while not stop.is_set():
            try:
                published = await self.publish_pending()
                # Entries every group has acknowledged leave Redis (see stream_trim.py); sooner
                # while an outbox waits for room.
                interval = HELD_TRIM_INTERVAL_SECONDS if self.held_back else TRIM_INTERVAL_SECONDS
                if loop.time() >= last_trim + interval:
                    last_trim = loop.time()
                    await self.trimmer.trim_all()
                    await self.measure_waiting()
            except Exception:
                RELAY_ERRORS.inc()
                delay = backoff.next_delay()
                log.exception("relay.pass_failed", retry_in_seconds=delay)
                await sleep_or_stop(stop, delay)
                continue
            backoff.reset()
            if published == 0:
                await sleep_or_stop(stop, self.settings.relay_idle_seconds)
        log.info("relay.stopped")
