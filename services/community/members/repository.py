"""All SQL of the community's members projection."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.models import CommunityMember


class CommunityMemberRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, brand_id: uuid.UUID, member_id: uuid.UUID) -> CommunityMember | None:
        return await self.session.scalar(
            select(CommunityMember).where(
                CommunityMember.brand_id == brand_id, CommunityMember.member_id == member_id
            )
        )

    async def many(
        self, brand_id: uuid.UUID, member_ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, CommunityMember]:
        rows = await self.session.scalars(
            select(CommunityMember).where(
                CommunityMember.brand_id == brand_id, CommunityMember.member_id.in_(member_ids)
            )
        )
        return {row.member_id: row for row in rows}

    async def upsert_profile(
        self,
        *,
        brand_id: uuid.UUID,
        member_id: uuid.UUID,
        display_name: str | None,
        member_status: str,
        seen_at: datetime,
        joined: bool,
    ) -> None:
        """Insert or refresh a member from a members event. `member.created` (`joined`) fixes
        `joined_at`; other events only set it on a row they create."""
        set_: dict[str, object] = {"display_name": display_name, "member_status": member_status}
        if joined:
            set_["joined_at"] = seen_at
        await self.session.execute(
            insert(CommunityMember)
            .values(
                brand_id=brand_id,
                member_id=member_id,
                display_name=display_name,
                member_status=member_status,
                joined_at=seen_at,
            )
            .on_conflict_do_update(
                index_elements=[CommunityMember.member_id],
                set_=set_,
                where=CommunityMember.brand_id == brand_id,
            )
        )

    async def upsert_tier(
        self,
        *,
        brand_id: uuid.UUID,
        member_id: uuid.UUID,
        tier_id: uuid.UUID | None,
        tier_name: str | None,
        seen_at: datetime,
    ) -> None:
        """Record a tier change; the rewards stream may deliver it before the member's
        `member.created` arrives on the members stream, so it may create the row."""
        await self.session.execute(
            insert(CommunityMember)
            .values(
                brand_id=brand_id,
                member_id=member_id,
                joined_at=seen_at,
                tier_id=tier_id,
                tier_name=tier_name,
            )
            .on_conflict_do_update(
                index_elements=[CommunityMember.member_id],
                set_={"tier_id": tier_id, "tier_name": tier_name},
                where=CommunityMember.brand_id == brand_id,
            )
        )

    async def suspend(
        self, brand_id: uuid.UUID, member_id: uuid.UUID, until: datetime | None
    ) -> None:
        """Suspend from the community until `until`; None lifts a suspension."""
        await self.session.execute(
            update(CommunityMember)
            .where(CommunityMember.brand_id == brand_id, CommunityMember.member_id == member_id)
            .values(suspended_until=until)
        )
