"""The transactional outbox and inbox tables every service keeps in its own schema.

Writing an event means inserting a row in the same transaction as the change it describes; the
relay (`services.kernel.relay`) publishes committed rows to Redis Streams. The inbox records which
events a consumer has already handled, in the same transaction as the handling, so that a
redelivered event takes effect once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import orjson
from sqlalchemy import (
    Column,
    ColumnElement,
    DateTime,
    Index,
    Insert,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    bindparam,
    cast,
    func,
    insert,
    select,
    text,
    union_all,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.db import copy_records
from services.kernel.driver_statements import DriverStatement
from services.kernel.events import Event, event_json

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
        # Kept by groups whose handler keeps only a subject's latest state
        # (`ConsumerSpec.latest_wins`): what a dead-letter retry checks before applying an
        # older event about the same subject. For a group with several states a subject
        # (`ConsumerSpec.state_of`), an id derived from the subject and the state. Null for
        # every other group.
        Column("subject_id", UUID(as_uuid=True), nullable=True),
        Column("occurred_at", DateTime(timezone=True), nullable=True),
        PrimaryKeyConstraint("consumer", "event_id"),
        Index(
            "ix_inbox_subject",
            "consumer",
            "subject_id",
            "occurred_at",
            postgresql_where=text("subject_id IS NOT NULL"),
        ),
    )


def outbox_row(event: Event) -> dict[str, object]:
    return {
        "id": event.id,
        "type": event.type,
        "version": event.version,
        "brand_id": event.brand_id,
        "subject_id": event.subject_id,
        "occurred_at": event.occurred_at,
        "payload": orjson.loads(event_json(event)),
    }


_KEPT_SIZES = 8
_COLUMNS = ("id", "type", "version", "brand_id", "subject_id", "occurred_at", "payload")


def _parameters(event: Event, index: int = 0) -> dict[str, Any]:
    """One event's bind parameters for `Outbox._insert`: the payload as the event's JSON text
    (cast to jsonb in SQL), not parsed and dumped again."""
    values: dict[str, Any] = {
        "id": event.id,
        "type": event.type,
        "version": event.version,
        "brand_id": event.brand_id,
        "subject_id": event.subject_id,
        "occurred_at": event.occurred_at,
        "payload": event_json(event).decode(),
    }
    return {f"{name}_{index}": value for name, value in values.items()}


class Outbox:
    """Writes events into one service's outbox, inside the caller's transaction."""

    # Events held back by `batch()`, per session (session.info), until the batch ends.
    _BATCH_KEY = "kinfolk.outbox.batch"

    def __init__(self, table: Table) -> None:
        self.table = table
        # One INSERT per number of rows, for the handful of sizes real writes have, built and
        # compiled once and run by the driver: the hot path of every write that emits events.
        self._inserts: dict[int, DriverStatement] = {}

    async def _write(self, session: AsyncSession, parameters: dict[str, Any], rows: int) -> None:
        if rows > _KEPT_SIZES:
            # A rare large batch goes through SQLAlchemy, whose cache keeps its compiled form,
            # rather than growing the dict.
            await session.execute(self._build_insert(rows), parameters)
            return
        statement = self._inserts.get(rows)
        if statement is None:
            statement = self._inserts[rows] = DriverStatement(self._build_insert(rows))
        await statement.fetch(session, parameters)

    def _build_insert(self, rows: int) -> Insert:
        def row(i: int) -> list[ColumnElement[Any]]:
            return [
                cast(bindparam(f"payload_{i}", type_=Text), JSONB)
                if name == "payload"
                else bindparam(f"{name}_{i}", type_=self.table.c[name].type)
                for name in _COLUMNS
            ]

        if rows == 1:
            return insert(self.table).values(dict(zip(_COLUMNS, row(0), strict=True)))
        # Several rows as INSERT ... SELECT ... UNION ALL ...: unlike a multi-row VALUES,
        # SQLAlchemy can cache the compiled form of this one.
        selects = union_all(*(select(*row(i)) for i in range(rows)))
        return insert(self.table).from_select(list(_COLUMNS), selects)

    async def add(self, session: AsyncSession, event: Event) -> None:
        batch: list[Event] | None = session.info.get(self._BATCH_KEY)
        if batch is not None:
            batch.append(event)
            return
        await self._write(session, _parameters(event), 1)

    async def add_many(self, session: AsyncSession, events: Sequence[Event]) -> None:
        batch: list[Event] | None = session.info.get(self._BATCH_KEY)
        if batch is not None:
            batch.extend(events)
            return
        if events:
            await session.execute(insert(self.table), [outbox_row(e) for e in events])

    @asynccontextmanager
    async def batch(self, session: AsyncSession) -> AsyncIterator[None]:
        """Events added inside are written together, in one INSERT, when the block ends.

        A write that emits several events (a purchase: its points, then the purchase) saves a
        round trip per event. Inside the block the events are not in the table yet; if the
        block raises they are dropped (the transaction is rolled back anyway).
        """
        if self._BATCH_KEY in session.info:  # already batching: the outer block writes them
            yield
            return
        events: list[Event] = []
        session.info[self._BATCH_KEY] = events
        try:
            yield
        finally:
            del session.info[self._BATCH_KEY]
        if events:
            parameters: dict[str, Any] = {}
            for index, event in enumerate(events):
                parameters.update(_parameters(event, index))
            await self._write(session, parameters, len(events))

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
                event_json(e).decode(),
            )
            for e in events
        ]
        await copy_records(
            session,
            self.table,
            ["id", "type", "version", "brand_id", "subject_id", "occurred_at", "payload"],
            records,
        )
        return len(records)
