"""REST for tiers (staff) and a member's tier status (staff and the member themselves)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Response

from services.kernel.auth import MemberDep
from services.kernel.db import SessionDep
from services.kernel.routing import Router
from services.rewards.access import StaffRead, StaffWrite
from services.rewards.ledger.members import MembersDep
from services.rewards.tiers import service
from services.rewards.tiers.schemas import TierCreate, TierList, TierRead, TierStatus, TierUpdate

router = Router(prefix="/rewards/v1", tags=["rewards: tiers"])


_LADDER_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {"description": "DuplicateTierRank, DuplicateTierName or ProgramNotConfigured"},
    422: {"description": "ValidationError or TierThresholdsOutOfOrder"},
}


@router.get("/tiers", response_model=TierList, summary="The brand's tiers, by rank")
async def list_tiers(session: SessionDep, staff: StaffRead) -> TierList:
    tiers = await service.list_tiers(session, staff.brand_id)
    return TierList(items=[TierRead.model_validate(t) for t in tiers])


@router.post(
    "/tiers",
    status_code=201,
    response_model=TierRead,
    summary="Create a tier",
    responses=_LADDER_ERRORS,
)
async def create_tier(payload: TierCreate, session: SessionDep, staff: StaffWrite) -> TierRead:
    return TierRead.model_validate(await service.create_tier(session, staff.brand_id, payload))


@router.get(
    "/tiers/{tier_id}",
    response_model=TierRead,
    summary="Get a tier",
    responses={404: {"description": "TierNotFound"}},
)
async def get_tier(tier_id: uuid.UUID, session: SessionDep, staff: StaffRead) -> TierRead:
    return TierRead.model_validate(await service.get_tier(session, staff.brand_id, tier_id))


@router.patch(
    "/tiers/{tier_id}",
    response_model=TierRead,
    summary="Change a tier (members move on their next purchase or review)",
    responses={404: {"description": "TierNotFound"}, **_LADDER_ERRORS},
)
async def update_tier(
    tier_id: uuid.UUID, payload: TierUpdate, session: SessionDep, staff: StaffWrite
) -> TierRead:
    tier = await service.update_tier(session, staff.brand_id, tier_id, payload)
    return TierRead.model_validate(tier)


@router.delete(
    "/tiers/{tier_id}",
    status_code=204,
    summary="Delete a tier no member ever held",
    responses={404: {"description": "TierNotFound"}, 409: {"description": "TierInUse"}},
)
async def delete_tier(tier_id: uuid.UUID, session: SessionDep, staff: StaffWrite) -> Response:
    await service.delete_tier(session, staff.brand_id, tier_id)
    return Response(status_code=204)


@router.get(
    "/members/{member_id}/tier",
    response_model=TierStatus,
    summary="A member's tier: spend in the window, the next tier, what keeping it takes",
    responses={
        404: {"description": "MemberNotFound"},
        409: {"description": "ProgramNotConfigured"},
    },
)
async def member_tier(
    member_id: uuid.UUID, session: SessionDep, staff: StaffRead, members: MembersDep
) -> TierStatus:
    return await service.status(session, staff.brand_id, member_id, members=members)


@router.get(
    "/me/tier",
    response_model=TierStatus,
    summary="My tier: spend in the window, the next tier, what keeping mine takes",
)
async def my_tier(session: SessionDep, me: MemberDep, members: MembersDep) -> TierStatus:
    return await service.status(session, me.brand_id, me.member_id, members=members)
