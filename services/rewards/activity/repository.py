"""All SQL of activity points: the rules that match an activity, awards and their cap counts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import distinct, extract, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.rewards.models import Account, ActivityAward, AwardState, EarningRule, RuleKind


@dataclass(frozen=True, slots=True)
class AwardCounts:
    """How many times a rule paid a member: in a UTC day, a UTC month, and ever."""

    day: int
    month: int
    lifetime: int


class ActivityRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def rules_for(self, brand_id: uuid.UUID, activity: str) -> Sequence[EarningRule]:
        """The brand's active activity rules for this activity, oldest first."""
        result = await self.session.scalars(
            select(EarningRule)
            .where(
                EarningRule.brand_id == brand_id,
                EarningRule.kind == RuleKind.ACTIVITY,
                EarningRule.activity == activity,
                EarningRule.active.is_(True),
            )
            .order_by(EarningRule.id)
        )
        return result.all()

    async def award_exists(self, rule_id: uuid.UUID, event_id: uuid.UUID) -> bool:
        found = await self.session.scalar(
            select(ActivityAward.id).where(
                ActivityAward.rule_id == rule_id, ActivityAward.event_id == event_id
            )
        )
        return found is not None

    async def award_counts(
        self,
        member_id: uuid.UUID,
        rule_id: uuid.UUID,
        *,
        day: tuple[datetime, datetime],
        month: tuple[datetime, datetime],
    ) -> AwardCounts:
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
        return AwardCounts(int(row[0]), int(row[1]), int(row[2]))

    async def add_award(self, award: dict[str, object]) -> bool:
        """Records an award; False when this rule already paid this event (a redelivery)."""
        inserted = await self.session.scalar(
            insert(ActivityAward)
            .values(award)
            .on_conflict_do_nothing(index_elements=[ActivityAward.rule_id, ActivityAward.event_id])
            .returning(ActivityAward.id)
        )
        return inserted is not None

    async def content_awards(
        self, brand_id: uuid.UUID, content_key: str, state: AwardState
    ) -> list[ActivityAward]:
        result = await self.session.scalars(
            select(ActivityAward)
            .where(
                ActivityAward.brand_id == brand_id,
                ActivityAward.content_key == content_key,
                ActivityAward.state == state,
            )
            .order_by(ActivityAward.id)
        )
        return list(result.all())

    async def set_state(self, award_ids: Sequence[uuid.UUID], state: AwardState) -> None:
        if award_ids:
            await self.session.execute(
                update(ActivityAward).where(ActivityAward.id.in_(award_ids)).values(state=state)
            )

    # --- birthdays ---

    async def rules_by_brand(self, activity: str) -> dict[uuid.UUID, list[uuid.UUID]]:
        """Every brand with active rules for this activity, in brand id order, and those rules."""
        rows = await self.session.execute(
            select(EarningRule.brand_id, EarningRule.id)
            .where(
                EarningRule.kind == RuleKind.ACTIVITY,
                EarningRule.activity == activity,
                EarningRule.active.is_(True),
            )
            .order_by(EarningRule.brand_id, EarningRule.id)
        )
        rules: dict[uuid.UUID, list[uuid.UUID]] = {}
        for brand_id, rule_id in rows:
            rules.setdefault(brand_id, []).append(rule_id)
        return rules

    async def birthday_members(
        self,
        brand_id: uuid.UUID,
        *,
        month: int,
        rule_ids: Sequence[uuid.UUID],
        since: datetime,
        after: uuid.UUID | None,
        limit: int,
    ) -> list[uuid.UUID]:
        """Active members born in `month` whom some of these rules have not paid since `since`."""
        paid = (
            select(func.count(distinct(ActivityAward.rule_id)))
            .where(
                ActivityAward.member_id == Account.member_id,
                ActivityAward.rule_id.in_(rule_ids),
                ActivityAward.awarded_at >= since,
            )
            .scalar_subquery()
        )
        statement = select(Account.member_id).where(
            Account.brand_id == brand_id,
            Account.member_status == "active",
            Account.birthday.is_not(None),
            extract("month", Account.birthday) == month,
            paid < len(rule_ids),
        )
        if after is not None:
            statement = statement.where(Account.member_id > after)
        result = await self.session.scalars(statement.order_by(Account.member_id).limit(limit))
        return list(result.all())
