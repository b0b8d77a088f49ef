"""Groups: interest communities members join. Functions here never commit.

**Kinds.** Staff create brand-run groups (no owner, no members at first). A member with the
`create_groups` ability (trust level 2) creates a member-run group: they own it and are its first
moderator and member. A slug is unique within the brand (derived from the name unless given).

**Who may change a group.** Staff (`community:write`) always; otherwise only the group's active
moderators may update it, archive it, promote or demote moderators, remove or reinstate members.
Archived groups disappear for members (404 `GroupNotFound`) and take no new posts or joins.

**Membership.** Joining makes the member active (a new row, or back after leaving) and emits
`group.joined`; joining again while active changes nothing. Leaving sets `left`. Removing sets
`removed` (also for a member who never joined, so they cannot join later): a removed member
cannot join (403 `RemovedFromGroup`) or act in the group (`require_active_membership`) until
staff or a moderator reinstates them (back to `left`: they may join again). `member_count` counts
active members and moves with each of these changes. A member-run group always keeps one active
moderator (409 `LastModerator`).
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.access import Actor
from services.community.groups.errors import (
    CannotRemoveSelf,
    GroupNotFound,
    GroupSlugTaken,
    LastModerator,
    NotActiveInGroup,
    NotGroupModerator,
    NotRemoved,
    RemovedFromGroup,
)
from services.community.groups.events import GroupJoined, GroupJoinedData
from services.community.groups.membership import require_group
from services.community.groups.repository import GroupRepository
from services.community.groups.schemas import GroupCreate, GroupUpdate
from services.community.members.abilities import Ability
from services.community.members.service import known_member, require_ability
from services.community.models import (
    OUTBOX,
    CommunityMember,
    Group,
    GroupKind,
    GroupMembership,
    GroupRole,
    MembershipStatus,
)
from services.kernel.clock import utcnow
from services.kernel.ids import new_id
from services.kernel.pagination import PageRequest


def slugify(name: str) -> str:
    """`Curly hair & care!` → `curly-hair-care`; accents are folded to plain letters."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")
    return slug[:60].rstrip("-") or "group"


def _joined_event(group: Group, membership: GroupMembership, *, created: bool) -> GroupJoined:
    return GroupJoined(
        brand_id=group.brand_id,
        subject_id=membership.member_id,
        data=GroupJoinedData(
            group_id=group.id,
            member_id=membership.member_id,
            group_kind=group.kind,
            slug=group.slug,
            name=group.name,
            created_group=created,
        ),
    )


async def create_group(session: AsyncSession, actor: Actor, payload: GroupCreate) -> Group:
    member = actor.member
    if member is not None:
        require_ability(member, Ability.CREATE_GROUPS)
    slug = payload.slug or slugify(payload.name)
    group = Group(
        id=new_id(),
        brand_id=actor.brand_id,
        slug=slug,
        name=payload.name,
        description=payload.description,
        kind=GroupKind.MEMBER if member is not None else GroupKind.BRAND,
        owner_id=member.member_id if member is not None else None,
        member_count=1 if member is not None else 0,
        archived=False,
        created_at=utcnow(),
    )
    groups = GroupRepository(session)
    if not await groups.add(group):
        raise GroupSlugTaken(
            f"The slug {slug!r} is taken in this brand; send another `slug`.",
        )
    if member is not None:
        membership = await groups.join(
            actor.brand_id, group.id, member.member_id, GroupRole.MODERATOR
        )
        assert membership is not None  # a brand-new group has no members yet
        await OUTBOX.add(session, _joined_event(group, membership, created=True))
    return await get_group(session, actor, group.id)


async def get_group(session: AsyncSession, actor: Actor, group_id: uuid.UUID) -> Group:
    """Staff also see archived groups; members only live ones."""
    if actor.staff is None:
        return await require_group(session, actor.brand_id, group_id)
    group = await GroupRepository(session).get(actor.brand_id, group_id)
    if group is None:
        raise GroupNotFound(f"No group {group_id} in this brand.")
    return group


async def list_groups(
    session: AsyncSession, actor: Actor, page: PageRequest, *, archived: bool
) -> Sequence[Group]:
    # Archived groups are for staff only: a member asking for them gets the live ones.
    return await GroupRepository(session).page(
        actor.brand_id, page, archived=archived and actor.staff is not None
    )


async def _require_manager(
    session: AsyncSession, actor: Actor, group_id: uuid.UUID, *, lock: bool = True
) -> Group:
    """The live group (locked for a change, unless `lock` is off for a read), if the actor is
    staff or one of its active moderators."""
    groups = GroupRepository(session)
    group = await groups.get(actor.brand_id, group_id, for_update=lock)
    if group is None or group.archived:
        raise GroupNotFound(f"No group {group_id} in this brand.")
    if actor.member is not None:
        mine = await groups.membership(group_id, actor.member.member_id)
        if (
            mine is None
            or mine.status != MembershipStatus.ACTIVE
            or mine.role != GroupRole.MODERATOR
        ):
            raise NotGroupModerator()
    return group


async def update_group(
    session: AsyncSession, actor: Actor, group_id: uuid.UUID, payload: GroupUpdate
) -> Group:
    group = await _require_manager(session, actor, group_id)
    values = payload.model_dump(exclude_unset=True, exclude_none=True)
    if values:
        await GroupRepository(session).update(group_id, values)
        await session.refresh(group)
    return group


async def archive_group(session: AsyncSession, actor: Actor, group_id: uuid.UUID) -> Group:
    """Archive the group: it leaves every member-facing list and takes no new posts or joins."""
    group = await _require_manager(session, actor, group_id)
    await GroupRepository(session).update(group_id, {"archived": True})
    await session.refresh(group)
    return group


# --- Membership -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JoinResult:
    membership: GroupMembership
    joined: bool  # False: the member was already active


async def join_group(
    session: AsyncSession, member: CommunityMember, group_id: uuid.UUID
) -> JoinResult:
    group = await require_group(session, member.brand_id, group_id)
    groups = GroupRepository(session)
    membership = await groups.join(member.brand_id, group_id, member.member_id, GroupRole.MEMBER)
    if membership is not None:
        await groups.change_member_count(group_id, +1)
        await OUTBOX.add(session, _joined_event(group, membership, created=False))
        return JoinResult(membership, joined=True)
    existing = await groups.membership(group_id, member.member_id)
    assert existing is not None
    if existing.status == MembershipStatus.REMOVED:
        raise RemovedFromGroup()
    return JoinResult(existing, joined=False)


async def _keeps_a_moderator(
    groups: GroupRepository, group: Group, membership: GroupMembership
) -> None:
    """Refuse to take the last active moderator away from a member-run group."""
    if (
        group.kind == GroupKind.MEMBER
        and membership.role == GroupRole.MODERATOR
        and membership.status == MembershipStatus.ACTIVE
        and await groups.active_moderator_count(group.id) <= 1
    ):
        raise LastModerator()


async def leave_group(session: AsyncSession, member: CommunityMember, group_id: uuid.UUID) -> None:
    """Leave the group; leaving a group one is not in (or was removed from) changes nothing."""
    group = await require_group(session, member.brand_id, group_id)
    groups = GroupRepository(session)
    membership = await groups.membership(group_id, member.member_id, for_update=True)
    if membership is None or membership.status != MembershipStatus.ACTIVE:
        return
    await _keeps_a_moderator(groups, group, membership)
    await groups.set_membership(
        group_id, member.member_id, status=MembershipStatus.LEFT, role=GroupRole.MEMBER
    )
    await groups.change_member_count(group_id, -1)


async def list_members(
    session: AsyncSession,
    actor: Actor,
    group_id: uuid.UUID,
    page: PageRequest,
    *,
    status: MembershipStatus,
    role: GroupRole | None,
) -> Sequence[GroupMembership]:
    """Anyone in the brand sees a group's active members; who left or was removed is for staff
    and the group's moderators."""
    if status != MembershipStatus.ACTIVE and actor.staff is None:
        await _require_manager(session, actor, group_id, lock=False)
    else:
        await get_group(session, actor, group_id)
    return await GroupRepository(session).members_page(group_id, status, role, page)


async def _active_target(
    groups: GroupRepository, group_id: uuid.UUID, member_id: uuid.UUID
) -> GroupMembership:
    membership = await groups.membership(group_id, member_id, for_update=True)
    if membership is None or membership.status != MembershipStatus.ACTIVE:
        raise NotActiveInGroup(f"Member {member_id} is not an active member of this group.")
    return membership


async def promote(
    session: AsyncSession, actor: Actor, group_id: uuid.UUID, member_id: uuid.UUID
) -> GroupMembership:
    await _require_manager(session, actor, group_id)
    groups = GroupRepository(session)
    await _active_target(groups, group_id, member_id)
    return await groups.set_membership(group_id, member_id, role=GroupRole.MODERATOR)


async def demote(
    session: AsyncSession, actor: Actor, group_id: uuid.UUID, member_id: uuid.UUID
) -> GroupMembership:
    group = await _require_manager(session, actor, group_id)
    groups = GroupRepository(session)
    membership = await _active_target(groups, group_id, member_id)
    await _keeps_a_moderator(groups, group, membership)
    return await groups.set_membership(group_id, member_id, role=GroupRole.MEMBER)


async def remove_member(
    session: AsyncSession, actor: Actor, group_id: uuid.UUID, member_id: uuid.UUID
) -> GroupMembership:
    group = await _require_manager(session, actor, group_id)
    if actor.member_id == member_id:
        raise CannotRemoveSelf()
    await known_member(session, actor.brand_id, member_id)
    groups = GroupRepository(session)
    membership = await groups.membership(group_id, member_id, for_update=True)
    if membership is None:
        return await groups.ban(actor.brand_id, group_id, member_id)
    if membership.status == MembershipStatus.REMOVED:
        return membership
    await _keeps_a_moderator(groups, group, membership)
    if membership.status == MembershipStatus.ACTIVE:
        await groups.change_member_count(group_id, -1)
    return await groups.set_membership(
        group_id, member_id, status=MembershipStatus.REMOVED, role=GroupRole.MEMBER
    )


async def reinstate_member(
    session: AsyncSession, actor: Actor, group_id: uuid.UUID, member_id: uuid.UUID
) -> GroupMembership:
    """Lift a removal: the member may join again (they are not re-added by this)."""
    await _require_manager(session, actor, group_id)
    groups = GroupRepository(session)
    membership = await groups.membership(group_id, member_id, for_update=True)
    if membership is None or membership.status != MembershipStatus.REMOVED:
        raise NotRemoved(f"Member {member_id} is not removed from this group.")
    return await groups.set_membership(group_id, member_id, status=MembershipStatus.LEFT)
