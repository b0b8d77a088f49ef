"""Endpoint management's rules: a URL the server may call, event types that exist, custom
headers that leave the signature alone, and secret rotation with a grace period. Never commits."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.kernel.ids import new_id
from services.kernel.pagination import PageRequest
from services.kernel.settings import Settings
from services.webhooks import catalog, signing, urls
from services.webhooks.endpoints.errors import (
    EndpointDisabled,
    EndpointNotFound,
    ReservedHeader,
    UnknownEventType,
    UrlNotAllowed,
)
from services.webhooks.endpoints.repository import EndpointRepository
from services.webhooks.endpoints.schemas import EndpointCreate, EndpointUpdate
from services.webhooks.models import Endpoint

# Deliveries carry the old signature as well for this long after a rotation.
ROTATION_GRACE = timedelta(hours=24)

# Headers a delivery sets itself: a custom header may not replace them.
RESERVED_HEADERS = frozenset(
    {
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "content-type",
        "content-length",
        "host",
        "user-agent",
        "transfer-encoding",
        "connection",
    }
)


async def check_url(settings: Settings, url: str) -> None:
    try:
        await urls.check_url(
            url,
            urls.networks(settings.webhooks_allowed_networks),
            resolve_timeout_seconds=settings.webhooks_timeout_seconds,
        )
    except urls.UrlRefused as exc:
        raise UrlNotAllowed("url", str(exc)) from exc


def check_event_types(event_types: list[str]) -> list[str]:
    for index, pattern in enumerate(event_types):
        if not catalog.known_pattern(pattern):
            raise UnknownEventType(
                f"event_types[{index}]",
                f"No service publishes {pattern!r}: name a type such as `points.earned`, a "
                "family such as `points.*`, or `*` for every event.",
            )
    return list(dict.fromkeys(event_types))


def check_headers(headers: dict[str, str]) -> dict[str, str]:
    for name in headers:
        if name.lower() in RESERVED_HEADERS:
            raise ReservedHeader(
                f"headers.{name}", f"{name!r} is set by every delivery and cannot be replaced."
            )
    return headers


async def create_endpoint(
    session: AsyncSession, settings: Settings, brand_id: uuid.UUID, payload: EndpointCreate
) -> Endpoint:
    event_types = check_event_types(payload.event_types)
    headers = check_headers(payload.headers)
    await check_url(settings, payload.url)
    now = utcnow()
    return await EndpointRepository(session).add(
        Endpoint(
            id=new_id(),
            brand_id=brand_id,
            url=payload.url,
            description=payload.description,
            event_types=event_types,
            segment_id=payload.segment_id,
            headers=headers,
            enabled=payload.enabled,
            rate_limit_per_second=payload.rate_limit_per_second,
            max_concurrency=payload.max_concurrency,
            secret=signing.new_secret(),
            created_at=now,
            updated_at=now,
        )
    )


async def get_endpoint(
    session: AsyncSession, brand_id: uuid.UUID, endpoint_id: uuid.UUID
) -> Endpoint:
    endpoint = await EndpointRepository(session).get(brand_id, endpoint_id)
    if endpoint is None:
        raise EndpointNotFound(endpoint_id)
    return endpoint


async def list_endpoints(
    session: AsyncSession, brand_id: uuid.UUID, page: PageRequest
) -> list[Endpoint]:
    return await EndpointRepository(session).page(brand_id, page)


async def update_endpoint(
    session: AsyncSession,
    settings: Settings,
    brand_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    payload: EndpointUpdate,
) -> Endpoint:
    endpoint = await get_endpoint(session, brand_id, endpoint_id)
    changes = payload.model_dump(exclude_unset=True)
    # Check everything before changing anything: a refusal leaves the endpoint as it was.
    if payload.event_types is not None:
        changes["event_types"] = check_event_types(payload.event_types)
    if payload.headers is not None:
        changes["headers"] = check_headers(payload.headers)
    if payload.url is not None:
        await check_url(settings, payload.url)
    for name in ("url", "event_types", "headers", "enabled", "max_concurrency"):
        if name in changes and changes[name] is None:
            del changes[name]  # null for a field that has no "unset": leave it
    for name, value in changes.items():
        setattr(endpoint, name, value)
    if changes.get("enabled") is True:
        # Enabled again: its failures so far no longer count toward disabling it.
        endpoint.disabled_reason = None
        endpoint.failing_since = None
    elif changes.get("enabled") is False:
        endpoint.disabled_reason = "disabled by staff"
    endpoint.updated_at = utcnow()
    await session.flush()
    return endpoint


async def delete_endpoint(
    session: AsyncSession, brand_id: uuid.UUID, endpoint_id: uuid.UUID
) -> None:
    endpoint = await get_endpoint(session, brand_id, endpoint_id)
    await EndpointRepository(session).delete(endpoint)


async def rotate_secret(
    session: AsyncSession, brand_id: uuid.UUID, endpoint_id: uuid.UUID
) -> Endpoint:
    """A new secret; the current one stays valid (deliveries carry both signatures) for
    `ROTATION_GRACE`. A second rotation within the grace period drops the oldest."""
    endpoint = await get_endpoint(session, brand_id, endpoint_id)
    if not endpoint.enabled:
        raise EndpointDisabled(
            "The endpoint is disabled, so nothing is signed with its secret: enable it first "
            "(PATCH enabled: true), then rotate."
        )
    now = utcnow()
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = now + ROTATION_GRACE
    endpoint.secret = signing.new_secret()
    endpoint.updated_at = now
    await session.flush()
    return endpoint


def secrets_in_force(endpoint: Endpoint, at: datetime) -> list[str]:
    """The secrets a delivery at `at` is signed with: the current one, and the previous one
    during its grace period."""
    found = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret is not None and expires is not None and at < expires:
        found.append(endpoint.previous_secret)
    return found
