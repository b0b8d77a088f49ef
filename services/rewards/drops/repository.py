"""All SQL of fair drops: drops, their entries, and the account locks a draw takes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.pagination import PageRequest, keyset
from services.rewards.models import Account, Drop, DropEntry, DropStatus


@dataclass(frozen=True, slots=True)
class DropFilters:
    status: DropStatus | None = None
    perk_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class EntryResult:
    member_id: uuid.UUID
    position: int
    outcome: str | None
    redemption_id: uuid.UUID | None


class DropRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- drops ---

    async def add(self, drop: Drop) -> None:
        self.session.add(drop)
        await self.session.flush()

    async def get(self, brand_id: uuid.UUID, drop_id: uuid.UUID) -> Drop | None:
        statement = (
            select(Drop)
            .where(Drop.brand_id == brand_id, Drop.id == drop_id)
            .execution_options(populate_existing=True)
        )
        return (await self.session.scalars(statement)).one_or_none()

    async def lock(
        self, drop_id: uuid.UUID, brand_id: uuid.UUID | None = None, *, skip_locked: bool = False
    ) -> Drop | None:
        """The drop row, locked until the transaction ends (serialises draws and edits).

        With `skip_locked`, None when another transaction holds it (the job skips that drop).
        """
        statement = (
            select(Drop)
            .where(Drop.id == drop_id)
            .with_for_update(skip_locked=skip_locked)
            .execution_options(populate_existing=True)
        )
        if brand_id is not None:
            statement = statement.where(Drop.brand_id == brand_id)
        return (await self.session.scalars(statement)).one_or_none()

    async def page(
        self, brand_id: uuid.UUID, filters: DropFilters, page: PageRequest
    ) -> Sequence[Drop]:
        statement = select(Drop).where(Drop.brand_id == brand_id)
        if filters.status is not None:
            statement = statement.where(Drop.status == filters.status)
        if filters.perk_id is not None:
            statement = statement.where(Drop.perk_id == filters.perk_id)
        return (await self.session.scalars(keyset(statement, Drop.id, page))).all()

    async def member_page(
        self, brand_id: uuid.UUID, member_id: uuid.UUID, page: PageRequest
    ) -> Sequence[tuple[Drop, DropEntry | None]]:
        """The brand's drops, newest first, each with the member's entry if any."""
        statement = (
            select(Drop, DropEntry)
            .outerjoin(
                DropEntry, and_(DropEntry.drop_id == Drop.id, DropEntry.member_id == member_id)
            )
            .where(Drop.brand_id == brand_id)
        )
        rows = await self.session.execute(keyset(statement, Drop.id, page, newest_first=True))
        return [(row[0], row[1]) for row in rows]

    async def member_drops_by_ids(
        self, brand_id: uuid.UUID, member_id: uuid.UUID, ids: Sequence[uuid.UUID]
    ) -> Sequence[tuple[Drop, DropEntry | None]]:
        """These drops of the brand, each with the member's entry if any (one query)."""
        if not ids:
            return []
        statement = (
            select(Drop, DropEntry)
            .outerjoin(
                DropEntry, and_(DropEntry.drop_id == Drop.id, DropEntry.member_id == member_id)
            )
            .where(Drop.brand_id == brand_id, Drop.id.in_(ids))
            .order_by(Drop.id)
        )
        rows = await self.session.execute(statement)
        return [(row[0], row[1]) for row in rows]

    async def delete(self, drop: Drop) -> None:
        await self.session.delete(drop)
        await self.session.flush()

    async def reserved_units(self, perk_id: uuid.UUID, *, besides: uuid.UUID | None) -> int:
        """Units promised to the perk's drops not drawn yet (other than `besides`)."""
        statement = select(func.coalesce(func.sum(Drop.units), 0)).where(
            Drop.perk_id == perk_id, Drop.status == DropStatus.SCHEDULED
        )
        if besides is not None:
            statement = statement.where(Drop.id != besides)
        return int(await self.session.scalar(statement) or 0)

    async def due(self, now: datetime) -> Sequence[uuid.UUID]:
        """Every brand's drops whose entries have closed and that are not drawn yet."""
        statement = (
            select(Drop.id)
            .where(Drop.status == DropStatus.SCHEDULED, Drop.closes_at <= now)
            .order_by(Drop.closes_at, Drop.id)
        )
        return (await self.session.scalars(statement)).all()

    # --- entries ---

    async def entry(self, drop_id: uuid.UUID, member_id: uuid.UUID) -> DropEntry | None:
        statement = (
            select(DropEntry)
            .where(DropEntry.drop_id == drop_id, DropEntry.member_id == member_id)
            .execution_options(populate_existing=True)
        )
        return (await self.session.scalars(statement)).one_or_none()

    async def insert_entry(self, values: dict[str, Any]) -> DropEntry | None:
        """The new entry, or None when the member had already entered (a concurrent request)."""
        statement = (
            insert(DropEntry)
            .values(values)
            .on_conflict_do_nothing(index_elements=[DropEntry.drop_id, DropEntry.member_id])
            .returning(DropEntry)
        )
        return (await self.session.scalars(statement)).one_or_none()

    async def entries(self, drop_id: uuid.UUID) -> Sequence[DropEntry]:
        statement = (
            select(DropEntry)
            .where(DropEntry.drop_id == drop_id)
            .order_by(DropEntry.member_id)
            .execution_options(populate_existing=True)
        )
        return (await self.session.scalars(statement)).all()

    async def has_entries(self, drop_id: uuid.UUID) -> bool:
        found = await self.session.scalar(
            select(DropEntry.member_id).where(DropEntry.drop_id == drop_id).limit(1)
        )
        return found is not None

    async def lock_entrants(self, drop_id: uuid.UUID) -> None:
        """Locks every entrant's account, in member id order, before the draw redeems anything.

        Redeeming and cancelling lock an account and then the perk row; a draw, which redeems
        for many members while it holds the perk row, takes all its account locks first, so
        the two orders can never cross into a deadlock.
        """
        await self.session.execute(
            select(Account.member_id)
            .where(
                Account.member_id.in_(
                    select(DropEntry.member_id).where(DropEntry.drop_id == drop_id)
                )
            )
            .order_by(Account.member_id)
            .with_for_update()
        )

    async def record_results(self, drop_id: uuid.UUID, results: Sequence[EntryResult]) -> None:
        if not results:
            return
        await self.session.execute(
            update(DropEntry),
            [
                {
                    "drop_id": drop_id,
                    "member_id": r.member_id,
                    "position": r.position,
                    "won": r.outcome == "won",
                    "outcome": r.outcome,
                    "redemption_id": r.redemption_id,
                }
                for r in results
            ],
        )
