"""The transactional outbox and inbox tables every service keeps in its own schema.

Writing an event means inserting a row in the same transaction as the change it describes; the
relay (`services.kernel.relay`) publishes committed rows to Redis Streams. The inbox records which
events a consumer has already handled, in the same transaction as the handling, so that a
redelivered event takes effect once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import orjson
from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    insert,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.events import Event

OUTBOX_TABLE = "outbox"
INBOX_TABLE = "inbox"


def outbox_table(metadata: MetaData) -> Table:
    return Table(
        OUTBOX_TABLE,
        metadata,
        Column("id", UUID(as_uuid=True), primary_key=True),
        Column("type", Text, nullable=False),
        Column("version", Integer, nullable=False),
        Column("brand_id", UUID(as_uuid=True), nullable=False),
        Column("subject_id", UUID(as_uuid=True), nullable=True),
        Column("occurred_at", DateTime(timezone=True), nullable=False),
        Column("payload", JSONB, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True), nullable=True),
        Index(
            "ix_outbox_unpublished",
            "id",
            postgresql_where=text("published_at IS NULL"),
        ),
    )


def inbox_table(metadata: MetaData) -> Table:
    return Table(
        INBOX_TABLE,
        metadata,
        Column("consumer", Text, nullable=False),
        Column("event_id", UUID(as_uuid=True), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("consumer", "event_id"),
    )


def outbox_row(event: Event) -> dict[str, object]:
    return {
        "id": event.id,
        "type": event.type,
        "version": event.version,
        "brand_id": event.brand_id,
        "subject_id": event.subject_id,
        "occurred_at": event.occurred_at,
        "payload": orjson.loads(event.model_dump_json()),
    }


class Outbox:
    """Writes events into one service's outbox, inside the caller's transaction."""

    def __init__(self, table: Table) -> None:
        self.table = table

    async def add(self, session: AsyncSession, event: Event) -> None:
        await session.execute(insert(self.table).values(outbox_row(event)))

    async def add_many(self, session: AsyncSession, events: Sequence[Event]) -> None:
        if events:
            await session.execute(insert(self.table), [outbox_row(e) for e in events])

    async def copy_many(self, session: AsyncSession, events: Iterable[Event]) -> int:
        """Bulk path for imports: COPY on the session's own connection, inside its transaction."""
        records = [
            (
                e.id,
                e.type,
                e.version,
                e.brand_id,
                e.subject_id,
                e.occurred_at,
                e.model_dump_json(),
            )
            for e in events
        ]
        if not records:
            return 0
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        await driver.copy_records_to_table(
            self.table.name,
            schema_name=self.table.schema,
            columns=["id", "type", "version", "brand_id", "subject_id", "occurred_at", "payload"],
            records=records,
        )
        return len(records)
