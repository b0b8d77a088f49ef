"""Who acts on a group or in moderation: brand staff (an API key with the community scopes) or a
member acting as themselves. Several routes admit both (a group's moderators may change it, the
brand's staff always may), so they take an `Actor` and the service decides what each may do."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from services.community.members.service import active_member, known_member
from services.community.models import CommunityMember
from services.kernel.auth import (
    MemberPrincipal,
    PrincipalDep,
    Scope,
    StaffPrincipal,
    require_staff,
)
from services.kernel.db import SessionDep


@dataclass(frozen=True, slots=True)
class Actor:
    """Exactly one of `staff` and `member` is set."""

    brand_id: uuid.UUID
    staff: StaffPrincipal | None = None
    member: CommunityMember | None = None

    @property
    def member_id(self) -> uuid.UUID | None:
        return self.member.member_id if self.member is not None else None


async def _actor(
    principal: MemberPrincipal | StaffPrincipal,
    session: SessionDep,
    *,
    scope: Scope,
    acting: bool,
) -> Actor:
    if isinstance(principal, StaffPrincipal):
        staff = await require_staff(scope)(principal)
        return Actor(brand_id=staff.brand_id, staff=staff)
    find = active_member if acting else known_member
    member = await find(session, principal.brand_id, principal.member_id)
    return Actor(brand_id=principal.brand_id, member=member)


async def _writer(principal: PrincipalDep, session: SessionDep) -> Actor:
    return await _actor(principal, session, scope=Scope.COMMUNITY_WRITE, acting=True)


async def _reader(principal: PrincipalDep, session: SessionDep) -> Actor:
    return await _actor(principal, session, scope=Scope.COMMUNITY_READ, acting=False)


# Staff with `community:write`, or a member free to act (known, active, not suspended).
WritingActor = Annotated[Actor, Depends(_writer)]
# Staff with `community:read`, or any member the community knows (suspended members still read).
ReadingActor = Annotated[Actor, Depends(_reader)]
