"""Who may call the recommender: a member about themself, or brand staff with the recommender
scopes (the brand's own backend rendering a member's list calls as staff)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from services.kernel.auth import (
    MemberPrincipal,
    Principal,
    PrincipalDep,
    Scope,
    StaffPrincipal,
    require_staff,
)

StaffRead = Annotated[StaffPrincipal, Depends(require_staff(Scope.RECOMMENDER_READ))]
StaffWrite = Annotated[StaffPrincipal, Depends(require_staff(Scope.RECOMMENDER_WRITE))]


@dataclass(frozen=True, slots=True)
class Caller:
    """Staff (`member_id` None: any member of the brand) or one member (only themself)."""

    principal: Principal
    brand_id: uuid.UUID
    member_id: uuid.UUID | None

    def may_see(self, member_id: uuid.UUID) -> bool:
        return self.member_id is None or self.member_id == member_id


async def _caller(principal: Principal, scope: Scope) -> Caller:
    if isinstance(principal, MemberPrincipal):
        return Caller(principal, principal.brand_id, principal.member_id)
    staff = await require_staff(scope)(principal)
    return Caller(staff, staff.brand_id, None)


async def _reader(principal: PrincipalDep) -> Caller:
    return await _caller(principal, Scope.RECOMMENDER_READ)


async def _writer(principal: PrincipalDep) -> Caller:
    return await _caller(principal, Scope.RECOMMENDER_WRITE)


# A member, or staff with `recommender:read` (403 without it).
Reader = Annotated[Caller, Depends(_reader)]
# A member, or staff with `recommender:write` (403 without it).
Writer = Annotated[Caller, Depends(_writer)]
