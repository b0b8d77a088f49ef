"""All SQL of groups and group memberships."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.models import Group, GroupMembership


class GroupRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, brand_id: uuid.UUID, group_id: uuid.UUID) -> Group | None:
        return await self.session.scalar(
            select(Group).where(Group.brand_id == brand_id, Group.id == group_id)
        )

    async def membership(self, group_id: uuid.UUID, member_id: uuid.UUID) -> GroupMembership | None:
        return await self.session.scalar(
            select(GroupMembership).where(
                GroupMembership.group_id == group_id, GroupMembership.member_id == member_id
            )
        )
