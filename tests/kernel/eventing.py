"""Helpers for the event pipeline and job tests: throwaway events and a throwaway service schema.

The tests need real commits (the relay and the consumers open their own transactions), so each
test module creates its own schema with an outbox, an inbox and an `effects` table, on the
worker's real database, and drops it at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter
from redis.asyncio import Redis
from sqlalchemy import Column, Identity, Integer, Table, Text, select, text
from sqlalchemy.dialects.postgresql import UUID

from services.kernel.db import Database, service_metadata
from services.kernel.events import Event, EventData
from services.kernel.module import ServiceModule
from services.kernel.outbox import inbox_table, outbox_table

BRAND = uuid.UUID("00000000-0000-7000-8000-00000000b0a1")


class ThingData(EventData):
    n: int


class ThingHappened(Event):
    type: Literal["kerneltest.thing_happened"] = "kerneltest.thing_happened"
    version: Literal[1] = 1
    data: ThingData


class ThingChanged(Event):
    type: Literal["kerneltest.thing_changed"] = "kerneltest.thing_changed"
    version: Literal[1] = 1
    data: ThingData


class OtherNoticed(Event):
    type: Literal["othertest.noticed"] = "othertest.noticed"
    version: Literal[1] = 1
    data: ThingData


def happened(n: int, subject: uuid.UUID | None = None) -> ThingHappened:
    return ThingHappened(brand_id=BRAND, subject_id=subject, data=ThingData(n=n))


@dataclass(frozen=True)
class Throwaway:
    """A service of the tests' own, in its own schema."""

    service: ServiceModule
    outbox: Table
    inbox: Table
    effects: Table  # what handlers and jobs write; no unique key, so a double effect shows

    @property
    def stream(self) -> str:
        return self.service.stream

    async def reset(self, database: Database) -> None:
        async with database.engine.begin() as conn:
            await conn.execute(
                text(
                    f'TRUNCATE "{self.service.schema}".outbox, "{self.service.schema}".inbox, '
                    f'"{self.service.schema}".effects'
                )
            )

    async def effects_rows(self, database: Database) -> list[tuple[str, uuid.UUID, int]]:
        async with database.unit_of_work() as session:
            rows = await session.execute(
                select(self.effects.c.consumer, self.effects.c.event_id, self.effects.c.n).order_by(
                    self.effects.c.id
                )
            )
            return [(r.consumer, r.event_id, r.n) for r in rows]

    async def inbox_ids(self, database: Database, consumer: str) -> list[uuid.UUID]:
        async with database.unit_of_work() as session:
            rows = await session.execute(
                select(self.inbox.c.event_id)
                .where(self.inbox.c.consumer == consumer)
                .order_by(self.inbox.c.event_id)
            )
            return list(rows.scalars())


@asynccontextmanager
async def throwaway_service(
    database: Database, name: str = "kerneltest"
) -> AsyncIterator[Throwaway]:
    schema = f"kerneltest_{uuid.uuid4().hex[:12]}"
    metadata = service_metadata(schema)
    outbox = outbox_table(metadata)
    inbox = inbox_table(metadata)
    effects = Table(
        "effects",
        metadata,
        Column("id", Integer, Identity(), primary_key=True),
        Column("consumer", Text, nullable=False),
        Column("event_id", UUID(as_uuid=True), nullable=True),
        Column("n", Integer, nullable=False),
    )
    service = ServiceModule(
        name=name, schema=schema, metadata=metadata, router=APIRouter(), migrations=Path(".")
    )
    async with database.engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        await conn.run_sync(metadata.create_all)
    try:
        yield Throwaway(service, outbox, inbox, effects)
    finally:
        async with database.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


def message_fields(event: Event) -> dict[str, str]:
    """What the relay writes for an event, for tests that XADD directly."""
    return {
        "event_id": str(event.id),
        "type": event.type,
        "version": str(event.version),
        "brand_id": str(event.brand_id),
        "subject_id": "" if event.subject_id is None else str(event.subject_id),
        "payload": event.model_dump_json(),
    }


async def xadd_events(redis: Redis, stream: str, events: Sequence[Event]) -> list[bytes]:
    ids: list[bytes] = []
    for event in events:
        ids.append(await redis.xadd(stream, message_fields(event)))  # type: ignore[arg-type]
    return ids


def decoded(fields: dict[Any, Any]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in fields.items()}
