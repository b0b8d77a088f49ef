"""All SQL of public profiles."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.models import CommunityMember
from services.community.social.models import Follow

# One array parameter for a batch of ids, however many.
_IDS = bindparam("ids", type_=ARRAY(UUID(as_uuid=True)))


@dataclass(frozen=True, slots=True)
class ProfileRow:
    member_id: uuid.UUID
    display_name: str | None
    reputation: int
    trust_level: int
    follower_count: int
    following_count: int


class ProfileRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def many(self, brand_id: uuid.UUID, member_ids: Sequence[uuid.UUID]) -> list[ProfileRow]:
        """The brand's members among these ids (erased ones left out) with their follow counts,
        in one statement (the counts read the follows' `followee_id` / `follower_id` indexes)."""
        followers = (
            select(func.count())
            .where(Follow.followee_id == CommunityMember.member_id)
            .scalar_subquery()
        )
        following = (
            select(func.count())
            .where(Follow.follower_id == CommunityMember.member_id)
            .scalar_subquery()
        )
        statement = (
            select(
                CommunityMember.member_id,
                CommunityMember.display_name,
                CommunityMember.reputation,
                CommunityMember.trust_level,
                followers,
                following,
            )
            .where(
                CommunityMember.brand_id == brand_id,
                CommunityMember.member_id == any_(_IDS),
                CommunityMember.member_status != "erased",
            )
            .order_by(CommunityMember.member_id)
        )
        rows = await self.session.execute(statement, {"ids": list(member_ids)})
        return [ProfileRow(*row) for row in rows]
