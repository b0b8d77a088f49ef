"""REST for the ledger core: program settings, a member's balance and history, adjustments."""

from __future__ import annotations

import uuid

from fastapi import Request, Response

from services.kernel.auth import MemberDep
from services.kernel.db import SessionDep
from services.kernel.idempotency import IdempotencyKeyHeader, request_hash
from services.kernel.pagination import Page, PageDep
from services.kernel.routing import Router
from services.rewards.access import StaffRead, StaffWrite
from services.rewards.ledger import service
from services.rewards.ledger.members import MembersDep, MemberSource
from services.rewards.ledger.repository import LedgerRepository
from services.rewards.ledger.schemas import (
    AdjustmentCreate,
    AdjustmentRead,
    BalanceRead,
    EntryRead,
    ProgramRead,
    ProgramSettings,
)
from services.rewards.models import IDEMPOTENCY

router = Router(prefix="/rewards/v1", tags=["rewards: ledger"])


@router.get("/program", response_model=ProgramRead, summary="The brand's program settings")
async def get_program(session: SessionDep, staff: StaffRead) -> ProgramRead:
    program = await service.program_for(session, staff.brand_id)
    return ProgramRead.model_validate(program)


@router.put("/program", response_model=ProgramRead, summary="Configure the brand's program")
async def put_program(
    settings: ProgramSettings, session: SessionDep, staff: StaffWrite
) -> ProgramRead:
    program = await service.configure_program(session, staff.brand_id, settings)
    return ProgramRead.model_validate(program)


async def _history(
    session: SessionDep,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    page: PageDep,
    members: MemberSource,
) -> Page[EntryRead]:
    await service.account_for(session, brand_id, member_id=member_id, members=members)
    rows = await LedgerRepository(session).entries(brand_id, member_id, page)
    return Page[EntryRead].of(rows, page, key=lambda e: e.id, item=EntryRead.model_validate)


@router.get("/members/{member_id}/balance", response_model=BalanceRead)
async def member_balance(
    member_id: uuid.UUID, session: SessionDep, staff: StaffRead, members: MembersDep
) -> BalanceRead:
    account = await service.account_for(
        session, staff.brand_id, member_id=member_id, members=members
    )
    return await service.balances_of(session, account)


@router.get(
    "/members/{member_id}/ledger",
    response_model=Page[EntryRead],
    summary="A member's points history, newest first, with a reason on every line",
)
async def member_ledger(
    member_id: uuid.UUID, session: SessionDep, staff: StaffRead, page: PageDep, members: MembersDep
) -> Page[EntryRead]:
    return await _history(session, staff.brand_id, member_id, page, members)


@router.post(
    "/members/{member_id}/adjustments",
    status_code=201,
    response_model=AdjustmentRead,
    summary="Add or take points, with a reason (staff)",
    responses={409: {"description": "InsufficientPoints or IdempotencyKeyReused"}},
)
async def create_adjustment(
    member_id: uuid.UUID,
    adjustment: AdjustmentCreate,
    request: Request,
    session: SessionDep,
    staff: StaffWrite,
    members: MembersDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    async def work() -> AdjustmentRead:
        return await service.adjust(session, staff.brand_id, member_id, adjustment, members)

    return await IDEMPOTENCY.run(
        session,
        caller=staff,
        key=idempotency_key,
        fingerprint=request_hash(request.method, request.url.path, adjustment),
        status_code=201,
        work=work,
    )


@router.get("/me/balance", response_model=BalanceRead, summary="My points")
async def my_balance(session: SessionDep, me: MemberDep, members: MembersDep) -> BalanceRead:
    account = await service.account_for(
        session, me.brand_id, member_id=me.member_id, members=members
    )
    return await service.balances_of(session, account)


@router.get("/me/ledger", response_model=Page[EntryRead], summary="My points history")
async def my_ledger(
    session: SessionDep, me: MemberDep, page: PageDep, members: MembersDep
) -> Page[EntryRead]:
    return await _history(session, me.brand_id, me.member_id, page, members)
