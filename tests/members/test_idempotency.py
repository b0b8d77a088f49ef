"""A retried create with the same Idempotency-Key returns the first response and creates once."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.members.models import IDEMPOTENCY, Member
from tests.conftest import BrandFixture
from tests.members.conftest import MEMBER_BODY, outbox_events

URL = "/members/v1/members"


async def test_a_replay_returns_the_first_response_byte_for_byte(
    client: httpx.AsyncClient, brand: BrandFixture, session: AsyncSession
) -> None:
    headers = {**brand.headers, "Idempotency-Key": "create-ada-1"}

    first = await client.post(URL, json=MEMBER_BODY, headers=headers)
    replay = await client.post(URL, json=MEMBER_BODY, headers=headers)

    assert first.status_code == replay.status_code == 201
    assert replay.content == first.content
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert await session.scalar(select(func.count()).select_from(Member)) == 1
    assert [t for t, _ in await outbox_events(session)] == ["member.created"]


async def test_the_same_key_with_another_body_is_409(
    client: httpx.AsyncClient, brand: BrandFixture, session: AsyncSession
) -> None:
    headers = {**brand.headers, "Idempotency-Key": "k-1"}
    await client.post(URL, json=MEMBER_BODY, headers=headers)

    reused = await client.post(URL, json={**MEMBER_BODY, "external_id": "crm-2"}, headers=headers)

    assert reused.status_code == 409
    assert reused.json()["error"] == "IdempotencyKeyReused"
    assert await session.scalar(select(func.count()).select_from(Member)) == 1


async def test_keys_are_per_brand(
    client: httpx.AsyncClient, brand: BrandFixture, other_brand: BrandFixture
) -> None:
    first = await client.post(
        URL, json=MEMBER_BODY, headers={**brand.headers, "Idempotency-Key": "k"}
    )
    other = await client.post(
        URL, json=MEMBER_BODY, headers={**other_brand.headers, "Idempotency-Key": "k"}
    )

    assert first.status_code == other.status_code == 201
    assert first.json()["id"] != other.json()["id"]


async def test_a_failed_request_does_not_keep_its_key(
    client: httpx.AsyncClient, brand: BrandFixture, session: AsyncSession
) -> None:
    await client.post(URL, json=MEMBER_BODY, headers=brand.headers)
    headers = {**brand.headers, "Idempotency-Key": "retry-me"}

    failed = await client.post(URL, json=MEMBER_BODY, headers=headers)
    retried = await client.post(URL, json={**MEMBER_BODY, "external_id": "crm-9"}, headers=headers)

    assert failed.status_code == 409
    assert failed.json()["error"] == "DuplicateExternalId"
    assert retried.status_code == 201
    keys = (await session.execute(select(IDEMPOTENCY.table.c.key))).scalars().all()
    assert keys == ["staff:retry-me"]


async def test_an_overlong_key_is_422(client: httpx.AsyncClient, brand: BrandFixture) -> None:
    response = await client.post(
        URL, json=MEMBER_BODY, headers={**brand.headers, "Idempotency-Key": "k" * 256}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
