"""All SQL of reputation and badges. Every query filters by brand, or by a member or badge id
already resolved within the brand."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, func, select
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
from services.kernel.ids import new_id
from services.kernel.pagination import PageRequest, keyset


@dataclass(frozen=True, slots=True)
class Change:
    """One row of reputation history about to be written."""

    key: str
    content_id: uuid.UUID
    delta: int
    reason: ReputationReason


class ReputationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_member(
        self, brand_id: uuid.UUID, member_id: uuid.UUID
    ) -> CommunityMember | None:
        """The member row, locked: one member's reputation changes run one at a time."""
        return await self.session.scalar(
            select(CommunityMember)
            .where(CommunityMember.brand_id == brand_id, CommunityMember.member_id == member_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )

    async def key_net(self, member_id: uuid.UUID, key: str) -> int:
        """What the grant named `key` still contributes to the member's reputation."""
        total = await self.session.scalar(
            select(func.coalesce(func.sum(ReputationEvent.delta), 0)).where(
                ReputationEvent.member_id == member_id, ReputationEvent.key == key
            )
        )
        return int(total or 0)

    async def outstanding_under(
        self, member_id: uuid.UUID, content_id: uuid.UUID
    ) -> list[tuple[str, int]]:
        """Every grant under a post or comment that still contributes, with what it does."""
        net = func.sum(ReputationEvent.delta)
        rows = await self.session.execute(
            select(ReputationEvent.key, net)
            .where(ReputationEvent.member_id == member_id, ReputationEvent.content_id == content_id)
            .group_by(ReputationEvent.key)
            .having(net != 0)
            .order_by(ReputationEvent.key)
        )
        return [(key, int(total)) for key, total in rows]

    async def record(
        self,
        brand_id: uuid.UUID,
        member_id: uuid.UUID,
        changes: Sequence[Change],
        *,
        source_event_id: uuid.UUID,
        at: datetime,
    ) -> int:
        """Writes the changes (those this event already wrote are skipped); returns the sum of
        the deltas written."""
        if not changes:
            return 0
        written = await self.session.scalars(
            insert(ReputationEvent)
            .values(
                [
                    {
                        "id": new_id(),
                        "brand_id": brand_id,
                        "member_id": member_id,
                        "delta": change.delta,
                        "reason": change.reason,
                        "key": change.key,
                        "content_id": change.content_id,
                        "source_event_id": source_event_id,
                        "created_at": at,
                    }
                    for change in changes
                ]
            )
            .on_conflict_do_nothing()
            .returning(ReputationEvent.delta)
        )
        return sum(written)

    async def set_standing(
        self, member: CommunityMember, *, reputation: int, trust_level: int, locked: bool
    ) -> None:
        """Writes the member's reputation and trust level (the row is locked by the caller)."""
        member.reputation = reputation
        member.trust_level = trust_level
        member.trust_level_locked = locked
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
        self, brand_id: uuid.UUID, member_id: uuid.UUID, reputation: int
    ) -> Sequence[Badge]:
        """Reputation badges whose threshold the member has reached and who lacks them."""
        held = exists().where(MemberBadge.badge_id == Badge.id, MemberBadge.member_id == member_id)
        return (
            await self.session.scalars(
                select(Badge)
                .where(
                    Badge.brand_id == brand_id,
                    Badge.reputation_threshold <= reputation,
                    ~held,
                )
                .order_by(Badge.reputation_threshold, Badge.id)
            )
        ).all()

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
