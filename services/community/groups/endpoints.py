"""REST for the community's groups: staff and members share these routes; the service decides
what each may do (see `services.community.groups.service`)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Query, Response

from services.community.access import CurrentMember, ReadingActor, WritingActor
from services.community.groups import service
from services.community.groups.schemas import (
    GroupCreate,
    GroupRead,
    GroupUpdate,
    MembershipRead,
    ModeratorAdd,
)
from services.community.models import GroupRole, MembershipStatus
from services.kernel.db import SessionDep
from services.kernel.pagination import Page, PageDep
from services.kernel.routing import Router

router = Router(prefix="/community/v1", tags=["community: groups"])

_MANAGE_ERRORS: dict[int | str, dict[str, str]] = {
    403: {"description": "NotGroupModerator, MemberSuspended"},
    404: {"description": "GroupNotFound (unknown, archived or of another brand)"},
}


@router.post(
    "/groups",
    status_code=201,
    response_model=GroupRead,
    summary="Create a group (staff: brand-run; a member: member-run, moderated by them)",
    responses={
        403: {"description": "TrustLevelTooLow (members need trust level 2), MemberSuspended"},
        409: {"description": "GroupSlugTaken"},
    },
)
async def create_group(payload: GroupCreate, session: SessionDep, actor: WritingActor) -> GroupRead:
    return GroupRead.model_validate(await service.create_group(session, actor, payload))


@router.get("/groups", response_model=Page[GroupRead], summary="List groups, oldest first")
async def list_groups(
    session: SessionDep,
    actor: ReadingActor,
    page: PageDep,
    archived: Annotated[bool, Query(description="Archived groups instead (staff only).")] = False,
) -> Page[GroupRead]:
    groups = await service.list_groups(session, actor, page, archived=archived)
    return Page[GroupRead].of(groups, page, key=lambda g: g.id, item=GroupRead.model_validate)


@router.get(
    "/groups/{group_id}",
    response_model=GroupRead,
    summary="Get a group",
    responses={404: {"description": "GroupNotFound"}},
)
async def get_group(group_id: uuid.UUID, session: SessionDep, actor: ReadingActor) -> GroupRead:
    return GroupRead.model_validate(await service.get_group(session, actor, group_id))


@router.patch(
    "/groups/{group_id}",
    response_model=GroupRead,
    summary="Change a group (staff or its moderators)",
    responses=_MANAGE_ERRORS,
)
async def update_group(
    group_id: uuid.UUID, payload: GroupUpdate, session: SessionDep, actor: WritingActor
) -> GroupRead:
    return GroupRead.model_validate(await service.update_group(session, actor, group_id, payload))


@router.post(
    "/groups/{group_id}/archive",
    response_model=GroupRead,
    summary="Archive a group (staff or its moderators)",
    responses=_MANAGE_ERRORS,
)
async def archive_group(group_id: uuid.UUID, session: SessionDep, actor: WritingActor) -> GroupRead:
    return GroupRead.model_validate(await service.archive_group(session, actor, group_id))


# --- Membership -------------------------------------------------------------------------------


@router.post(
    "/groups/{group_id}/members",
    status_code=201,
    response_model=MembershipRead,
    summary="Join a group (201 when joined now, 200 when already a member)",
    responses={
        200: {"description": "Already an active member: nothing changed"},
        403: {"description": "RemovedFromGroup, MemberSuspended"},
        404: {"description": "GroupNotFound"},
    },
)
async def join_group(
    group_id: uuid.UUID, session: SessionDep, me: CurrentMember, response: Response
) -> MembershipRead:
    result = await service.join_group(session, me, group_id)
    if not result.joined:
        response.status_code = 200
    return MembershipRead.model_validate(result.membership)


@router.delete(
    "/groups/{group_id}/members/me",
    status_code=204,
    summary="Leave a group",
    responses={404: {"description": "GroupNotFound"}, 409: {"description": "LastModerator"}},
)
async def leave_group(group_id: uuid.UUID, session: SessionDep, me: CurrentMember) -> Response:
    await service.leave_group(session, me, group_id)
    return Response(status_code=204)


@router.get(
    "/groups/{group_id}/members",
    response_model=Page[MembershipRead],
    summary="A group's members (who left or was removed: staff and moderators only)",
    responses=_MANAGE_ERRORS,
)
async def list_members(
    group_id: uuid.UUID,
    session: SessionDep,
    actor: ReadingActor,
    page: PageDep,
    status: MembershipStatus = MembershipStatus.ACTIVE,
    role: GroupRole | None = None,
) -> Page[MembershipRead]:
    rows = await service.list_members(session, actor, group_id, page, status=status, role=role)
    return Page[MembershipRead].of(
        rows, page, key=lambda m: m.member_id, item=MembershipRead.model_validate
    )


@router.delete(
    "/groups/{group_id}/members/{member_id}",
    response_model=MembershipRead,
    summary="Remove a member from a group: they may not act in it or rejoin",
    responses={
        **_MANAGE_ERRORS,
        409: {"description": "CannotRemoveSelf, LastModerator"},
    },
)
async def remove_member(
    group_id: uuid.UUID, member_id: uuid.UUID, session: SessionDep, actor: WritingActor
) -> MembershipRead:
    membership = await service.remove_member(session, actor, group_id, member_id)
    return MembershipRead.model_validate(membership)


@router.post(
    "/groups/{group_id}/members/{member_id}/reinstate",
    response_model=MembershipRead,
    summary="Lift a removal: the member may join again",
    responses={**_MANAGE_ERRORS, 409: {"description": "NotRemoved"}},
)
async def reinstate_member(
    group_id: uuid.UUID, member_id: uuid.UUID, session: SessionDep, actor: WritingActor
) -> MembershipRead:
    membership = await service.reinstate_member(session, actor, group_id, member_id)
    return MembershipRead.model_validate(membership)


@router.post(
    "/groups/{group_id}/moderators",
    response_model=MembershipRead,
    summary="Make an active member a moderator of the group",
    responses={**_MANAGE_ERRORS, 409: {"description": "NotActiveInGroup"}},
)
async def promote(
    group_id: uuid.UUID, payload: ModeratorAdd, session: SessionDep, actor: WritingActor
) -> MembershipRead:
    membership = await service.promote(session, actor, group_id, payload.member_id)
    return MembershipRead.model_validate(membership)


@router.delete(
    "/groups/{group_id}/moderators/{member_id}",
    response_model=MembershipRead,
    summary="Make a moderator a plain member again",
    responses={**_MANAGE_ERRORS, 409: {"description": "NotActiveInGroup, LastModerator"}},
)
async def demote(
    group_id: uuid.UUID, member_id: uuid.UUID, session: SessionDep, actor: WritingActor
) -> MembershipRead:
    membership = await service.demote(session, actor, group_id, member_id)
    return MembershipRead.model_validate(membership)
