"""REST for earning rules, campaigns and the simulator: thin handlers over `service`."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Query, Response

from services.kernel.db import SessionDep
from services.kernel.pagination import Page, PageDep
from services.kernel.routing import Router
from services.kernel.schemas import UtcDatetime
from services.rewards.access import StaffRead, StaffWrite
from services.rewards.earning import service
from services.rewards.earning.schemas import (
    ActivitySimulationRequest,
    ActivitySimulationResult,
    CampaignCreate,
    CampaignRead,
    CampaignUpdate,
    RuleCreate,
    RuleRead,
    RuleUpdate,
    SimulationRequest,
    SimulationResult,
)
from services.rewards.ledger.members import MembersDep
from services.rewards.models import RuleKind

router = Router(prefix="/rewards/v1", tags=["rewards: earning"])


# --- Simulate (before /rules/{rule_id}, which it would otherwise never reach for GETs) ------


@router.post(
    "/rules/simulate",
    response_model=SimulationResult,
    summary="Which rules, tier and campaigns a purchase would trigger, and why; writes nothing",
    responses={
        404: {"description": "MemberNotFound"},
        409: {"description": "ProgramNotConfigured"},
        422: {"description": "ValidationError, UnknownCurrency, CurrencyMismatch, LinesDoNotAddUp"},
    },
)
async def simulate(
    request: SimulationRequest, session: SessionDep, staff: StaffRead, members: MembersDep
) -> SimulationResult:
    return await service.simulate(session, staff.brand_id, request, members)


@router.post(
    "/rules/simulate-activity",
    response_model=ActivitySimulationResult,
    summary="Which activity rules an activity (event) would pay, within caps, and why",
    responses={
        404: {"description": "MemberNotFound"},
        409: {"description": "ProgramNotConfigured"},
        422: {"description": "ValidationError"},
    },
)
async def simulate_activity(
    request: ActivitySimulationRequest, session: SessionDep, staff: StaffRead, members: MembersDep
) -> ActivitySimulationResult:
    return await service.simulate_activity(session, staff.brand_id, request, members)


# --- Earning rules --------------------------------------------------------------------------


@router.post(
    "/rules",
    status_code=201,
    response_model=RuleRead,
    summary="Create an earning rule (category or sku multiplier, or an activity award)",
    responses={422: {"description": "ValidationError or InconsistentCaps"}},
)
async def create_rule(payload: RuleCreate, session: SessionDep, staff: StaffWrite) -> RuleRead:
    rule = await service.create_rule(session, staff.brand_id, payload)
    return RuleRead.model_validate(rule)


@router.get("/rules", response_model=Page[RuleRead], summary="List earning rules")
async def list_rules(
    session: SessionDep,
    staff: StaffRead,
    page: PageDep,
    kind: RuleKind | None = None,
    active: bool | None = None,
) -> Page[RuleRead]:
    rules = await service.list_rules(session, staff.brand_id, page, kind=kind, active=active)
    return Page[RuleRead].of(rules, page, key=lambda r: r.id, item=RuleRead.model_validate)


@router.get(
    "/rules/{rule_id}",
    response_model=RuleRead,
    summary="Get an earning rule",
    responses={404: {"description": "RuleNotFound"}},
)
async def get_rule(rule_id: uuid.UUID, session: SessionDep, staff: StaffRead) -> RuleRead:
    return RuleRead.model_validate(await service.get_rule(session, staff.brand_id, rule_id))


@router.patch(
    "/rules/{rule_id}",
    response_model=RuleRead,
    summary="Change an earning rule",
    responses={
        404: {"description": "RuleNotFound"},
        422: {"description": "ValidationError, FieldNotForRuleKind or InconsistentCaps"},
    },
)
async def update_rule(
    rule_id: uuid.UUID, payload: RuleUpdate, session: SessionDep, staff: StaffWrite
) -> RuleRead:
    rule = await service.update_rule(session, staff.brand_id, rule_id, payload)
    return RuleRead.model_validate(rule)


@router.delete(
    "/rules/{rule_id}",
    status_code=204,
    summary="Delete an earning rule that never awarded points",
    responses={404: {"description": "RuleNotFound"}, 409: {"description": "RuleInUse"}},
)
async def delete_rule(rule_id: uuid.UUID, session: SessionDep, staff: StaffWrite) -> Response:
    await service.delete_rule(session, staff.brand_id, rule_id)
    return Response(status_code=204)


# --- Campaigns ------------------------------------------------------------------------------


@router.post(
    "/campaigns",
    status_code=201,
    response_model=CampaignRead,
    summary="Create a campaign (a window, an audience, a multiplier and/or bonus points)",
    responses={
        422: {
            "description": (
                "ValidationError, InvalidWindow, NoMultiplierOrBonus, InvalidAudience or "
                "UnknownTier"
            )
        }
    },
)
async def create_campaign(
    payload: CampaignCreate, session: SessionDep, staff: StaffWrite
) -> CampaignRead:
    campaign = await service.create_campaign(session, staff.brand_id, payload)
    return CampaignRead.model_validate(campaign)


@router.get("/campaigns", response_model=Page[CampaignRead], summary="List campaigns")
async def list_campaigns(
    session: SessionDep,
    staff: StaffRead,
    page: PageDep,
    live_at: Annotated[
        UtcDatetime | None,
        Query(description="Only campaigns whose window contains this time (with a time zone)"),
    ] = None,
    active: bool | None = None,
) -> Page[CampaignRead]:
    campaigns = await service.list_campaigns(
        session, staff.brand_id, page, live_at=live_at, active=active
    )
    return Page[CampaignRead].of(
        campaigns, page, key=lambda c: c.id, item=CampaignRead.model_validate
    )


@router.get(
    "/campaigns/{campaign_id}",
    response_model=CampaignRead,
    summary="Get a campaign",
    responses={404: {"description": "CampaignNotFound"}},
)
async def get_campaign(
    campaign_id: uuid.UUID, session: SessionDep, staff: StaffRead
) -> CampaignRead:
    campaign = await service.get_campaign(session, staff.brand_id, campaign_id)
    return CampaignRead.model_validate(campaign)


@router.patch(
    "/campaigns/{campaign_id}",
    response_model=CampaignRead,
    summary="Change a campaign",
    responses={
        404: {"description": "CampaignNotFound"},
        422: {
            "description": (
                "ValidationError, InvalidWindow, NoMultiplierOrBonus, InvalidAudience or "
                "UnknownTier"
            )
        },
    },
)
async def update_campaign(
    campaign_id: uuid.UUID, payload: CampaignUpdate, session: SessionDep, staff: StaffWrite
) -> CampaignRead:
    campaign = await service.update_campaign(session, staff.brand_id, campaign_id, payload)
    return CampaignRead.model_validate(campaign)


@router.delete(
    "/campaigns/{campaign_id}",
    status_code=204,
    summary="Delete a campaign",
    responses={404: {"description": "CampaignNotFound"}},
)
async def delete_campaign(
    campaign_id: uuid.UUID, session: SessionDep, staff: StaffWrite
) -> Response:
    await service.delete_campaign(session, staff.brand_id, campaign_id)
    return Response(status_code=204)
