"""Run the relay and every consumer until no event is left: what the background workers do
shortly after a write, done at once. For seeding the demo and for end-to-end tests.

`apply_unpublished` is the bulk loader's shortcut: the outboxes' events go straight to the few
consumer groups a load's next step needs, without Redis; the other groups get them from the
relay later, and the named groups take that second delivery as a duplicate.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Row, Table, Text, cast, select

from services.kernel.consumer import ConsumerRunner, ConsumerSpec, apply_new_events
from services.kernel.db import Database
from services.kernel.events import parse_event
from services.kernel.live import LiveConsumerRunner, live_consumer_specs
from services.kernel.module import ServiceModule
from services.kernel.relay import Relay, outbox_of
from services.kernel.runtime import Runtime

# Draining works through a backlog, not a trickle: bigger reads than the workers' own make the
# per-round-trip costs (XREADGROUP, the inbox insert, XACK) small next to the handling.
DRAIN_RELAY_BATCH = 5_000
DRAIN_CONSUMER_BATCH = 2_000


async def drain_events(
    runtime: Runtime, services: Sequence[ServiceModule], consumer: str = "drain"
) -> int:
    """Publish every outbox and handle every event, repeatedly, until a round does nothing
    (an event's handler may write new events). Returns how many messages were handled."""
    settings = runtime.settings.model_copy(
        update={
            "relay_batch_size": max(runtime.settings.relay_batch_size, DRAIN_RELAY_BATCH),
            "consumer_batch_size": max(runtime.settings.consumer_batch_size, DRAIN_CONSUMER_BATCH),
        }
    )
    relay = Relay(runtime.database, runtime.redis, services, settings)
    specs = [spec for service in services for spec in service.consumers]
    runner = ConsumerRunner(runtime.database, runtime.redis, specs, settings, consumer)
    live = LiveConsumerRunner(runtime.redis, live_consumer_specs(services), settings, consumer)
    # Live groups start at the streams' end: made before publishing, they see this drain's events.
    await live.prepare()
    total = 0
    while True:
        published = await relay.publish_pending()
        handled = 0
        while (batch := await runner.process_once() + await live.process_once()) > 0:
            handled += batch
        total += handled
        if published == 0 and handled == 0:
            # As the relay does: what every group has acknowledged leaves the streams; an outbox
            # held back for room goes on once that made some.
            trimmed = await relay.trimmer.trim_all()
            if not (relay.held_back and trimmed):
                return total


async def apply_unpublished(
    database: Database,
    services: Sequence[ServiceModule],
    groups: Collection[str],
    *,
    batch_size: int = DRAIN_RELAY_BATCH,
) -> int:
    """Hand every unpublished outbox event to the consumer groups named in `groups`, as the relay
    and those groups would, but straight from the outboxes: a batch's events are parsed once,
    and no stream carries them. For a bulk load whose next step needs a few projections (the
    simulator's purchases need rewards' accounts) but not the other consumers' work.

    The events stay unpublished: the relay publishes them later for every group, and the named
    groups, whose inboxes now hold the ids, take them as duplicates. Returns how many events
    took effect in a group (an event two groups wanted counts twice).
    """
    specs = [spec for service in services for spec in service.consumers if spec.name in groups]
    unknown = set(groups) - {spec.name for spec in specs}
    if unknown:
        raise ValueError(f"no consumer group named {', '.join(sorted(unknown))}")
    applied = 0
    for service in services:
        table = outbox_of(service)
        readers = [spec for spec in specs if service.name in spec.services]
        if table is None or not readers:
            continue
        rows = await _unpublished(database, table, None, batch_size)
        while rows:
            last = rows[-1].id
            # The next batch is read while this one is applied: PostgreSQL reads as Python
            # parses and handles.
            following = asyncio.create_task(_unpublished(database, table, last, batch_size))
            try:
                applied += await _apply_rows(database, readers, rows)
            except BaseException:
                following.cancel()
                await asyncio.gather(following, return_exceptions=True)
                raise
            rows = await following
            if not rows:  # events the batch's handlers wrote to this outbox (their ids sort last)
                rows = await _unpublished(database, table, last, batch_size)
    return applied


async def _unpublished(
    database: Database, table: Table, after: uuid.UUID | None, limit: int
) -> Sequence[Row[Any]]:
    query = (
        select(table.c.id, table.c.type, cast(table.c.payload, Text).label("payload"))
        .where(table.c.published_at.is_(None))
        .order_by(table.c.id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(table.c.id > after)
    async with database.unit_of_work() as session:
        return (await session.execute(query)).all()


async def _apply_rows(
    database: Database, readers: Sequence[ConsumerSpec], rows: Sequence[Row[Any]]
) -> int:
    events = [
        parse_event(row.payload) for row in rows if any(spec.wants(row.type) for spec in readers)
    ]
    # The groups apply theirs side by side, each in its own transaction (they share nothing).
    # All finish before a failure is raised: no transaction is left running behind it.
    outcomes = await asyncio.gather(
        *(
            apply_new_events(database, spec, wanted)
            for spec in readers
            if (wanted := [event for event in events if spec.wants(event.type)])
        ),
        return_exceptions=True,
    )
    applied = 0
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
        applied += len(outcome)
    return applied
