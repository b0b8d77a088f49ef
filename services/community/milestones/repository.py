"""All SQL of milestones. Every query is scoped to a brand or a member resolved within one; the
anniversary sweep is the one query over every brand (it is the daily job's whole point)."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import DateTime, Integer, Text, cast, exists, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.milestones.models import ReachedMilestone, ReactionTally
from services.community.models import CommunityMember, Prompt
from services.kernel.db import table_of, unnest_rows
from services.kernel.ids import new_id
from services.kernel.pagination import PageRequest, keyset

_TALLIES = table_of(ReactionTally)


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

    async def lock_tallies(
        self, members: Collection[tuple[uuid.UUID, uuid.UUID]]
    ) -> dict[uuid.UUID, int]:
        """The (brand, member) pairs' received-reaction counts, locked in member order (rows are
        made at 0 where missing), so concurrent handlers count one after another and cannot
        deadlock. A member whose count belongs to another brand is left out."""
        if not members:
            return {}
        columns = [_TALLIES.c.brand_id, _TALLIES.c.member_id]
        await self.session.execute(
            insert(_TALLIES)
            .from_select(["brand_id", "member_id"], unnest_rows(columns, sorted(members)))
            .on_conflict_do_nothing()
        )
        wanted = unnest_rows(columns, sorted(members)).subquery()
        rows = await self.session.execute(
            select(_TALLIES.c.member_id, _TALLIES.c.received)
            .join(
                wanted,
                (_TALLIES.c.member_id == wanted.c.member_id)
                & (_TALLIES.c.brand_id == wanted.c.brand_id),
            )
            .order_by(_TALLIES.c.member_id)
            .with_for_update(of=_TALLIES)
        )
        return {row[0]: row[1] for row in rows}

    async def set_tallies(self, counts: Mapping[uuid.UUID, int]) -> None:
        """Writes the counts of members whose rows `lock_tallies` locked."""
        if not counts:
            return
        given = unnest_rows(
            [_TALLIES.c.member_id, _TALLIES.c.received], sorted(counts.items())
        ).subquery()
        await self.session.execute(
            update(_TALLIES)
            .where(_TALLIES.c.member_id == given.c.member_id)
            .values(received=given.c.received)
        )

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
