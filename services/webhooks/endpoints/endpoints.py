"""REST for webhook endpoints (staff keys with the `webhooks` scope)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Request, Response, status

from services.kernel.auth import Scope, StaffPrincipal, require_staff
from services.kernel.db import SessionDep
from services.kernel.pagination import Page, PageDep
from services.kernel.routing import Router
from services.kernel.settings import Settings
from services.webhooks.endpoints import service
from services.webhooks.endpoints.schemas import (
    EndpointCreate,
    EndpointCreated,
    EndpointRead,
    EndpointSecret,
    EndpointUpdate,
)
from services.webhooks.models import Endpoint

router = Router(prefix="/webhooks/v1", tags=["webhooks: endpoints"])

Staff = Annotated[StaffPrincipal, Depends(require_staff(Scope.WEBHOOKS))]

_404: dict[int | str, dict[str, str]] = {404: {"description": "EndpointNotFound"}}
_422: dict[int | str, dict[str, str]] = {
    422: {"description": "ValidationError, UrlNotAllowed, UnknownEventType, ReservedHeader"}
}


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _secret(endpoint: Endpoint) -> EndpointSecret:
    return EndpointSecret(
        secret=endpoint.secret, previous_secret_expires_at=endpoint.previous_secret_expires_at
    )


@router.post(
    "/endpoints",
    response_model=EndpointCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Add an endpoint",
    responses=_422,
)
async def create_endpoint(
    payload: EndpointCreate, staff: Staff, session: SessionDep, request: Request
) -> EndpointCreated:
    """The answer holds the signing secret; `GET /endpoints/{id}/secret` shows it again."""
    endpoint = await service.create_endpoint(session, _settings(request), staff.brand_id, payload)
    return EndpointCreated.model_validate(
        {**EndpointRead.model_validate(endpoint).model_dump(), "secret": endpoint.secret}
    )


@router.get("/endpoints", response_model=Page[EndpointRead], summary="List endpoints")
async def list_endpoints(staff: Staff, session: SessionDep, page: PageDep) -> Page[EndpointRead]:
    rows = await service.list_endpoints(session, staff.brand_id, page)
    return Page.of(rows, page, key=lambda e: e.id, item=EndpointRead.model_validate)


@router.get(
    "/endpoints/{endpoint_id}", response_model=EndpointRead, summary="An endpoint", responses=_404
)
async def read_endpoint(endpoint_id: uuid.UUID, staff: Staff, session: SessionDep) -> EndpointRead:
    return EndpointRead.model_validate(
        await service.get_endpoint(session, staff.brand_id, endpoint_id)
    )


@router.patch(
    "/endpoints/{endpoint_id}",
    response_model=EndpointRead,
    summary="Change an endpoint",
    responses={**_404, **_422},
)
async def update_endpoint(
    endpoint_id: uuid.UUID,
    payload: EndpointUpdate,
    staff: Staff,
    session: SessionDep,
    request: Request,
) -> EndpointRead:
    endpoint = await service.update_endpoint(
        session, _settings(request), staff.brand_id, endpoint_id, payload
    )
    return EndpointRead.model_validate(endpoint)


@router.delete(
    "/endpoints/{endpoint_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove an endpoint",
    responses=_404,
)
async def delete_endpoint(endpoint_id: uuid.UUID, staff: Staff, session: SessionDep) -> Response:
    await service.delete_endpoint(session, staff.brand_id, endpoint_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/endpoints/{endpoint_id}/secret",
    response_model=EndpointSecret,
    summary="The endpoint's signing secret",
    responses=_404,
)
async def read_secret(endpoint_id: uuid.UUID, staff: Staff, session: SessionDep) -> EndpointSecret:
    return _secret(await service.get_endpoint(session, staff.brand_id, endpoint_id))


@router.post(
    "/endpoints/{endpoint_id}/secret/rotate",
    response_model=EndpointSecret,
    summary="Rotate the signing secret",
    responses={**_404, 409: {"description": "EndpointDisabled"}},
)
async def rotate_secret(
    endpoint_id: uuid.UUID, staff: Staff, session: SessionDep
) -> EndpointSecret:
    """A new secret; for 24 hours deliveries are signed with both the new and the old one, so
    the receiver can switch without losing a message."""
    return _secret(await service.rotate_secret(session, staff.brand_id, endpoint_id))
