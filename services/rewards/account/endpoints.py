"""REST for the member view: a member's points summary, for the member or for staff."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import Query

from services.kernel.auth import MemberDep
from services.kernel.db import SessionDep
from services.kernel.routing import Router
from services.rewards.access import StaffRead
from services.rewards.account import service
from services.rewards.account.schemas import SummaryRead
from services.rewards.ledger.members import MembersDep

router = Router(prefix="/rewards/v1", tags=["rewards: member view"])


Include = Annotated[
    list[Literal["tier"]] | None,
    Query(description="`tier`: the tier status too (`tier`), in the same answer."),
]

_ERRORS: dict[int | str, dict[str, str]] = {
    404: {"description": "MemberNotFound"},
    409: {"description": "ProgramNotConfigured"},
}


@router.get(
    "/me/summary",
    response_model=SummaryRead,
    summary="My points: balance, what expires soon, last activity",
    responses=_ERRORS,
)
async def my_summary(
    session: SessionDep, me: MemberDep, members: MembersDep, include: Include = None
) -> SummaryRead:
    return await service.summary(
        session, me.brand_id, me.member_id, members=members, with_tier="tier" in (include or ())
    )


@router.get(
    "/members/{member_id}/summary",
    response_model=SummaryRead,
    summary="A member's points: balance, what expires soon, last activity",
    responses=_ERRORS,
)
async def member_summary(
    member_id: uuid.UUID,
    session: SessionDep,
    staff: StaffRead,
    members: MembersDep,
    include: Include = None,
) -> SummaryRead:
    return await service.summary(
        session, staff.brand_id, member_id, members=members, with_tier="tier" in (include or ())
    )
