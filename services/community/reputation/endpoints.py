"""REST for reputation, trust levels and badges."""

from __future__ import annotations

import uuid

from fastapi import Response

from services.community.access import ReadingActor, ReadingMember, StaffRead, StaffWrite
from services.community.reputation import badges, service
from services.community.reputation.models import Badge, MemberBadge
from services.community.reputation.schemas import (
    BadgeCreate,
    BadgeRead,
    BadgeUpdate,
    MemberBadgeRead,
    ReputationEventRead,
    ReputationRead,
    TrustLevelSet,
)
from services.kernel.db import SessionDep
from services.kernel.pagination import Page, PageDep
from services.kernel.routing import Router

router = Router(prefix="/community/v1", tags=["community: reputation"])

_MEMBER_404: dict[int | str, dict[str, str]] = {404: {"description": "MemberNotFound"}}
_BADGE_404: dict[int | str, dict[str, str]] = {404: {"description": "BadgeNotFound"}}


def _reputation(standing: service.Standing) -> ReputationRead:
    return ReputationRead.model_validate(standing)


def _held(row: tuple[MemberBadge, Badge]) -> MemberBadgeRead:
    held, badge = row
    return MemberBadgeRead(
        id=held.id,
        badge=BadgeRead.model_validate(badge),
        source=held.source,
        challenge_id=held.challenge_id,
        awarded_at=held.awarded_at,
    )


# --- Reputation and trust -----------------------------------------------------------------------


@router.get("/me/reputation", response_model=ReputationRead, summary="My reputation and trust")
async def my_reputation(me: ReadingMember) -> ReputationRead:
    return _reputation(service.Standing.of(me))


@router.get(
    "/members/{member_id}/reputation",
    response_model=ReputationRead,
    summary="A member's reputation and trust level (staff)",
    responses=_MEMBER_404,
)
async def member_reputation(
    member_id: uuid.UUID, session: SessionDep, staff: StaffRead
) -> ReputationRead:
    return _reputation(await service.standing(session, staff.brand_id, member_id))


@router.get(
    "/members/{member_id}/reputation/events",
    response_model=Page[ReputationEventRead],
    summary="A member's reputation history, newest first (staff)",
    responses=_MEMBER_404,
)
async def member_reputation_history(
    member_id: uuid.UUID, session: SessionDep, staff: StaffRead, page: PageDep
) -> Page[ReputationEventRead]:
    rows = await service.history(session, staff.brand_id, member_id, page)
    return Page[ReputationEventRead].of(
        rows, page, key=lambda r: r.id, item=ReputationEventRead.model_validate
    )


@router.put(
    "/members/{member_id}/trust-level",
    response_model=ReputationRead,
    summary="Set a member's trust level and lock it there (staff)",
    responses=_MEMBER_404,
)
async def set_trust_level(
    member_id: uuid.UUID, payload: TrustLevelSet, session: SessionDep, staff: StaffWrite
) -> ReputationRead:
    standing = await service.set_trust_level(
        session, staff.brand_id, member_id, payload.trust_level
    )
    return _reputation(standing)


@router.delete(
    "/members/{member_id}/trust-level",
    response_model=ReputationRead,
    summary="Unlock a member's trust level: it follows their reputation again (staff)",
    responses=_MEMBER_404,
)
async def unlock_trust_level(
    member_id: uuid.UUID, session: SessionDep, staff: StaffWrite
) -> ReputationRead:
    return _reputation(await service.unlock_trust_level(session, staff.brand_id, member_id))


# --- Badges (staff) -----------------------------------------------------------------------------


@router.post(
    "/badges",
    status_code=201,
    response_model=BadgeRead,
    summary="Define a badge",
    responses={409: {"description": "BadgeNameTaken"}},
)
async def create_badge(payload: BadgeCreate, session: SessionDep, staff: StaffWrite) -> BadgeRead:
    return BadgeRead.model_validate(await badges.create_badge(session, staff.brand_id, payload))


@router.get("/badges", response_model=Page[BadgeRead], summary="The brand's badges")
async def list_badges(session: SessionDep, staff: StaffRead, page: PageDep) -> Page[BadgeRead]:
    rows = await badges.list_badges(session, staff.brand_id, page)
    return Page[BadgeRead].of(rows, page, key=lambda b: b.id, item=BadgeRead.model_validate)


@router.get(
    "/badges/{badge_id}",
    response_model=BadgeRead,
    summary="Get a badge (members and staff: badges show on public profiles)",
    responses=_BADGE_404,
)
async def get_badge(badge_id: uuid.UUID, session: SessionDep, viewer: ReadingActor) -> BadgeRead:
    return BadgeRead.model_validate(await badges.get_badge(session, viewer.brand_id, badge_id))


@router.patch(
    "/badges/{badge_id}",
    response_model=BadgeRead,
    summary="Change a badge",
    responses={**_BADGE_404, 409: {"description": "BadgeNameTaken"}},
)
async def update_badge(
    badge_id: uuid.UUID, payload: BadgeUpdate, session: SessionDep, staff: StaffWrite
) -> BadgeRead:
    badge = await badges.update_badge(session, staff.brand_id, badge_id, payload)
    return BadgeRead.model_validate(badge)


@router.delete(
    "/badges/{badge_id}",
    status_code=204,
    summary="Delete a badge nobody holds and no challenge awards",
    responses={**_BADGE_404, 409: {"description": "BadgeInUse"}},
)
async def delete_badge(badge_id: uuid.UUID, session: SessionDep, staff: StaffWrite) -> Response:
    await badges.delete_badge(session, staff.brand_id, badge_id)
    return Response(status_code=204)


# --- A member's badges --------------------------------------------------------------------------


@router.get("/me/badges", response_model=Page[MemberBadgeRead], summary="My badges, newest first")
async def my_badges(session: SessionDep, me: ReadingMember, page: PageDep) -> Page[MemberBadgeRead]:
    rows = await badges.member_badges(session, me.brand_id, me.member_id, page)
    return Page[MemberBadgeRead].of(rows, page, key=lambda r: r[0].id, item=_held)


@router.get(
    "/members/{member_id}/badges",
    response_model=Page[MemberBadgeRead],
    summary="A member's badges, newest first: their public profile (members and staff)",
    responses=_MEMBER_404,
)
async def member_badges(
    member_id: uuid.UUID, session: SessionDep, viewer: ReadingActor, page: PageDep
) -> Page[MemberBadgeRead]:
    rows = await badges.member_badges(session, viewer.brand_id, member_id, page)
    return Page[MemberBadgeRead].of(rows, page, key=lambda r: r[0].id, item=_held)
