"""All SQL of milestones. Every query is scoped to a brand or a member resolved within one; the
anniversary sweep is the one query over every brand (it is the daily job's whole point)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import DateTime, Integer, Text, cast, exists, func, literal, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.milestones.models import ReachedMilestone, ReactionTally
from services.community.models import CommunityMember, Prompt
from services.kernel.ids import new_id
from services.kernel.pagination import PageRequest, keyset


@dataclass(frozen=True, slots=True)
class DueAnniversary:
    brand_id: uuid.UUID
    member_id: uuid.UUID
    years: int
    due_at: datetime  # the anniversary itself: joined_at plus `years` calendar years, in UTC


@dataclass(frozen=True, slots=True)
class Reached:
    brand_id: uuid.UUID
    member_id: uuid.UUID
    milestone: str
    reached_at: datetime


class MilestoneRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record(self, reached: Sequence[Reached]) -> list[ReachedMilestone]:
        """Inserts the milestones not reached before and returns those (in the given order);
        the others were already there, and stay as first recorded."""
        if not reached:
            return []
        rows = await self.session.scalars(
            insert(ReachedMilestone)
            .values(
                [
                    {
                        "id": new_id(),
                        "brand_id": r.brand_id,
                        "member_id": r.member_id,
                        "milestone": r.milestone,
                        "reached_at": r.reached_at,
                    }
                    for r in reached
                ]
            )
            .on_conflict_do_nothing(
                index_elements=[ReachedMilestone.member_id, ReachedMilestone.milestone]
            )
            .returning(ReachedMilestone)
        )
        return sorted(rows, key=lambda row: row.id)

    async def has(self, brand_id: uuid.UUID, member_id: uuid.UUID, milestone: str) -> bool:
        return bool(
            await self.session.scalar(
                select(
                    exists().where(
                        ReachedMilestone.brand_id == brand_id,
                        ReachedMilestone.member_id == member_id,
                        ReachedMilestone.milestone == milestone,
                    )
                )
            )
        )

    async def page(
        self, brand_id: uuid.UUID, member_id: uuid.UUID, page: PageRequest
    ) -> Sequence[ReachedMilestone]:
        statement = select(ReachedMilestone).where(
            ReachedMilestone.brand_id == brand_id, ReachedMilestone.member_id == member_id
        )
        return (
            await self.session.scalars(
                keyset(statement, ReachedMilestone.id, page, newest_first=True)
            )
        ).all()

    async def tally_reactions(self, brand_id: uuid.UUID, member_id: uuid.UUID, delta: int) -> int:
        """Moves the member's received-reactions count by `delta` (never below zero) and
        returns it. The upsert locks the row, so concurrent handlers count one after another."""
        return (
            await self.session.execute(
                insert(ReactionTally)
                .values(brand_id=brand_id, member_id=member_id, received=max(delta, 0))
                .on_conflict_do_update(
                    index_elements=[ReactionTally.member_id],
                    set_={"received": func.greatest(ReactionTally.received + delta, 0)},
                    where=ReactionTally.brand_id == brand_id,
                )
                .returning(ReactionTally.received)
            )
        ).scalar_one()

    async def due_anniversaries(self, now: datetime, catch_up: timedelta) -> list[DueAnniversary]:
        """Active members whose latest join anniversary (whole years, UTC calendar) fell within
        `catch_up` before `now` and is not recorded yet. Older ones are left alone: a member is
        celebrated on (or soon after) the day, not months later when a deployment starts."""
        at = literal(now, DateTime(timezone=True))
        joined_utc = func.timezone("UTC", CommunityMember.joined_at)
        years = cast(func.extract("year", func.age(func.timezone("UTC", at), joined_utc)), Integer)
        members = (
            select(
                CommunityMember.brand_id,
                CommunityMember.member_id,
                CommunityMember.joined_at,
                years.label("years"),
            )
            .where(
                CommunityMember.member_status == "active",
                CommunityMember.joined_at <= now - timedelta(days=365),
            )
            .subquery()
        )
        due_at = func.timezone(
            "UTC", func.timezone("UTC", members.c.joined_at) + func.make_interval(members.c.years)
        )
        key = literal("anniversary:") + cast(members.c.years, Text)
        statement = select(
            members.c.brand_id, members.c.member_id, members.c.years, due_at.label("due_at")
        ).where(
            members.c.years >= 1,
            due_at > now - catch_up,
            ~exists().where(
                ReachedMilestone.member_id == members.c.member_id,
                ReachedMilestone.milestone == key,
            ),
        )
        rows = await self.session.execute(statement.order_by(members.c.member_id))
        return [DueAnniversary(*row) for row in rows]

    async def add_prompt(self, prompt: Prompt) -> None:
        self.session.add(prompt)
        await self.session.flush()
