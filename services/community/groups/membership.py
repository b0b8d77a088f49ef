"""The one check every part of the community makes before a member acts in a group (posts,
comments on group posts, prompts for a group): the group exists in the brand and the member
is an active member of it, not one who left or was removed."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.groups.errors import GroupNotFound, NotAGroupMember, RemovedFromGroup
from services.community.groups.repository import GroupRepository
from services.community.models import Group, GroupMembership, MembershipStatus


async def require_group(session: AsyncSession, brand_id: uuid.UUID, group_id: uuid.UUID) -> Group:
    group = await GroupRepository(session).get(brand_id, group_id)
    if group is None or group.archived:
        raise GroupNotFound(f"No group {group_id} in this brand.")
    return group


async def require_active_membership(
    session: AsyncSession, brand_id: uuid.UUID, group_id: uuid.UUID, member_id: uuid.UUID
) -> GroupMembership:
    await require_group(session, brand_id, group_id)
    membership = await GroupRepository(session).membership(group_id, member_id)
    if membership is None or membership.status == MembershipStatus.LEFT:
        raise NotAGroupMember()
    if membership.status == MembershipStatus.REMOVED:
        raise RemovedFromGroup()
    return membership
