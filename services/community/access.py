"""Who may call the community's routes: staff keys with the community scopes, members acting as
themselves (`CurrentMember`: known to the community, active and not suspended), and routes that
admit either (`WritingActor`, `ReadingActor`): the brand's staff and its members share many
routes (a group's moderators may change it, staff always may; members and the back office read
the same boards), so those take an `Actor` and the service decides what each may do."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from services.community.members.service import active_member, known_member
from services.community.models import CommunityMember
from services.kernel.auth import (
    MemberDep,
    MemberPrincipal,
    PrincipalDep,
    Scope,
    StaffPrincipal,
    require_staff,
)
from services.kernel.db import SessionDep
from services.kernel.member_directory import MemberDirectory

StaffRead = Annotated[StaffPrincipal, Depends(require_staff(Scope.COMMUNITY_READ))]
StaffWrite = Annotated[StaffPrincipal, Depends(require_staff(Scope.COMMUNITY_WRITE))]


async def _directory(request: Request) -> MemberDirectory:
    """Where a member the community has not heard of yet is looked up: a member acting as
    themselves just after sign-up is not told they do not exist."""
    return MemberDirectory.of(request.app, caller="community")


async def _current_member(
    principal: MemberDep, session: SessionDep, request: Request
) -> CommunityMember:
    return await active_member(
        session, principal.brand_id, principal.member_id, await _directory(request)
    )


async def _reading_member(
    principal: MemberDep, session: SessionDep, request: Request
) -> CommunityMember:
    return await known_member(
        session, principal.brand_id, principal.member_id, await _directory(request)
    )


def principal_of(member: CommunityMember) -> MemberPrincipal:
    """The member as a caller (what idempotency keys are namespaced by)."""
    return MemberPrincipal(brand_id=member.brand_id, member_id=member.member_id)


# Where the routes look up another member the community has not heard of yet (one followed,
# or whose lists are read, a moment after they joined).
DirectoryDep = Annotated[MemberDirectory, Depends(_directory)]
# A member who may act (post, comment, react, book): 404 if unknown, 403 if suspended.
CurrentMember = Annotated[CommunityMember, Depends(_current_member)]
# A member who may read (suspended members still read): 404 if unknown.
ReadingMember = Annotated[CommunityMember, Depends(_reading_member)]


@dataclass(frozen=True, slots=True)
class Actor:
    """Exactly one of `staff` and `member` is set."""

    brand_id: uuid.UUID
    staff: StaffPrincipal | None = None
    member: CommunityMember | None = None

    @property
    def member_id(self) -> uuid.UUID | None:
        return self.member.member_id if self.member is not None else None

    @property
    def is_staff(self) -> bool:
        return self.staff is not None


async def _actor(
    principal: PrincipalDep, session: SessionDep, request: Request, *, writing: bool
) -> Actor:
    if isinstance(principal, StaffPrincipal):
        scope = Scope.COMMUNITY_WRITE if writing else Scope.COMMUNITY_READ
        staff = await require_staff(scope)(principal)
        return Actor(brand_id=staff.brand_id, staff=staff)
    find = active_member if writing else known_member
    member = await find(session, principal.brand_id, principal.member_id, await _directory(request))
    return Actor(brand_id=principal.brand_id, member=member)


async def _writing_actor(principal: PrincipalDep, session: SessionDep, request: Request) -> Actor:
    return await _actor(principal, session, request, writing=True)


async def _reading_actor(principal: PrincipalDep, session: SessionDep, request: Request) -> Actor:
    return await _actor(principal, session, request, writing=False)


# Staff with `community:write`, or a member free to act (404 unknown, 403 suspended).
WritingActor = Annotated[Actor, Depends(_writing_actor)]
# Staff with `community:read`, or any member the community knows (suspended members still read).
ReadingActor = Annotated[Actor, Depends(_reading_actor)]
