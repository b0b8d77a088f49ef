"""Admins manage API keys; keys carry scopes; a revoked key is refused at once everywhere."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import orjson
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.auth import ApiKeyRecord, api_key_cache_key, hash_api_key_secret
from services.kernel.clock import utcnow
from services.members.models import ApiKey
from tests.conftest import BrandFixture, MemberFixture, bearer

KEYS = "/members/v1/api-keys"
MEMBERS = "/members/v1/members"


async def create_key(
    client: httpx.AsyncClient, brand: BrandFixture, scopes: list[str], **extra: object
) -> dict[str, object]:
    response = await client.post(
        KEYS, json={"name": "POS", "scopes": scopes, **extra}, headers=brand.headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


async def test_a_created_key_is_shown_once_and_stored_hashed(
    client: httpx.AsyncClient, brand: BrandFixture, session: AsyncSession
) -> None:
    created = await create_key(client, brand, ["members:read", "members:read"])

    key = str(created["key"])
    key_id = uuid.UUID(str(created["id"]))
    assert key.startswith(f"kf_{key_id.hex}_")
    assert created["scopes"] == ["members:read"]
    assert created["revoked_at"] is None
    stored = await session.scalar(select(ApiKey.secret_hash).where(ApiKey.id == key_id))
    assert stored == hash_api_key_secret(key.split("_", 2)[2])
    listed = await client.get(KEYS, headers=brand.headers)
    assert listed.status_code == 200
    assert [k["name"] for k in listed.json()["items"]] == ["Admin", "POS"]
    assert all("key" not in k and "secret_hash" not in k for k in listed.json()["items"])


async def test_a_read_key_can_read_but_not_write_or_administer(
    client: httpx.AsyncClient, brand: BrandFixture, member: MemberFixture
) -> None:
    reader = bearer(str((await create_key(client, brand, ["members:read"]))["key"]))

    assert (await client.get(f"{MEMBERS}/{member.id}", headers=reader)).status_code == 200
    write = await client.post(MEMBERS, json={"external_id": "x"}, headers=reader)
    admin = await client.get(KEYS, headers=reader)

    assert write.status_code == 403
    assert write.json() == {
        "error": "Forbidden",
        "detail": "This API key lacks the `members:write` scope.",
    }
    assert admin.status_code == 403


async def test_a_key_for_another_area_cannot_read_members(
    client: httpx.AsyncClient, brand: BrandFixture, member: MemberFixture
) -> None:
    rewards = bearer(str((await create_key(client, brand, ["rewards:write"]))["key"]))
    response = await client.get(f"{MEMBERS}/{member.id}", headers=rewards)
    assert response.status_code == 403


async def test_a_revoked_key_is_refused_at_once(
    client: httpx.AsyncClient, brand: BrandFixture, redis: Redis
) -> None:
    created = await create_key(client, brand, ["members:read"])
    headers = bearer(str(created["key"]))
    assert (await client.get(MEMBERS, headers=headers)).status_code == 200  # now cached as valid

    revoked = await client.delete(f"{KEYS}/{created['id']}", headers=brand.headers)
    refused = await client.get(MEMBERS, headers=headers)

    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert refused.status_code == 401
    assert refused.json() == {"error": "Unauthorized", "detail": "The API key has been revoked."}
    cached = ApiKeyRecord.from_json(
        await redis.get(api_key_cache_key(uuid.UUID(str(created["id"]))))
    )
    assert cached.revoked is True
    assert 0 < await redis.ttl(api_key_cache_key(cached.key_id)) <= 60
    again = await client.delete(f"{KEYS}/{created['id']}", headers=brand.headers)
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]


async def test_an_expired_key_is_refused(
    client: httpx.AsyncClient, brand: BrandFixture, session: AsyncSession
) -> None:
    created = await create_key(
        client, brand, ["members:read"], expires_at=(utcnow() + timedelta(hours=1)).isoformat()
    )
    api_key = await session.get(ApiKey, uuid.UUID(str(created["id"])))
    assert api_key is not None
    api_key.expires_at = utcnow() - timedelta(seconds=1)
    await session.commit()

    response = await client.get(MEMBERS, headers=bearer(str(created["key"])))

    assert response.status_code == 401
    assert response.json()["detail"] == "The API key has expired."


async def test_another_brands_key_cannot_be_revoked(
    client: httpx.AsyncClient, brand: BrandFixture, other_brand: BrandFixture
) -> None:
    created = await create_key(client, brand, ["members:read"])
    response = await client.delete(f"{KEYS}/{created['id']}", headers=other_brand.headers)
    assert response.status_code == 404
    assert (await client.get(MEMBERS, headers=bearer(str(created["key"])))).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "scopes": []},
        {"name": "x", "scopes": ["root"]},
        {"name": "", "scopes": ["admin"]},
        {"name": "x", "scopes": ["admin"], "expires_at": "2001-01-01T00:00:00Z"},
        {"name": "x", "scopes": ["admin"], "expires_at": "2999-01-01T00:00:00"},
        {"name": "x", "scopes": ["admin"], "owner": "me"},
    ],
)
async def test_bad_key_requests_are_422(
    client: httpx.AsyncClient, brand: BrandFixture, body: dict[str, object]
) -> None:
    response = await client.post(KEYS, json=body, headers=brand.headers)
    assert response.status_code == 422
    assert response.json()["error"] == "ValidationError"


@pytest.mark.parametrize(
    ("authorization", "detail"),
    [
        (None, "Send `Authorization: Bearer <token>`."),
        ("Basic abc", "Use the Bearer scheme: `Authorization: Bearer <token>`."),
        ("Bearer ", "Use the Bearer scheme: `Authorization: Bearer <token>`."),
        ("Bearer kf_nothex_secret", "The API key is malformed."),
        ("Bearer kf_" + "0" * 32 + "_guess", "The API key is not valid."),
    ],
)
async def test_missing_or_malformed_credentials_are_401(
    client: httpx.AsyncClient, brand: BrandFixture, authorization: str | None, detail: str
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = await client.get(MEMBERS, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": "Unauthorized", "detail": detail}
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_a_right_key_id_with_a_wrong_secret_is_401(
    client: httpx.AsyncClient, brand: BrandFixture
) -> None:
    forged = brand.key.rsplit("_", 1)[0] + "_" + "A" * 43
    response = await client.get(MEMBERS, headers=bearer(forged))
    assert response.status_code == 401
    assert response.json()["detail"] == "The API key is not valid."


async def test_internal_verify_returns_the_record_of_a_matching_key_only(
    client: httpx.AsyncClient, brand: BrandFixture, app: FastAPI
) -> None:
    url = "/members/v1/internal/api-keys/verify"
    ok = await client.post(url, json={"key": brand.key})
    wrong = await client.post(url, json={"key": brand.key[:-2] + "xx"})
    malformed = await client.post(url, json={"key": "hello"})

    assert ok.status_code == 200
    record = ApiKeyRecord.from_json(ok.content)
    assert (record.brand_id, record.revoked) == (brand.id, False)
    assert "admin" in record.scopes
    assert orjson.loads(ok.content)["secret_hash"] == hash_api_key_secret(
        brand.key.split("_", 2)[2]
    )
    assert wrong.status_code == malformed.status_code == 401
    assert url not in app.openapi()["paths"]  # internal: not part of the public API
