"""All SQL of earning rules and campaigns. Every query filters by brand."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.pagination import PageRequest, keyset
from services.rewards.models import ActivityAward, Campaign, EarningRule, RuleKind, Tier


class EarningRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- rules ---

    async def add_rule(self, rule: EarningRule) -> None:
        self.session.add(rule)
        await self.session.flush()

    async def rule(
        self, brand_id: uuid.UUID, rule_id: uuid.UUID, *, for_update: bool = False
    ) -> EarningRule | None:
        statement = select(EarningRule).where(
            EarningRule.brand_id == brand_id, EarningRule.id == rule_id
        )
        if for_update:
            statement = statement.with_for_update().execution_options(populate_existing=True)
        return (await self.session.scalars(statement)).one_or_none()

    async def rules_page(
        self,
        brand_id: uuid.UUID,
        page: PageRequest,
        *,
        kind: RuleKind | None,
        active: bool | None,
    ) -> Sequence[EarningRule]:
        statement = select(EarningRule).where(EarningRule.brand_id == brand_id)
        if kind is not None:
            statement = statement.where(EarningRule.kind == kind)
        if active is not None:
            statement = statement.where(EarningRule.active == active)
        return (await self.session.scalars(keyset(statement, EarningRule.id, page))).all()

    async def rule_has_awards(self, rule_id: uuid.UUID) -> bool:
        found = await self.session.scalar(select(exists().where(ActivityAward.rule_id == rule_id)))
        return bool(found)

    async def delete_rule(self, rule: EarningRule) -> None:
        await self.session.delete(rule)
        await self.session.flush()

    async def multiplier_rules(self, brand_id: uuid.UUID) -> Sequence[EarningRule]:
        """Every active sku and category multiplier rule of the brand (what purchases may use)."""
        statement = select(EarningRule).where(
            EarningRule.brand_id == brand_id,
            EarningRule.active.is_(True),
            EarningRule.kind.in_([RuleKind.SKU_MULTIPLIER, RuleKind.CATEGORY_MULTIPLIER]),
            EarningRule.multiplier.is_not(None),
        )
        return (await self.session.scalars(statement)).all()

    async def activity_rules(self, brand_id: uuid.UUID, activity: str) -> Sequence[EarningRule]:
        """The active activity rules for this activity, oldest first (the order they pay in)."""
        statement = (
            select(EarningRule)
            .where(
                EarningRule.brand_id == brand_id,
                EarningRule.kind == RuleKind.ACTIVITY,
                EarningRule.activity == activity,
                EarningRule.active.is_(True),
            )
            .order_by(EarningRule.id)
        )
        return (await self.session.scalars(statement)).all()

    async def award_counts(
        self,
        member_id: uuid.UUID,
        rule_id: uuid.UUID,
        *,
        day: tuple[datetime, datetime],
        month: tuple[datetime, datetime],
    ) -> tuple[int, int, int]:
        """How many times the rule paid the member: in the day, in the month, ever."""
        at = ActivityAward.awarded_at
        row = (
            await self.session.execute(
                select(
                    func.count().filter(at >= day[0], at < day[1]),
                    func.count().filter(at >= month[0], at < month[1]),
                    func.count(),
                ).where(ActivityAward.member_id == member_id, ActivityAward.rule_id == rule_id)
            )
        ).one()
        return int(row[0]), int(row[1]), int(row[2])

    # --- campaigns ---

    async def add_campaign(self, campaign: Campaign) -> None:
        self.session.add(campaign)
        await self.session.flush()

    async def campaign(
        self, brand_id: uuid.UUID, campaign_id: uuid.UUID, *, for_update: bool = False
    ) -> Campaign | None:
        statement = select(Campaign).where(
            Campaign.brand_id == brand_id, Campaign.id == campaign_id
        )
        if for_update:
            statement = statement.with_for_update().execution_options(populate_existing=True)
        return (await self.session.scalars(statement)).one_or_none()

    async def campaigns_page(
        self,
        brand_id: uuid.UUID,
        page: PageRequest,
        *,
        live_at: datetime | None,
        active: bool | None,
    ) -> Sequence[Campaign]:
        statement = select(Campaign).where(Campaign.brand_id == brand_id)
        if live_at is not None:
            statement = statement.where(Campaign.starts_at <= live_at, Campaign.ends_at > live_at)
        if active is not None:
            statement = statement.where(Campaign.active == active)
        return (await self.session.scalars(keyset(statement, Campaign.id, page))).all()

    async def delete_campaign(self, campaign: Campaign) -> None:
        await self.session.delete(campaign)
        await self.session.flush()

    async def active_campaigns(self, brand_id: uuid.UUID) -> Sequence[Campaign]:
        """Every active campaign of the brand, whatever its window (purchases pick by time)."""
        statement = select(Campaign).where(Campaign.brand_id == brand_id, Campaign.active.is_(True))
        return (await self.session.scalars(statement)).all()

    async def flush(self) -> None:
        await self.session.flush()

    # --- tiers (campaign audiences name them) ---

    async def known_tier_ids(
        self, brand_id: uuid.UUID, tier_ids: Collection[uuid.UUID]
    ) -> set[uuid.UUID]:
        if not tier_ids:
            return set()
        rows = await self.session.scalars(
            select(Tier.id).where(Tier.brand_id == brand_id, Tier.id.in_(tier_ids))
        )
        return set(rows)
