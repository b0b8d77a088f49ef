"""Who acts on experiences: the brand's staff (a key with the community scopes) or a member.

Hosting is shared: an experience is managed by staff or by the member who hosts it, so these
routes admit either, and the service checks `may_manage` against the experience.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from services.community.experiences.errors import NotTheHost
from services.community.experiences.models import Experience
from services.community.members.service import active_member, known_member
from services.community.models import CommunityMember
from services.kernel.auth import PrincipalDep, Scope, StaffPrincipal, require_staff
from services.kernel.db import SessionDep


@dataclass(frozen=True, slots=True)
class Actor:
    brand_id: uuid.UUID
    member: CommunityMember | None  # None: the brand's staff

    @property
    def is_staff(self) -> bool:
        return self.member is None

    def hosts(self, experience: Experience) -> bool:
        return self.member is not None and experience.host_member_id == self.member.member_id

    def may_manage(self, experience: Experience) -> bool:
        return self.is_staff or self.hosts(experience)

    def require_manager(self, experience: Experience) -> None:
        """403 `NotTheHost` unless staff or the experience's host."""
        if not self.may_manage(experience):
            raise NotTheHost()


async def _writer(principal: PrincipalDep, session: SessionDep) -> Actor:
    if isinstance(principal, StaffPrincipal):
        await require_staff(Scope.COMMUNITY_WRITE)(principal)
        return Actor(principal.brand_id, None)
    return Actor(
        principal.brand_id, await active_member(session, principal.brand_id, principal.member_id)
    )


async def _reader(principal: PrincipalDep, session: SessionDep) -> Actor:
    if isinstance(principal, StaffPrincipal):
        await require_staff(Scope.COMMUNITY_READ)(principal)
        return Actor(principal.brand_id, None)
    return Actor(
        principal.brand_id, await known_member(session, principal.brand_id, principal.member_id)
    )


# Staff with `community:write`, or a member free to act (404 unknown, 403 suspended).
Writer = Annotated[Actor, Depends(_writer)]
# Staff with `community:read`, or any known member (suspended members still read).
Reader = Annotated[Actor, Depends(_reader)]
