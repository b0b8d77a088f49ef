"""Public profiles: a member's name, reputation, trust level and follow counts, as every member
of the brand may see them (the same members `known_member` admits: not erased). Nothing private
(email, tier, suspension) is part of a profile. Functions here never commit."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.profiles.repository import ProfileRepository, ProfileRow


async def profiles(
    session: AsyncSession, brand_id: uuid.UUID, member_ids: list[uuid.UUID]
) -> list[ProfileRow]:
    return await ProfileRepository(session).many(brand_id, member_ids)
