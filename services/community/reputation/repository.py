"""All SQL of reputation and badges. Every query filters by brand, or by a member or badge id
already resolved within the brand."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, exists, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.challenges.models import Challenge
from services.community.models import CommunityMember
from services.community.reputation.models import (
    Badge,
    BadgeSource,
    MemberBadge,
    ReputationEvent,
    ReputationReason,
)
from services.kernel.db import table_of, unnest_rows
from services.kernel.ids import new_id
from services.kernel.pagination import PageRequest, keyset

_EVENTS = table_of(ReputationEvent)
_MEMBERS = table_of(CommunityMember)


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One row of reputation history about to be written."""

    brand_id: uuid.UUID
    member_id: uuid.UUID
    key: str
    content_id: uuid.UUID
    delta: int
    reason: ReputationReason
    source_event_id: uuid.UUID
    at: datetime


@dataclass(frozen=True, slots=True)
class StandingChange:
    """A member's reputation and trust level about to be written."""

    member: CommunityMember
    reputation: int
    trust_level: int
    locked: bool


class ReputationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_members(
        self, member_ids: Collection[uuid.UUID]
    ) -> dict[uuid.UUID, CommunityMember]:
        """The members' rows, locked in id order (so two consumers locking overlapping sets
        cannot deadlock): one member's reputation changes run one at a time."""
        found = await self.session.scalars(
            select(CommunityMember)
            .where(CommunityMember.member_id.in_(sorted(member_ids)))
            .order_by(CommunityMember.member_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return {member.member_id: member for member in found}

    async def nets(
        self,
        keys: Collection[tuple[uuid.UUID, str]],
        contents: Collection[tuple[uuid.UUID, uuid.UUID]],
    ) -> list[tuple[uuid.UUID, str, uuid.UUID, int]]:
        """What each grant still contributes, as (member, key, content, net), for the grants
        named by (member, key) in `keys` and for every grant under a (member, content) in
        `contents`. A grant never written is absent (it contributes nothing)."""
        net = func.sum(ReputationEvent.delta).label("net")
        found: list[tuple[uuid.UUID, str, uuid.UUID, int]] = []
        by_key = [_EVENTS.c.member_id, _EVENTS.c.key]
        by_content = [_EVENTS.c.member_id, _EVENTS.c.content_id]
        for columns, pairs in ((by_key, keys), (by_content, contents)):
            if not pairs:
                continue
            wanted = unnest_rows(columns, sorted(pairs)).subquery()
            rows = await self.session.execute(
                select(
                    ReputationEvent.member_id,
                    ReputationEvent.key,
                    ReputationEvent.content_id,
                    net,
                )
                .join(
                    wanted,
                    and_(*(column == wanted.c[column.name] for column in columns)),
                )
                .group_by(
                    ReputationEvent.member_id, ReputationEvent.key, ReputationEvent.content_id
                )
            )
            found.extend((row[0], row[1], row[2], int(row[3])) for row in rows)
        return found

    async def record(self, rows: Sequence[HistoryRow]) -> set[tuple[uuid.UUID, uuid.UUID, str]]:
        """Writes the history rows in one statement (a row its event already wrote is skipped);
        returns the (source event, member, key) of those written."""
        if not rows:
            return set()
        columns = [
            _EVENTS.c[name]
            for name in (
                "id",
                "brand_id",
                "member_id",
                "delta",
                "reason",
                "key",
                "content_id",
                "source_event_id",
                "created_at",
            )
        ]
        written = await self.session.execute(
            insert(_EVENTS)
            .from_select(
                [column.name for column in columns],
                unnest_rows(
                    columns,
                    [
                        (
                            new_id(),
                            row.brand_id,
                            row.member_id,
                            row.delta,
                            row.reason,
                            row.key,
                            row.content_id,
                            row.source_event_id,
                            row.at,
                        )
                        for row in rows
                    ],
                ),
            )
            .on_conflict_do_nothing()
            .returning(_EVENTS.c.source_event_id, _EVENTS.c.member_id, _EVENTS.c.key)
        )
        return {(row[0], row[1], row[2]) for row in written}

    async def set_standings(self, standings: Sequence[StandingChange]) -> None:
        """Writes members' reputation and trust level (their rows are locked by the caller), in
        one flush."""
        for standing in standings:
            standing.member.reputation = standing.reputation
            standing.member.trust_level = standing.trust_level
            standing.member.trust_level_locked = standing.locked
        await self.session.flush()

    async def history(
        self, brand_id: uuid.UUID, member_id: uuid.UUID, page: PageRequest
    ) -> Sequence[ReputationEvent]:
        statement = select(ReputationEvent).where(
            ReputationEvent.brand_id == brand_id, ReputationEvent.member_id == member_id
        )
        return (
            await self.session.scalars(
                keyset(statement, ReputationEvent.id, page, newest_first=True)
            )
        ).all()


class BadgeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, badge: Badge) -> None:
        self.session.add(badge)
        await self.session.flush()

    async def get(
        self, brand_id: uuid.UUID, badge_id: uuid.UUID, *, for_update: bool = False
    ) -> Badge | None:
        statement = select(Badge).where(Badge.brand_id == brand_id, Badge.id == badge_id)
        if for_update:
            statement = statement.with_for_update()
        return await self.session.scalar(statement)

    async def name_taken(
        self, brand_id: uuid.UUID, name: str, *, other_than: uuid.UUID | None = None
    ) -> bool:
        statement = select(exists().where(Badge.brand_id == brand_id, Badge.name == name))
        if other_than is not None:
            statement = select(
                exists().where(
                    Badge.brand_id == brand_id, Badge.name == name, Badge.id != other_than
                )
            )
        return bool(await self.session.scalar(statement))

    async def page(self, brand_id: uuid.UUID, page: PageRequest) -> Sequence[Badge]:
        statement = select(Badge).where(Badge.brand_id == brand_id)
        return (await self.session.scalars(keyset(statement, Badge.id, page))).all()

    async def in_use(self, badge_id: uuid.UUID) -> bool:
        """Held by a member, or offered by a challenge."""
        return bool(
            await self.session.scalar(
                select(
                    exists().where(MemberBadge.badge_id == badge_id)
                    | exists().where(Challenge.badge_id == badge_id)
                )
            )
        )

    async def delete(self, badge: Badge) -> None:
        await self.session.delete(badge)
        await self.session.flush()

    async def award(
        self,
        brand_id: uuid.UUID,
        badge_id: uuid.UUID,
        member_id: uuid.UUID,
        *,
        source: BadgeSource,
        challenge_id: uuid.UUID | None,
        at: datetime,
    ) -> bool:
        """Gives the badge unless the member holds it already; True when given now."""
        given = await self.session.scalar(
            insert(MemberBadge)
            .values(
                id=new_id(),
                brand_id=brand_id,
                badge_id=badge_id,
                member_id=member_id,
                source=source,
                challenge_id=challenge_id,
                awarded_at=at,
            )
            .on_conflict_do_nothing(index_elements=[MemberBadge.badge_id, MemberBadge.member_id])
            .returning(MemberBadge.id)
        )
        return given is not None

    async def reached_not_held(
        self, peaks: Sequence[tuple[uuid.UUID, uuid.UUID, int]]
    ) -> list[tuple[uuid.UUID, Badge]]:
        """For each (brand, member, reputation) in `peaks`: the brand's reputation badges whose
        threshold that reputation reaches and that the member lacks, as (member, badge), by
        member then threshold."""
        if not peaks:
            return []
        reached = unnest_rows(
            [_MEMBERS.c.brand_id, _MEMBERS.c.member_id, _MEMBERS.c.reputation], peaks
        ).subquery()
        held = exists().where(
            MemberBadge.badge_id == Badge.id, MemberBadge.member_id == reached.c.member_id
        )
        rows = await self.session.execute(
            select(reached.c.member_id, Badge)
            .join(
                reached,
                and_(
                    Badge.brand_id == reached.c.brand_id,
                    Badge.reputation_threshold <= reached.c.reputation,
                ),
            )
            .where(~held)
            .order_by(reached.c.member_id, Badge.reputation_threshold, Badge.id)
        )
        return [(row[0], row[1]) for row in rows]

    async def held(
        self, brand_id: uuid.UUID, member_id: uuid.UUID, page: PageRequest
    ) -> Sequence[tuple[MemberBadge, Badge]]:
        """The member's badges, most recently awarded first."""
        statement = (
            select(MemberBadge, Badge)
            .join(Badge, Badge.id == MemberBadge.badge_id)
            .where(MemberBadge.brand_id == brand_id, MemberBadge.member_id == member_id)
        )
        rows = await self.session.execute(
            keyset(statement, MemberBadge.id, page, newest_first=True)
        )
        return [(held, badge) for held, badge in rows]
