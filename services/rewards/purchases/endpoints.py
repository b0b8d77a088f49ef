"""REST for purchases and returns, server to server with a staff API key (`rewards:write`).

The order id (purchases) and the return id (returns) are the idempotency keys: a first request
answers 201, a replay with the same body 200 with the same body and `Idempotent-Replayed: true`,
the same id with another body 409. No `Idempotency-Key` header is needed.
"""

from __future__ import annotations

from fastapi import Response

from services.kernel.db import SessionDep
from services.kernel.idempotency import REPLAYED_HEADER
from services.kernel.routing import Router
from services.rewards.access import StaffRead, StaffWrite
from services.rewards.ledger.members import MembersDep
from services.rewards.purchases import service
from services.rewards.purchases.schemas import (
    PurchaseCreate,
    PurchaseRead,
    PurchaseResult,
    ReturnCreate,
    ReturnResult,
)

router = Router(prefix="/rewards/v1", tags=["rewards: purchases"])


def _replayed(response: Response) -> None:
    response.status_code = 200
    response.headers[REPLAYED_HEADER] = "true"


@router.post(
    "/purchases",
    status_code=201,
    response_model=PurchaseResult,
    summary="Record a purchase; points follow the earning rules",
    responses={
        200: {
            "description": "A replay of this order id: the first answer",
            "model": PurchaseResult,
        },
        404: {"description": "MemberNotFound"},
        409: {"description": "OrderIdReused or ProgramNotConfigured"},
        422: {
            "description": "ValidationError, UnknownCurrency, CurrencyMismatch or LinesDoNotAddUp"
        },
    },
)
async def record_purchase(
    payload: PurchaseCreate,
    response: Response,
    session: SessionDep,
    staff: StaffWrite,
    members: MembersDep,
) -> PurchaseResult:
    result, created = await service.record_purchase(session, staff.brand_id, payload, members)
    if not created:
        _replayed(response)
    return result


@router.get(
    "/purchases/{order_id:path}",
    response_model=PurchaseRead,
    summary="A purchase as it stands: its points, breakdown and returns",
    responses={404: {"description": "PurchaseNotFound"}},
)
async def get_purchase(order_id: str, session: SessionDep, staff: StaffRead) -> PurchaseRead:
    return await service.get_purchase(session, staff.brand_id, order_id)


@router.post(
    "/returns",
    status_code=201,
    response_model=ReturnResult,
    summary="Record a full or partial return; its share of the points is reversed",
    responses={
        200: {"description": "A replay of this return id: the first answer", "model": ReturnResult},
        404: {"description": "PurchaseNotFound"},
        409: {"description": "ReturnIdReused or ProgramNotConfigured"},
        422: {
            "description": (
                "ValidationError, ReturnExceedsPurchase, ReturnLineNotInPurchase, "
                "ReturnBeforePurchase or LinesDoNotAddUp"
            )
        },
    },
)
async def record_return(
    payload: ReturnCreate, response: Response, session: SessionDep, staff: StaffWrite
) -> ReturnResult:
    result, created = await service.record_return(session, staff.brand_id, payload)
    if not created:
        _replayed(response)
    return result
