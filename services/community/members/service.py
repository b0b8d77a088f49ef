"""Rules about who may act in the community."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.errors import MemberNotFound, MemberSuspended, TrustLevelTooLow
from services.community.members.abilities import Ability, required_level
from services.community.members.repository import CommunityMemberRepository, MemberProfile
from services.community.models import CommunityMember
from services.kernel.clock import utcnow
from services.kernel.db import release_connection
from services.kernel.member_directory import MemberDirectory


def is_suspended(member: CommunityMember, now: datetime | None = None) -> bool:
    """Suspended by the members service, or by a moderation decision that has not run out."""
    if member.member_status != "active":
        return True
    until = member.suspended_until
    return until is not None and until > (now or utcnow())


async def known_member(
    session: AsyncSession,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    directory: MemberDirectory | None = None,
) -> CommunityMember:
    """The member, if the community knows them and they are not erased. One the community has
    not heard of yet (their `member.created` is on its way) is asked of `directory`, when
    given, and kept as the projection would have kept them (see `kernel.member_directory`)."""
    repository = CommunityMemberRepository(session)
    member = await repository.get(brand_id, member_id)
    if member is None and directory is not None:
        await release_connection(session)  # held through the call, it could starve the pool
        found = await directory.find(brand_id, member_id=member_id)
        if found is not None:
            profile = MemberProfile(
                brand_id, found.member_id, found.display_name, found.status, found.created_at
            )
            await repository.add_missing_profiles([profile])
            member = await repository.get(brand_id, member_id)
    if member is None or member.member_status == "erased":
        raise MemberNotFound(f"No member {member_id} in this brand's community (yet).")
    return member


async def active_member(
    session: AsyncSession,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    directory: MemberDirectory | None = None,
) -> CommunityMember:
    """The member, who must be free to act: known, active and not suspended."""
    member = await known_member(session, brand_id, member_id, directory)
    if is_suspended(member):
        raise MemberSuspended()
    return member


def require_ability(member: CommunityMember, ability: Ability) -> None:
    """403 `TrustLevelTooLow` unless the member's trust level unlocks `ability`."""
    needed = required_level(ability)
    if member.trust_level < needed:
        raise TrustLevelTooLow(
            f"{ability.value} needs trust level {needed}; this member is at "
            f"{member.trust_level}. Trust grows with approved contributions and reactions."
        )
