"""All SQL of payments in points: finding what a source was already charged or refunded."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.rewards.models import EntryKind, LedgerEntry


class PaymentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def settled_points(
        self, brand_id: uuid.UUID, source_type: str, source_id: str, kind: EntryKind
    ) -> int | None:
        """The points of the source's entries of `kind` (None when there are none)."""
        total = await self.session.scalar(
            select(func.sum(LedgerEntry.points)).where(
                LedgerEntry.brand_id == brand_id,
                LedgerEntry.source_type == source_type,
                LedgerEntry.source_id == source_id,
                LedgerEntry.kind == kind,
            )
        )
        return None if total is None else int(total)
