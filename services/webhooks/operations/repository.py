"""All SQL of webhook operations.

Lists run newest first by time, not by id: messages by `created_at` (the brand's index) and
attempts by `attempted_at` (the endpoint's index), ties broken by id. A page resumes after a
position (that time and id), written as `time <= t AND (time < t OR id < i)` so the time bound
is an index condition and a page deep in the list costs the same as the first."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, and_, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, aliased, defer

from services.webhooks.models import (
    Attempt,
    AttemptOutcome,
    Delivery,
    DeliveryStatus,
    Message,
)


@dataclass(frozen=True, slots=True)
class MessageFilters:
    event_type: str | None = None  # exact, or `prefix.*` (checked by the service)
    member_id: uuid.UUID | None = None
    endpoint_id: uuid.UUID | None = None  # messages with a delivery to it
    status: DeliveryStatus | None = None  # of that delivery, or of any delivery without one
    since: datetime | None = None  # created at or after
    until: datetime | None = None  # created before


@dataclass(frozen=True, slots=True)
class AttemptFilters:
    message_id: uuid.UUID | None = None
    endpoint_id: uuid.UUID | None = None
    since: datetime | None = None  # attempted at or after
    outcome: AttemptOutcome | None = None


# Where a newest-first page resumes: the time and id of the previous page's last row.
MessagePosition = tuple[datetime, uuid.UUID]
AttemptPosition = tuple[datetime, int]


def _older_than(
    time: InstrumentedAttribute[datetime],
    key: InstrumentedAttribute[Any],
    position: tuple[datetime, Any],
) -> ColumnElement[bool]:
    at, last = position
    return and_(time <= at, or_(time < at, key < last))


class OperationsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- Messages ------------------------------------------------------------------------------

    async def messages(
        self,
        brand_id: uuid.UUID,
        filters: MessageFilters,
        after: MessagePosition | None,
        limit: int,
    ) -> list[Message]:
        """Up to `limit` messages, newest first, without their payloads (lists do not show
        them, and they are most of a row)."""
        statement = (
            select(Message)
            .options(defer(Message.payload, raiseload=True))
            .where(Message.brand_id == brand_id)
        )
        if filters.event_type is not None and filters.event_type != "*":
            if filters.event_type.endswith(".*"):
                prefix = filters.event_type[:-1]  # keeps the dot: `points.*` is not `pointsx`
                statement = statement.where(Message.event_type.startswith(prefix, autoescape=True))
            else:
                statement = statement.where(Message.event_type == filters.event_type)
        if filters.member_id is not None:
            statement = statement.where(Message.member_id == filters.member_id)
        if filters.endpoint_id is not None or filters.status is not None:
            delivered = exists().where(
                Delivery.message_id == Message.id, Delivery.brand_id == brand_id
            )
            if filters.endpoint_id is not None:
                delivered = delivered.where(Delivery.endpoint_id == filters.endpoint_id)
            if filters.status is not None:
                delivered = delivered.where(Delivery.status == filters.status)
            statement = statement.where(delivered)
        if filters.since is not None:
            statement = statement.where(Message.created_at >= filters.since)
        if filters.until is not None:
            statement = statement.where(Message.created_at < filters.until)
        if after is not None:
            statement = statement.where(_older_than(Message.created_at, Message.id, after))
        statement = statement.order_by(Message.created_at.desc(), Message.id.desc()).limit(limit)
        return list((await self.session.scalars(statement)).all())

    async def message(self, brand_id: uuid.UUID, message_id: uuid.UUID) -> Message | None:
        return await self.session.scalar(
            select(Message).where(Message.brand_id == brand_id, Message.id == message_id)
        )

    async def message_position(
        self, brand_id: uuid.UUID, message_id: uuid.UUID
    ) -> MessagePosition | None:
        created_at = await self.session.scalar(
            select(Message.created_at).where(Message.brand_id == brand_id, Message.id == message_id)
        )
        return (created_at, message_id) if created_at is not None else None

    # --- Deliveries ----------------------------------------------------------------------------

    async def deliveries_of(self, brand_id: uuid.UUID, message_id: uuid.UUID) -> list[Delivery]:
        rows = await self.session.scalars(
            select(Delivery)
            .where(Delivery.brand_id == brand_id, Delivery.message_id == message_id)
            .order_by(Delivery.id)
        )
        return list(rows.all())

    async def delivery_for_update(
        self, brand_id: uuid.UUID, message_id: uuid.UUID, endpoint_id: uuid.UUID
    ) -> Delivery | None:
        """The delivery, locked: a worker cannot lease it between the caller's check and its
        change (the worker's lease waits, then sees the row as the caller left it)."""
        return await self.session.scalar(
            select(Delivery)
            .where(
                Delivery.brand_id == brand_id,
                Delivery.message_id == message_id,
                Delivery.endpoint_id == endpoint_id,
            )
            .with_for_update()
        )

    async def flush(self) -> None:
        await self.session.flush()

    async def recover_failed(
        self, brand_id: uuid.UUID, endpoint_id: uuid.UUID, since: datetime, now: datetime
    ) -> int:
        """Every failed delivery to the endpoint created at or after `since` is due again now,
        with a fresh schedule; how many."""
        result = await self.session.execute(
            update(Delivery)
            .where(
                Delivery.brand_id == brand_id,
                Delivery.endpoint_id == endpoint_id,
                Delivery.status == DeliveryStatus.FAILED,
                Delivery.created_at >= since,
            )
            .values(
                status=DeliveryStatus.PENDING,
                next_attempt_at=now,
                attempts=0,
                leased_until=None,
            )
            .execution_options(synchronize_session=False)
        )
        return cast(CursorResult[Any], result).rowcount

    # --- Attempts ------------------------------------------------------------------------------

    async def attempts(
        self,
        brand_id: uuid.UUID,
        filters: AttemptFilters,
        after: AttemptPosition | None,
        limit: int,
    ) -> list[Attempt]:
        statement = select(Attempt).where(Attempt.brand_id == brand_id)
        if filters.message_id is not None:
            statement = statement.where(Attempt.message_id == filters.message_id)
        if filters.endpoint_id is not None:
            statement = statement.where(Attempt.endpoint_id == filters.endpoint_id)
        if filters.since is not None:
            statement = statement.where(Attempt.attempted_at >= filters.since)
        if filters.outcome is not None:
            statement = statement.where(Attempt.outcome == filters.outcome)
        if after is not None:
            statement = statement.where(_older_than(Attempt.attempted_at, Attempt.id, after))
        statement = statement.order_by(Attempt.attempted_at.desc(), Attempt.id.desc()).limit(limit)
        return list((await self.session.scalars(statement)).all())

    async def attempt_position(
        self, brand_id: uuid.UUID, attempt_id: int
    ) -> AttemptPosition | None:
        attempted_at = await self.session.scalar(
            select(Attempt.attempted_at).where(
                Attempt.brand_id == brand_id, Attempt.id == attempt_id
            )
        )
        return (attempted_at, attempt_id) if attempted_at is not None else None

    # --- Retention -----------------------------------------------------------------------------

    async def brands_with_messages(self) -> list[uuid.UUID]:
        """Every brand that has messages, by a walk over the brand index (one probe per brand,
        not a scan of the table)."""
        first = select(Message.brand_id).order_by(Message.brand_id).limit(1)
        brands = select(first.scalar_subquery().label("brand_id")).cte("brands", recursive=True)
        later = aliased(Message)
        following = (
            select(later.brand_id)
            .where(later.brand_id > brands.c.brand_id)
            .order_by(later.brand_id)
            .limit(1)
        )
        brands = brands.union_all(
            select(following.scalar_subquery()).where(brands.c.brand_id.is_not(None))
        )
        rows = await self.session.scalars(
            select(brands.c.brand_id).where(brands.c.brand_id.is_not(None))
        )
        return list(rows.all())

    async def purge_batch(
        self,
        brand_id: uuid.UUID,
        created_before: datetime,
        created_from: datetime | None,
        batch: int,
    ) -> tuple[int, datetime | None]:
        """The brand's oldest `batch` messages created before the cutoff (and at or after
        `created_from`, where the previous batch ended), with their deliveries and attempts, in
        one statement: how many messages went, and the newest one's time.

        The batch is read once (MATERIALIZED) so the three deletes agree on it; starting where
        the previous batch ended spares the index scan the rows this transaction already
        deleted, which stay in the index until a vacuum."""
        doomed_query = select(Message.id).where(
            Message.brand_id == brand_id, Message.created_at < created_before
        )
        if created_from is not None:
            doomed_query = doomed_query.where(Message.created_at >= created_from)
        doomed = (
            doomed_query.order_by(Message.created_at)
            .limit(batch)
            .cte("doomed")
            .prefix_with("MATERIALIZED")
        )
        ids = select(doomed.c.id)
        attempts = delete(Attempt).where(Attempt.message_id.in_(ids)).cte("attempts_gone")
        deliveries = delete(Delivery).where(Delivery.message_id.in_(ids)).cte("deliveries_gone")
        messages = (
            delete(Message)
            .where(Message.id.in_(ids))
            .returning(Message.created_at)
            .cte("messages_gone")
        )
        statement = select(func.count(), func.max(messages.c.created_at)).add_cte(
            attempts, deliveries
        )
        gone, newest = (await self.session.execute(statement)).one()
        return int(gone), newest
