"""Who may call the community's routes: staff keys with the community scopes, and members acting
as themselves (`CurrentMember`: known to the community, active and not suspended)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from services.community.members.service import active_member, known_member
from services.community.models import CommunityMember
from services.kernel.auth import MemberDep, Scope, StaffPrincipal, require_staff
from services.kernel.db import SessionDep

StaffRead = Annotated[StaffPrincipal, Depends(require_staff(Scope.COMMUNITY_READ))]
StaffWrite = Annotated[StaffPrincipal, Depends(require_staff(Scope.COMMUNITY_WRITE))]


async def _current_member(principal: MemberDep, session: SessionDep) -> CommunityMember:
    return await active_member(session, principal.brand_id, principal.member_id)


async def _reading_member(principal: MemberDep, session: SessionDep) -> CommunityMember:
    return await known_member(session, principal.brand_id, principal.member_id)


# A member who may act (post, comment, react, book): 404 if unknown, 403 if suspended.
CurrentMember = Annotated[CommunityMember, Depends(_current_member)]
# A member who may read (suspended members still read): 404 if unknown.
ReadingMember = Annotated[CommunityMember, Depends(_reading_member)]
