"""REST for webhook operations (staff keys with the `webhooks` scope): messages and their
deliveries, the attempt log, resending one message and recovering an endpoint's failures."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Query, Request, Response, status
from pydantic import AwareDatetime

from services.kernel.auth import Scope, StaffPrincipal, require_staff
from services.kernel.db import SessionDep
from services.kernel.idempotency import IdempotencyKeyHeader, request_hash
from services.kernel.pagination import Page, PageDep
from services.kernel.routing import Router
from services.webhooks.models import IDEMPOTENCY, AttemptOutcome, DeliveryStatus
from services.webhooks.operations import service
from services.webhooks.operations.repository import AttemptFilters, MessageFilters
from services.webhooks.operations.schemas import (
    AttemptRead,
    DeliveryRead,
    MessageDetail,
    MessageRead,
    NoBody,
    Recovered,
    RecoverRequest,
)

router = Router(prefix="/webhooks/v1", tags=["webhooks: operations"])

Staff = Annotated[StaffPrincipal, Depends(require_staff(Scope.WEBHOOKS))]

_MESSAGE_404: dict[int | str, dict[str, str]] = {404: {"description": "MessageNotFound"}}
_ENDPOINT_404: dict[int | str, dict[str, str]] = {404: {"description": "EndpointNotFound"}}
_CURSOR_400: dict[int | str, dict[str, str]] = {
    400: {"description": "InvalidCursor (a `before` cursor: these lists page forwards only)"}
}


@router.get(
    "/messages",
    response_model=Page[MessageRead],
    summary="Messages, newest first",
    responses={
        **_CURSOR_400,
        422: {"description": "UnknownEventType, InvalidTimeRange, ValidationError"},
    },
)
async def list_messages(
    staff: Staff,
    session: SessionDep,
    page: PageDep,
    event_type: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=100,
            description="An exact type (`points.earned`) or a family (`points.*`).",
        ),
    ] = None,
    member_id: Annotated[uuid.UUID | None, Query(description="Messages about this member.")] = None,
    endpoint_id: Annotated[
        uuid.UUID | None, Query(description="Messages with a delivery to this endpoint.")
    ] = None,
    delivery_status: Annotated[
        DeliveryStatus | None,
        Query(
            alias="status",
            description="With `endpoint_id`: the status of the delivery to it; without: "
            "messages with any delivery in this status.",
        ),
    ] = None,
    since: Annotated[
        AwareDatetime | None, Query(description="Created at or after this time.")
    ] = None,
    until: Annotated[AwareDatetime | None, Query(description="Created before this time.")] = None,
) -> Page[MessageRead]:
    filters = MessageFilters(
        event_type=event_type,
        member_id=member_id,
        endpoint_id=endpoint_id,
        status=delivery_status,
        since=since,
        until=until,
    )
    rows = await service.list_messages(session, staff.brand_id, filters, page)
    return Page.of(rows, page, key=lambda m: m.id, item=MessageRead.model_validate)


@router.get(
    "/messages/{message_id}",
    response_model=MessageDetail,
    summary="A message, its payload and its deliveries",
    responses=_MESSAGE_404,
)
async def read_message(message_id: uuid.UUID, staff: Staff, session: SessionDep) -> MessageDetail:
    message, deliveries = await service.get_message(session, staff.brand_id, message_id)
    return MessageDetail.of(message, deliveries)


@router.get(
    "/messages/{message_id}/attempts",
    response_model=Page[AttemptRead],
    summary="A message's delivery attempts, newest first",
    responses={**_CURSOR_400, **_MESSAGE_404},
)
async def message_attempts(
    message_id: uuid.UUID,
    staff: Staff,
    session: SessionDep,
    page: PageDep,
    endpoint_id: Annotated[
        uuid.UUID | None, Query(description="Only the attempts at this endpoint.")
    ] = None,
) -> Page[AttemptRead]:
    rows = await service.message_attempts(session, staff.brand_id, message_id, endpoint_id, page)
    return Page.of(rows, page, key=service.attempt_cursor_key, item=AttemptRead.of)


@router.get(
    "/endpoints/{endpoint_id}/attempts",
    response_model=Page[AttemptRead],
    summary="An endpoint's delivery attempts, newest first",
    responses={**_CURSOR_400, **_ENDPOINT_404},
)
async def endpoint_attempts(
    endpoint_id: uuid.UUID,
    staff: Staff,
    session: SessionDep,
    page: PageDep,
    since: Annotated[
        AwareDatetime | None, Query(description="Attempts made at or after this time.")
    ] = None,
    outcome: Annotated[AttemptOutcome | None, Query(description="Only these outcomes.")] = None,
) -> Page[AttemptRead]:
    filters = AttemptFilters(since=since, outcome=outcome)
    rows = await service.endpoint_attempts(session, staff.brand_id, endpoint_id, filters, page)
    return Page.of(rows, page, key=service.attempt_cursor_key, item=AttemptRead.of)


@router.post(
    "/messages/{message_id}/endpoints/{endpoint_id}/resend",
    response_model=DeliveryRead,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send a message to an endpoint again",
    responses={
        404: {"description": "DeliveryNotFound, EndpointNotFound"},
        409: {"description": "EndpointDisabled, DeliveryInFlight, IdempotencyKeyReused"},
    },
)
async def resend(
    message_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    staff: Staff,
    session: SessionDep,
    request: Request,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Whatever its status, the delivery is due now with a fresh retry schedule; it goes out
    with the message's own `webhook-id`, so a receiver that already has it can drop it."""

    async def work() -> DeliveryRead:
        delivery = await service.resend(session, staff.brand_id, message_id, endpoint_id)
        return DeliveryRead.of(delivery)

    return await IDEMPOTENCY.run(
        session,
        caller=staff,
        key=idempotency_key,
        fingerprint=request_hash(request.method, request.url.path, NoBody()),
        status_code=status.HTTP_202_ACCEPTED,
        work=work,
    )


@router.post(
    "/endpoints/{endpoint_id}/recover",
    response_model=Recovered,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Retry everything that failed for an endpoint since a time",
    responses={
        **_ENDPOINT_404,
        409: {"description": "EndpointDisabled, IdempotencyKeyReused"},
        422: {"description": "RecoverTooFarBack (over 14 days), RecoverFromFuture"},
    },
)
async def recover(
    endpoint_id: uuid.UUID,
    payload: RecoverRequest,
    staff: Staff,
    session: SessionDep,
    request: Request,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Every failed delivery to the endpoint created since `since` (at most 14 days back) is
    due now with a fresh retry schedule; pending and succeeded ones are left alone."""

    async def work() -> Recovered:
        recovered = await service.recover(session, staff.brand_id, endpoint_id, payload.since)
        return Recovered(recovered=recovered)

    return await IDEMPOTENCY.run(
        session,
        caller=staff,
        key=idempotency_key,
        fingerprint=request_hash(request.method, request.url.path, payload),
        status_code=status.HTTP_202_ACCEPTED,
        work=work,
    )
