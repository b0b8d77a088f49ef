"""All SQL of tiers: the ladder, window spend, tier changes and the review's reads."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import any_, exists, func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.rewards.models import (
    Account,
    Campaign,
    Drop,
    Perk,
    Program,
    Purchase,
    Tier,
    TierChange,
)


class TierRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def ladder(self, brand_id: uuid.UUID) -> Sequence[Tier]:
        """Every tier of the brand, by rank."""
        statement = select(Tier).where(Tier.brand_id == brand_id).order_by(Tier.rank)
        return (await self.session.scalars(statement)).all()

    async def get(
        self, brand_id: uuid.UUID, tier_id: uuid.UUID, *, for_update: bool = False
    ) -> Tier | None:
        statement = select(Tier).where(Tier.brand_id == brand_id, Tier.id == tier_id)
        if for_update:
            statement = statement.with_for_update().execution_options(populate_existing=True)
        return (await self.session.scalars(statement)).one_or_none()

    async def add(self, tier: Tier) -> None:
        self.session.add(tier)
        await self.session.flush()

    async def save(self, tier: Tier) -> None:
        await self.session.flush()

    async def delete(self, tier: Tier) -> None:
        await self.session.delete(tier)
        await self.session.flush()

    async def in_use(self, tier_id: uuid.UUID) -> bool:
        """Whether a member holds or held the tier, or a perk, campaign or drop names it."""
        used = await self.session.scalar(
            select(literal(True)).where(
                or_(
                    exists().where(Account.tier_id == tier_id),
                    exists().where(
                        or_(TierChange.from_tier_id == tier_id, TierChange.to_tier_id == tier_id)
                    ),
                    exists().where(any_(Perk.tier_ids) == tier_id),
                    exists().where(any_(Campaign.tier_ids) == tier_id),
                    exists().where(any_(Drop.early_tier_ids) == tier_id),
                )
            )
        )
        return bool(used)

    async def keep(self, tier_id: uuid.UUID) -> bool:
        """FOR KEY SHARE on the tier: it cannot be deleted before this transaction ends.

        False when it is already gone (deleted by a transaction that committed meanwhile).
        """
        kept = await self.session.scalar(
            select(Tier.id).where(Tier.id == tier_id).with_for_update(read=True, key_share=True)
        )
        return kept is not None

    # --- spend ---

    async def spend(
        self, member_id: uuid.UUID, starts_at: datetime, ends_at: datetime | None
    ) -> int:
        """Qualifying spend: purchases in [starts_at, ends_at) less what was returned of them."""
        statement = select(
            func.coalesce(func.sum(Purchase.amount_minor - Purchase.returned_minor), 0)
        ).where(Purchase.member_id == member_id, Purchase.occurred_at >= starts_at)
        if ends_at is not None:
            statement = statement.where(Purchase.occurred_at < ends_at)
        return int(await self.session.scalar(statement) or 0)

    async def spend_by_member(
        self, member_ids: Collection[uuid.UUID], starts_at: datetime, ends_at: datetime | None
    ) -> dict[uuid.UUID, int]:
        if not member_ids:
            return {}
        statement = (
            select(
                Purchase.member_id,
                func.sum(Purchase.amount_minor - Purchase.returned_minor),
            )
            .where(Purchase.member_id.in_(member_ids), Purchase.occurred_at >= starts_at)
            .group_by(Purchase.member_id)
        )
        if ends_at is not None:
            statement = statement.where(Purchase.occurred_at < ends_at)
        rows = await self.session.execute(statement)
        return {member_id: int(total or 0) for member_id, total in rows}

    # --- members' tiers ---

    async def move_member(
        self,
        member_id: uuid.UUID,
        *,
        from_tier_id: uuid.UUID | None,
        to_tier_id: uuid.UUID,
        since: datetime,
    ) -> bool:
        """Sets the member's tier if it still is `from_tier_id`; False when it changed meanwhile."""
        current = (
            Account.tier_id.is_(None) if from_tier_id is None else Account.tier_id == from_tier_id
        )
        row = (
            await self.session.execute(
                update(Account)
                .where(Account.member_id == member_id, current)
                .values(tier_id=to_tier_id, tier_since=since)
                .returning(Account.member_id)
                .execution_options(synchronize_session=False)
            )
        ).one_or_none()
        return row is not None

    async def record_change(self, change: TierChange) -> None:
        self.session.add(change)
        await self.session.flush()

    async def brands_with_tiers(self) -> Sequence[Program]:
        statement = (
            select(Program)
            .where(exists().where(Tier.brand_id == Program.brand_id))
            .order_by(Program.brand_id)
        )
        return (await self.session.scalars(statement)).all()

    async def tiered_members(
        self, brand_id: uuid.UUID, after: uuid.UUID | None = None, limit: int | None = None
    ) -> list[tuple[uuid.UUID, uuid.UUID, datetime | None]]:
        """(member_id, tier_id, tier_since) of the brand's members who hold a tier, in member
        id order: after `after`, at most `limit` of them (None: all)."""
        statement = (
            select(Account.member_id, Account.tier_id, Account.tier_since)
            .where(Account.brand_id == brand_id, Account.tier_id.is_not(None))
            .order_by(Account.member_id)
            .limit(limit)
        )
        if after is not None:
            statement = statement.where(Account.member_id > after)
        rows = await self.session.execute(statement)
        return [
            (member_id, tier_id, since) for member_id, tier_id, since in rows if tier_id is not None
        ]
