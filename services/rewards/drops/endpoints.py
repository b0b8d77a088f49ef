"""REST for fair drops: staff set them up, draw and audit them; members enter."""

from __future__ import annotations

import uuid

from fastapi import Response

from services.kernel.auth import MemberDep
from services.kernel.db import SessionDep
from services.kernel.pagination import OptionalIds, Page, PageDep
from services.kernel.routing import Router
from services.rewards.access import StaffRead, StaffWrite
from services.rewards.drops import service
from services.rewards.drops.repository import DropFilters
from services.rewards.drops.schemas import (
    DropAudit,
    DropCreate,
    DropRead,
    DropUpdate,
    EntryRead,
    MyDrop,
)
from services.rewards.ledger.members import MembersDep
from services.rewards.models import DropStatus

router = Router(prefix="/rewards/v1", tags=["rewards: drops"])


@router.post(
    "/drops",
    status_code=201,
    response_model=DropRead,
    summary="Set up a drop of a scarce perk",
    responses={422: {"description": "ValidationError, UnknownPerk, UnknownTier, InventoryTooLow"}},
)
async def create_drop(payload: DropCreate, session: SessionDep, staff: StaffWrite) -> DropRead:
    return service.drop_read(await service.create_drop(session, staff.brand_id, payload))


@router.get("/drops", response_model=Page[DropRead], summary="List drops")
async def list_drops(
    session: SessionDep,
    staff: StaffRead,
    page: PageDep,
    status: DropStatus | None = None,
    perk_id: uuid.UUID | None = None,
) -> Page[DropRead]:
    drops = await service.list_drops(
        session, staff.brand_id, DropFilters(status=status, perk_id=perk_id), page
    )
    return Page[DropRead].of(drops, page, key=lambda d: d.id, item=service.drop_read)


@router.get("/drops/{drop_id}", response_model=DropRead, summary="Get a drop")
async def get_drop(drop_id: uuid.UUID, session: SessionDep, staff: StaffRead) -> DropRead:
    return service.drop_read(await service.get_drop(session, staff.brand_id, drop_id))


@router.patch(
    "/drops/{drop_id}",
    response_model=DropRead,
    summary="Change a drop before it opens",
    responses={
        409: {"description": "DropStarted"},
        422: {"description": "ValidationError, UnknownTier, InventoryTooLow"},
    },
)
async def update_drop(
    drop_id: uuid.UUID, payload: DropUpdate, session: SessionDep, staff: StaffWrite
) -> DropRead:
    return service.drop_read(await service.update_drop(session, staff.brand_id, drop_id, payload))


@router.delete(
    "/drops/{drop_id}",
    status_code=204,
    summary="Delete a drop before it opens",
    responses={409: {"description": "DropStarted"}},
)
async def delete_drop(drop_id: uuid.UUID, session: SessionDep, staff: StaffWrite) -> Response:
    await service.delete_drop(session, staff.brand_id, drop_id)
    return Response(status_code=204)


@router.post(
    "/drops/{drop_id}/draw",
    response_model=DropAudit,
    summary="Draw a drop whose entries have closed (drawing again changes nothing)",
    responses={409: {"description": "DropStillOpen (with closes_at)"}},
)
async def draw_drop(drop_id: uuid.UUID, session: SessionDep, staff: StaffWrite) -> DropAudit:
    drop = await service.draw(session, staff.brand_id, drop_id)
    return await service.audit(session, staff.brand_id, drop.id)


@router.get(
    "/drops/{drop_id}/audit",
    response_model=DropAudit,
    summary="The draw's seed, entrants and ordered outcomes, to re-run it independently",
)
async def audit_drop(drop_id: uuid.UUID, session: SessionDep, staff: StaffRead) -> DropAudit:
    return await service.audit(session, staff.brand_id, drop_id)


@router.get("/me/drops", response_model=Page[MyDrop], summary="Drops, newest first, with my entry")
async def my_drops(
    session: SessionDep,
    me: MemberDep,
    page: PageDep,
    members: MembersDep,
    ids: OptionalIds = None,
) -> Page[MyDrop]:
    if ids is not None:
        found = await service.my_drops_by_id(
            session, me.brand_id, me.member_id, ids, members=members
        )
        return Page[MyDrop](items=found)
    return await service.my_drops(session, me.brand_id, me.member_id, page, members=members)


@router.post(
    "/me/drops/{drop_id}/entries",
    status_code=201,
    response_model=EntryRead,
    summary="Enter a drop (free; entering again returns the same entry with 200)",
    responses={
        200: {"description": "Already entered: the same entry", "model": EntryRead},
        403: {"description": "TierNotEligible, MemberSuspended"},
        404: {"description": "DropNotFound, MemberNotFound"},
        409: {
            "description": "DropNotOpenYet (with opens_at), DropClosed (with closes_at), "
            "InsufficientPoints, RedemptionLimitReached, OutOfStock"
        },
    },
)
async def enter_drop(
    drop_id: uuid.UUID,
    session: SessionDep,
    me: MemberDep,
    members: MembersDep,
    response: Response,
) -> EntryRead:
    entry, created = await service.enter(
        session, me.brand_id, me.member_id, drop_id, members=members
    )
    if not created:
        response.status_code = 200
    return EntryRead.of(entry)
