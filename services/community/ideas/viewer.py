"""Who reads the co-creation boards (ideas, testimonials): a member of the brand, or its staff.

The same read routes serve the brand's apps (member tokens) and its back office (staff keys with
`community:read`), so they take either; what differs (a member's own vote, staff-only filters) is
decided from `Viewer.member_id`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from services.community.members.service import known_member
from services.kernel.auth import PrincipalDep, Scope, StaffPrincipal, require_staff
from services.kernel.db import SessionDep


@dataclass(frozen=True, slots=True)
class Viewer:
    brand_id: uuid.UUID
    member_id: uuid.UUID | None  # None: a staff key

    @property
    def is_staff(self) -> bool:
        return self.member_id is None


_community_reader = require_staff(Scope.COMMUNITY_READ)


async def _viewer(principal: PrincipalDep, session: SessionDep) -> Viewer:
    if isinstance(principal, StaffPrincipal):
        staff = await _community_reader(principal)
        return Viewer(staff.brand_id, None)
    # Members read while suspended too; an unknown or erased member is 404 MemberNotFound.
    member = await known_member(session, principal.brand_id, principal.member_id)
    return Viewer(member.brand_id, member.member_id)


ViewerDep = Annotated[Viewer, Depends(_viewer)]
