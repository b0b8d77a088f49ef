"""Earning rules written straight to the session, for tests of what rules pay."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.ids import new_id
from services.rewards.models import EarningRule, RuleKind


async def make_rule(
    session: AsyncSession,
    brand_id: uuid.UUID,
    activity: str,
    points: int | None = 10,
    *,
    name: str | None = None,
    kind: RuleKind = RuleKind.ACTIVITY,
    active: bool = True,
    **caps: int,
) -> EarningRule:
    rule = EarningRule(
        id=new_id(),
        brand_id=brand_id,
        name=name or f"{activity} bonus",
        kind=kind,
        activity=activity,
        points=points,
        active=active,
        **caps,
    )
    session.add(rule)
    await session.flush()
    return rule
