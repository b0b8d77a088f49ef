"""Endpoint management through the REST API: create, read, change, rotate and delete; every
bad input refused with its code and path and nothing changed; another brand sees nothing."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.members import service as members_service
from services.members.schemas import ApiKeyCreate
from services.webhooks.endpoints import service
from services.webhooks.models import Endpoint
from tests.conftest import BrandFixture, bearer

BASE = "/webhooks/v1/endpoints"
GOOD: dict[str, Any] = {"url": "http://127.0.0.1:9/crm", "event_types": ["points.*"]}


async def _create(client: httpx.AsyncClient, brand: BrandFixture, **body: Any) -> dict[str, Any]:
    response = await client.post(BASE, json={**GOOD, **body}, headers=brand.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_an_endpoint_is_created_read_changed_and_deleted(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture
) -> None:
    created = await _create(
        client,
        brand,
        event_types=["points.*", "tier.changed", "points.earned", "tier.changed"],
        description="Our CRM",
        headers={"X-Api-Key": "crm-key"},
    )
    assert created["secret"].startswith("whsec_")
    assert created["event_types"] == ["points.*", "tier.changed", "points.earned"]
    assert (created["enabled"], created["max_concurrency"]) == (True, 16)
    endpoint_id = created["id"]

    read = (await client.get(f"{BASE}/{endpoint_id}", headers=brand.headers)).json()
    assert "secret" not in read
    assert read["headers"] == {"X-Api-Key": "crm-key"}
    secret = (await client.get(f"{BASE}/{endpoint_id}/secret", headers=brand.headers)).json()
    assert secret == {"secret": created["secret"], "previous_secret_expires_at": None}

    changed = await client.patch(
        f"{BASE}/{endpoint_id}",
        json={"event_types": ["*"], "enabled": False},
        headers=brand.headers,
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["event_types"], changed.json()["enabled"]) == (["*"], False)
    assert changed.json()["disabled_reason"] == "disabled by staff"

    listed = (await client.get(BASE, headers=brand.headers)).json()
    assert [e["id"] for e in listed["items"]] == [endpoint_id]

    gone = await client.delete(f"{BASE}/{endpoint_id}", headers=brand.headers)
    assert gone.status_code == 204
    again = await client.get(f"{BASE}/{endpoint_id}", headers=brand.headers)
    assert (again.status_code, again.json()["error"]) == (404, "EndpointNotFound")


async def test_a_rotation_keeps_the_old_secret_for_a_day(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture
) -> None:
    created = await _create(client, brand)
    before = utcnow()
    rotated = await client.post(f"{BASE}/{created['id']}/secret/rotate", headers=brand.headers)
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new.startswith("whsec_")
    assert new != created["secret"]
    endpoint = await session.get(Endpoint, uuid.UUID(created["id"]))
    assert endpoint is not None
    expires = endpoint.previous_secret_expires_at
    assert expires is not None
    assert timedelta(hours=24) <= expires - before < timedelta(hours=24, seconds=30)
    assert service.secrets_in_force(endpoint, expires - timedelta(seconds=1)) == [
        new,
        created["secret"],
    ]
    assert service.secrets_in_force(endpoint, expires) == [new]


async def test_bad_endpoints_are_refused_and_nothing_changes(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture
) -> None:
    existing = await _create(client, brand)
    cases: list[tuple[dict[str, Any], int, str, str | None]] = [
        ({"url": "ftp://example.com/x"}, 422, "UrlNotAllowed", "url"),
        ({"url": "http://93.184.215.14/hook"}, 422, "UrlNotAllowed", "url"),  # public, not https
        ({"url": "https://10.1.2.3/hook"}, 422, "UrlNotAllowed", "url"),
        ({"url": "https://169.254.169.254/latest"}, 422, "UrlNotAllowed", "url"),
        ({"url": "https://user:pw@127.0.0.1/hook"}, 422, "UrlNotAllowed", "url"),
        ({"url": "https://no-such-host.invalid/hook"}, 422, "UrlNotAllowed", "url"),
        ({"event_types": ["points.*", "pints.earned"]}, 422, "UnknownEventType",
         "event_types[1]"),
        ({"event_types": ["nothing.*"]}, 422, "UnknownEventType", "event_types[0]"),
        ({"event_types": []}, 422, "ValidationError", None),
        ({"headers": {"Webhook-Signature": "v1,forged"}}, 422, "ReservedHeader",
         "headers.Webhook-Signature"),
        ({"max_concurrency": 0}, 422, "ValidationError", None),
        ({"secret": "whsec_mine"}, 422, "ValidationError", None),
    ]  # fmt: skip
    count = await session.scalar(select(func.count()).select_from(Endpoint))
    for body, status, code, path in cases:
        response = await client.post(BASE, json={**GOOD, **body}, headers=brand.headers)
        assert (response.status_code, response.json()["error"]) == (status, code), body
        if path is not None:
            assert response.json()["detail"]["path"] == path, body
        if "secret" not in body and code != "ValidationError":
            patched = await client.patch(
                f"{BASE}/{existing['id']}", json=body, headers=brand.headers
            )
            assert (patched.status_code, patched.json()["error"]) == (status, code), body
    assert await session.scalar(select(func.count()).select_from(Endpoint)) == count
    session.expire_all()
    unchanged = (await client.get(f"{BASE}/{existing['id']}", headers=brand.headers)).json()
    assert (unchanged["url"], unchanged["event_types"]) == (GOOD["url"], GOOD["event_types"])

    # A disabled endpoint's secret is not rotated.
    await client.patch(f"{BASE}/{existing['id']}", json={"enabled": False}, headers=brand.headers)
    refused = await client.post(f"{BASE}/{existing['id']}/secret/rotate", headers=brand.headers)
    assert (refused.status_code, refused.json()["error"]) == (409, "EndpointDisabled")
    secret = (await client.get(f"{BASE}/{existing['id']}/secret", headers=brand.headers)).json()
    assert secret["secret"] == existing["secret"]


async def test_only_webhooks_keys_of_the_brand_reach_its_endpoints(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
) -> None:
    created = await _create(client, brand)
    theirs = await client.get(f"{BASE}/{created['id']}", headers=other_brand.headers)
    assert (theirs.status_code, theirs.json()["error"]) == (404, "EndpointNotFound")
    assert (await client.get(BASE, headers=other_brand.headers)).json()["items"] == []
    _, key = await members_service.create_api_key(
        session, brand.id, ApiKeyCreate(name="marketing only", scopes=["marketing:write"])
    )
    await session.commit()
    refused = await client.get(BASE, headers=bearer(key))
    assert (refused.status_code, refused.json()["error"]) == (403, "Forbidden")
