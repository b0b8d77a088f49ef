"""All SQL of groups and group memberships. Every query is scoped by brand, or by a group id
already resolved within the brand."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.models import (
    Group,
    GroupMembership,
    GroupRole,
    MembershipStatus,
)
from services.kernel.pagination import PageRequest, keyset


class GroupRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(
        self, brand_id: uuid.UUID, group_id: uuid.UUID, *, for_update: bool = False
    ) -> Group | None:
        statement = select(Group).where(Group.brand_id == brand_id, Group.id == group_id)
        if for_update:
            statement = statement.with_for_update()
        return await self.session.scalar(statement)

    async def membership(
        self, group_id: uuid.UUID, member_id: uuid.UUID, *, for_update: bool = False
    ) -> GroupMembership | None:
        statement = select(GroupMembership).where(
            GroupMembership.group_id == group_id, GroupMembership.member_id == member_id
        )
        if for_update:
            statement = statement.with_for_update()
        return await self.session.scalar(statement)

    async def add(self, group: Group) -> bool:
        """Insert the group; False when the brand already has a group with its slug (a
        concurrent create included: the unique constraint decides)."""
        inserted = await self.session.scalar(
            insert(Group)
            .values(
                id=group.id,
                brand_id=group.brand_id,
                slug=group.slug,
                name=group.name,
                description=group.description,
                kind=group.kind,
                owner_id=group.owner_id,
                member_count=group.member_count,
                archived=False,
                created_at=group.created_at,
            )
            .on_conflict_do_nothing(index_elements=[Group.brand_id, Group.slug])
            .returning(Group.id)
        )
        return inserted is not None

    async def page(
        self, brand_id: uuid.UUID, page: PageRequest, *, archived: bool
    ) -> Sequence[Group]:
        statement = select(Group).where(Group.brand_id == brand_id, Group.archived == archived)
        return (await self.session.scalars(keyset(statement, Group.id, page))).all()

    async def update(self, group_id: uuid.UUID, values: dict[str, Any]) -> None:
        await self.session.execute(update(Group).where(Group.id == group_id).values(**values))

    async def change_member_count(self, group_id: uuid.UUID, delta: int) -> None:
        await self.session.execute(
            update(Group)
            .where(Group.id == group_id)
            .values(member_count=Group.member_count + delta)
        )

    async def join(
        self, brand_id: uuid.UUID, group_id: uuid.UUID, member_id: uuid.UUID, role: GroupRole
    ) -> GroupMembership | None:
        """Make the member active in the group, as a new member or back after leaving, in one
        statement (so two concurrent joins count once). None when nothing changed: the member
        was already active, or was removed (the caller tells which)."""
        now = func.now()
        return await self.session.scalar(
            insert(GroupMembership)
            .values(
                group_id=group_id,
                member_id=member_id,
                brand_id=brand_id,
                role=role,
                status=MembershipStatus.ACTIVE,
            )
            .on_conflict_do_update(
                index_elements=[GroupMembership.group_id, GroupMembership.member_id],
                set_={
                    "status": MembershipStatus.ACTIVE,
                    "role": role,
                    "joined_at": now,
                    "updated_at": now,
                },
                where=GroupMembership.status == MembershipStatus.LEFT,
            )
            .returning(GroupMembership)
            .execution_options(populate_existing=True)
        )

    async def set_membership(
        self,
        group_id: uuid.UUID,
        member_id: uuid.UUID,
        *,
        status: MembershipStatus | None = None,
        role: GroupRole | None = None,
    ) -> GroupMembership:
        values: dict[str, Any] = {"updated_at": func.now()}
        if status is not None:
            values["status"] = status
        if role is not None:
            values["role"] = role
        membership = await self.session.scalar(
            update(GroupMembership)
            .where(GroupMembership.group_id == group_id, GroupMembership.member_id == member_id)
            .values(**values)
            .returning(GroupMembership)
            .execution_options(populate_existing=True)
        )
        assert membership is not None  # callers lock the row first
        return membership

    async def ban(
        self, brand_id: uuid.UUID, group_id: uuid.UUID, member_id: uuid.UUID
    ) -> GroupMembership:
        """Record a member who never joined as removed, so they cannot join later."""
        membership = await self.session.scalar(
            insert(GroupMembership)
            .values(
                group_id=group_id,
                member_id=member_id,
                brand_id=brand_id,
                role=GroupRole.MEMBER,
                status=MembershipStatus.REMOVED,
            )
            .on_conflict_do_update(
                index_elements=[GroupMembership.group_id, GroupMembership.member_id],
                set_={"status": MembershipStatus.REMOVED, "updated_at": func.now()},
            )
            .returning(GroupMembership)
            .execution_options(populate_existing=True)
        )
        assert membership is not None
        return membership

    async def active_moderator_count(self, group_id: uuid.UUID) -> int:
        count = await self.session.scalar(
            select(func.count()).where(
                GroupMembership.group_id == group_id,
                GroupMembership.role == GroupRole.MODERATOR,
                GroupMembership.status == MembershipStatus.ACTIVE,
            )
        )
        return int(count or 0)

    async def members_page(
        self,
        group_id: uuid.UUID,
        status: MembershipStatus,
        role: GroupRole | None,
        page: PageRequest,
    ) -> Sequence[GroupMembership]:
        statement = select(GroupMembership).where(
            GroupMembership.group_id == group_id, GroupMembership.status == status
        )
        if role is not None:
            statement = statement.where(GroupMembership.role == role)
        return (
            await self.session.scalars(keyset(statement, GroupMembership.member_id, page))
        ).all()

    async def moderated_group_ids(
        self, brand_id: uuid.UUID, member_id: uuid.UUID
    ) -> list[uuid.UUID]:
        """The live groups the member actively moderates."""
        rows = await self.session.scalars(
            select(GroupMembership.group_id)
            .join(Group, Group.id == GroupMembership.group_id)
            .where(
                GroupMembership.brand_id == brand_id,
                GroupMembership.member_id == member_id,
                GroupMembership.role == GroupRole.MODERATOR,
                GroupMembership.status == MembershipStatus.ACTIVE,
                Group.archived.is_(False),
            )
        )
        return list(rows)
