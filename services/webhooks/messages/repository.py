"""All SQL of the message intake."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.webhooks.models import Attempt, Delivery, Endpoint, Message, SegmentMember


class IntakeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def enter_segment(self, pairs: Sequence[tuple[uuid.UUID, uuid.UUID]]) -> None:
        if pairs:
            await self.session.execute(
                insert(SegmentMember)
                .values([{"segment_id": s, "member_id": m} for s, m in pairs])
                .on_conflict_do_nothing()
            )

    async def exit_segment(self, pairs: Sequence[tuple[uuid.UUID, uuid.UUID]]) -> None:
        if pairs:
            await self.session.execute(
                delete(SegmentMember).where(
                    tuple_(SegmentMember.segment_id, SegmentMember.member_id).in_(pairs)
                )
            )

    async def enabled_endpoints(self, brand_ids: Iterable[uuid.UUID]) -> list[Endpoint]:
        rows = await self.session.scalars(
            select(Endpoint)
            .where(Endpoint.brand_id.in_(set(brand_ids)), Endpoint.enabled)
            .order_by(Endpoint.id)
        )
        return list(rows.all())

    async def in_segments(
        self, pairs: Iterable[tuple[uuid.UUID, uuid.UUID]]
    ) -> set[tuple[uuid.UUID, uuid.UUID]]:
        wanted = list(set(pairs))
        if not wanted:
            return set()
        rows = await self.session.execute(
            select(SegmentMember.segment_id, SegmentMember.member_id).where(
                tuple_(SegmentMember.segment_id, SegmentMember.member_id).in_(wanted)
            )
        )
        return {(segment_id, member_id) for segment_id, member_id in rows}

    async def forget_member(
        self, brand_id: uuid.UUID, member_id: uuid.UUID, keep: uuid.UUID
    ) -> None:
        """Drop the member's messages and their deliveries, delivered or not (their payloads
        carry personal data), and the attempt log of those, except `keep`: the erasure itself,
        which CRMs need."""
        await self.session.execute(
            delete(Attempt).where(
                Attempt.brand_id == brand_id,
                Attempt.message_id.in_(
                    select(Message.id).where(
                        Message.brand_id == brand_id,
                        Message.member_id == member_id,
                        Message.id != keep,
                    )
                ),
            )
        )
        await self.session.execute(
            delete(Delivery).where(
                Delivery.brand_id == brand_id,
                Delivery.member_id == member_id,
                Delivery.message_id != keep,
            )
        )
        await self.session.execute(
            delete(Message).where(
                Message.brand_id == brand_id, Message.member_id == member_id, Message.id != keep
            )
        )

    async def add(
        self, messages: Sequence[dict[str, Any]], deliveries: Sequence[dict[str, Any]]
    ) -> None:
        """Messages and their deliveries; a message or delivery seen before is left as it is.
        Rows go as parameters of one cached statement (SQLAlchemy batches them into multi-row
        INSERTs), not as literal VALUES compiled afresh for every batch size."""
        if messages:
            await self.session.execute(insert(Message).on_conflict_do_nothing(), list(messages))
        if deliveries:
            await self.session.execute(
                insert(Delivery).on_conflict_do_nothing(
                    index_elements=["message_id", "endpoint_id"]
                ),
                list(deliveries),
            )
