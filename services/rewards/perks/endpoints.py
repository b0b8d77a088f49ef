"""REST for the perks catalog (staff), the member's catalog view, and redemptions."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Query, Request, Response

from services.kernel.auth import MemberDep
from services.kernel.db import SessionDep
from services.kernel.idempotency import RequiredIdempotencyKeyHeader, request_hash
from services.kernel.pagination import OptionalIds, Page, PageDep
from services.kernel.routing import Router
from services.rewards.access import StaffRead, StaffWrite
from services.rewards.ledger.members import MembersDep
from services.rewards.models import IDEMPOTENCY, PerkKind, RedemptionStatus
from services.rewards.perks import service
from services.rewards.perks.repository import PerkFilters
from services.rewards.perks.schemas import (
    MAX_CATEGORY,
    CodesReport,
    CodesUpload,
    PerkCreate,
    PerkOffer,
    PerkRead,
    PerkUpdate,
    RedemptionCreate,
    RedemptionRead,
)

router = Router(prefix="/rewards/v1", tags=["rewards: perks"])


_REDEEM_ERRORS: dict[int | str, dict[str, str]] = {
    403: {"description": "TierNotEligible, MemberSuspended"},
    404: {"description": "PerkNotFound (unknown or inactive), MemberNotFound"},
    409: {
        "description": "PerkNotAvailable (with valid_from / valid_until), OutOfStock, "
        "RedemptionLimitReached, InsufficientPoints, DropOnly, BirthdayGiftOnly, "
        "IdempotencyKeyReused"
    },
    422: {"description": "ValidationError (a missing Idempotency-Key header included)"},
}


# --- Catalog (staff) ------------------------------------------------------------------------


@router.post(
    "/perks",
    status_code=201,
    response_model=PerkRead,
    summary="Add a perk to the catalog",
    responses={422: {"description": "ValidationError, UnknownTier"}},
)
async def create_perk(payload: PerkCreate, session: SessionDep, staff: StaffWrite) -> PerkRead:
    perk = await service.create_perk(session, staff.brand_id, payload)
    return PerkRead.model_validate(perk)


@router.get("/perks", response_model=Page[PerkRead], summary="List the catalog")
async def list_perks(
    session: SessionDep,
    staff: StaffRead,
    page: PageDep,
    category: Annotated[str | None, Query(max_length=MAX_CATEGORY)] = None,
    kind: PerkKind | None = None,
    active: bool | None = None,
) -> Page[PerkRead]:
    filters = PerkFilters(category=category, kind=kind, active=active)
    perks = await service.list_perks(session, staff.brand_id, filters, page)
    return Page[PerkRead].of(perks, page, key=lambda p: p.id, item=PerkRead.model_validate)


@router.get("/perks/{perk_id}", response_model=PerkRead, summary="Get a perk")
async def get_perk(perk_id: uuid.UUID, session: SessionDep, staff: StaffRead) -> PerkRead:
    return PerkRead.model_validate(await service.get_perk(session, staff.brand_id, perk_id))


@router.patch(
    "/perks/{perk_id}",
    response_model=PerkRead,
    summary="Change a perk",
    responses={422: {"description": "ValidationError, UnknownTier, InventoryTooLow"}},
)
async def update_perk(
    perk_id: uuid.UUID, payload: PerkUpdate, session: SessionDep, staff: StaffWrite
) -> PerkRead:
    perk = await service.update_perk(session, staff.brand_id, perk_id, payload)
    return PerkRead.model_validate(perk)


@router.delete(
    "/perks/{perk_id}",
    status_code=204,
    summary="Delete a perk nothing refers to",
    responses={409: {"description": "PerkInUse: deactivate it instead"}},
)
async def delete_perk(perk_id: uuid.UUID, session: SessionDep, staff: StaffWrite) -> Response:
    await service.delete_perk(session, staff.brand_id, perk_id)
    return Response(status_code=204)


@router.post(
    "/perks/{perk_id}/codes",
    response_model=CodesReport,
    summary="Add discount codes to a perk's pool",
    responses={409: {"description": "PerkKindMismatch: not a discount_code perk"}},
)
async def upload_codes(
    perk_id: uuid.UUID, payload: CodesUpload, session: SessionDep, staff: StaffWrite
) -> CodesReport:
    return await service.upload_codes(session, staff.brand_id, perk_id, payload)


# --- Redemptions (staff) --------------------------------------------------------------------


@router.post(
    "/members/{member_id}/redemptions",
    status_code=201,
    response_model=RedemptionRead,
    summary="Redeem a perk for a member (staff)",
    responses=_REDEEM_ERRORS,
)
async def redeem_for_member(
    member_id: uuid.UUID,
    payload: RedemptionCreate,
    request: Request,
    session: SessionDep,
    staff: StaffWrite,
    members: MembersDep,
    idempotency_key: RequiredIdempotencyKeyHeader,
) -> Response:
    async def work() -> RedemptionRead:
        redemption = await service.redeem(
            session,
            staff.brand_id,
            member_id,
            payload.perk_id,
            channel=service.Channel.STAFF,
            reveal=True,
            members=members,
        )
        return RedemptionRead.of(redemption)

    return await IDEMPOTENCY.run(
        session,
        caller=staff,
        key=idempotency_key,
        fingerprint=request_hash(request.method, request.url.path, payload),
        status_code=201,
        work=work,
    )


@router.get(
    "/members/{member_id}/redemptions",
    response_model=Page[RedemptionRead],
    summary="A member's redemptions, newest first",
)
async def member_redemptions(
    member_id: uuid.UUID,
    session: SessionDep,
    staff: StaffRead,
    page: PageDep,
    members: MembersDep,
    status: RedemptionStatus | None = None,
) -> Page[RedemptionRead]:
    rows = await service.list_redemptions(
        session, staff.brand_id, member_id, page, status, members=members
    )
    return Page[RedemptionRead].of(rows, page, key=lambda r: r.id, item=RedemptionRead.of)


@router.post(
    "/redemptions/{redemption_id}/cancel",
    response_model=RedemptionRead,
    summary="Cancel a redemption: refund its points, return its unit (staff)",
    responses={404: {"description": "RedemptionNotFound"}},
)
async def cancel_redemption(
    redemption_id: uuid.UUID, session: SessionDep, staff: StaffWrite
) -> RedemptionRead:
    redemption = await service.cancel_redemption(session, staff.brand_id, redemption_id)
    return RedemptionRead.of(redemption)


# --- The member -----------------------------------------------------------------------------


@router.get(
    "/me/perks",
    response_model=Page[PerkOffer],
    summary="Perks I can redeem now (or all, each with why not)",
)
async def my_perks(
    session: SessionDep,
    me: MemberDep,
    page: PageDep,
    members: MembersDep,
    all_perks: Annotated[
        bool,
        Query(
            alias="all",
            description="Every active perk, each with `redeemable` and the reason when not.",
        ),
    ] = False,
    category: Annotated[str | None, Query(max_length=MAX_CATEGORY)] = None,
    affordable: Annotated[
        bool | None,
        Query(
            description="true: only perks that cost at most my available points; "
            "false: only those that cost more."
        ),
    ] = None,
    tier_id: Annotated[
        uuid.UUID | None,
        Query(description="Only perks members of this tier may redeem (open to all, or to it)."),
    ] = None,
    ids: OptionalIds = None,
) -> Page[PerkOffer]:
    if ids is not None:
        found = await service.offers_by_id(session, me.brand_id, me.member_id, ids, members=members)
        return Page[PerkOffer](items=found)
    query = service.OfferQuery(category=category, affordable=affordable, tier_id=tier_id)
    return await service.offers(
        session,
        me.brand_id,
        me.member_id,
        page,
        include_all=all_perks,
        query=query,
        members=members,
    )


@router.post(
    "/me/redemptions",
    status_code=201,
    response_model=RedemptionRead,
    summary="Redeem a perk",
    responses=_REDEEM_ERRORS,
)
async def redeem(
    payload: RedemptionCreate,
    request: Request,
    session: SessionDep,
    me: MemberDep,
    members: MembersDep,
    idempotency_key: RequiredIdempotencyKeyHeader,
) -> Response:
    async def work() -> RedemptionRead:
        redemption = await service.redeem(
            session,
            me.brand_id,
            me.member_id,
            payload.perk_id,
            channel=service.Channel.MEMBER,
            reveal=True,
            members=members,
        )
        return RedemptionRead.of(redemption)

    return await IDEMPOTENCY.run(
        session,
        caller=me,
        key=idempotency_key,
        fingerprint=request_hash(request.method, request.url.path, payload),
        status_code=201,
        work=work,
    )


@router.get(
    "/me/redemptions", response_model=Page[RedemptionRead], summary="My redemptions, newest first"
)
async def my_redemptions(
    session: SessionDep,
    me: MemberDep,
    page: PageDep,
    members: MembersDep,
    status: RedemptionStatus | None = None,
    ids: OptionalIds = None,
) -> Page[RedemptionRead]:
    if ids is not None:
        found = await service.redemptions_by_id(
            session, me.brand_id, me.member_id, ids, members=members
        )
        return Page[RedemptionRead](items=[RedemptionRead.of(r) for r in found])
    rows = await service.list_redemptions(
        session, me.brand_id, me.member_id, page, status, members=members
    )
    return Page[RedemptionRead].of(rows, page, key=lambda r: r.id, item=RedemptionRead.of)


@router.post(
    "/me/redemptions/{redemption_id}/reveal",
    response_model=RedemptionRead,
    summary="Show the discount code of one of my redemptions",
    responses={404: {"description": "RedemptionNotFound"}},
)
async def reveal_code(
    redemption_id: uuid.UUID, session: SessionDep, me: MemberDep
) -> RedemptionRead:
    redemption = await service.reveal_code(session, me.brand_id, me.member_id, redemption_id)
    return RedemptionRead.of(redemption)


@router.post(
    "/me/redemptions/{redemption_id}/cancel",
    response_model=RedemptionRead,
    summary="Cancel my redemption within 15 minutes (not drop wins, gifts or revealed codes)",
    responses={
        404: {"description": "RedemptionNotFound"},
        409: {"description": "NotCancellable"},
    },
)
async def cancel_my_redemption(
    redemption_id: uuid.UUID, session: SessionDep, me: MemberDep
) -> RedemptionRead:
    redemption = await service.cancel_redemption(
        session, me.brand_id, redemption_id, member_id=me.member_id
    )
    return RedemptionRead.of(redemption)
