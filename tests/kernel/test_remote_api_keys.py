"""Split deployment: a service without the members service in its process checks staff keys by
asking members over HTTP once, then from the shared Redis cache; revocation reaches it at once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from services.kernel.auth import (
    ApiKeyVerifier,
    Authenticator,
    MemberTokenCodec,
    ServiceTokens,
)
from services.kernel.runtime import RemoteApiKeyLookup, Runtime
from services.kernel.settings import Settings
from services.rewards.module import REWARDS
from tests.conftest import BrandFixture, app_for


class CountingTransport(httpx.AsyncBaseTransport):
    """The members service, reached "over the network" (in process), counting the calls."""

    def __init__(self, members_app: FastAPI) -> None:
        self.inner = httpx.ASGITransport(app=members_app)
        self.calls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        return await self.inner.handle_async_request(request)


@pytest.fixture
def members_link(app: FastAPI) -> CountingTransport:
    return CountingTransport(app)


@pytest.fixture
async def rewards_alone(
    base_settings: Settings, runtime: Runtime, redis: Redis, members_link: CountingTransport
) -> AsyncIterator[httpx.AsyncClient]:
    lookup = RemoteApiKeyLookup("http://members", 5.0, transport=members_link)
    remote_runtime = Runtime(
        settings=base_settings,
        database=runtime.database,
        redis=redis,
        authenticator=Authenticator(
            MemberTokenCodec(base_settings),
            ApiKeyVerifier(redis, lookup, 60),
            ServiceTokens(base_settings),
        ),
    )
    app = app_for([REWARDS], base_settings, remote_runtime)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://rewards") as client:
        yield client
    await lookup.aclose()


async def test_a_key_is_checked_with_members_once_then_from_the_cache(
    rewards_alone: httpx.AsyncClient, members_link: CountingTransport, brand: BrandFixture
) -> None:
    for _ in range(3):
        response = await rewards_alone.get("/rewards/v1/program", headers=brand.headers)
        assert (response.status_code, response.json()["error"]) == (409, "ProgramNotConfigured")
    assert members_link.calls == 1


async def test_unknown_and_revoked_keys_are_refused_by_the_remote_service(
    client: httpx.AsyncClient,
    rewards_alone: httpx.AsyncClient,
    members_link: CountingTransport,
    brand: BrandFixture,
) -> None:
    created = await client.post(
        "/members/v1/api-keys",
        json={"name": "pos", "scopes": ["rewards:write"]},
        headers=brand.headers,
    )
    key = {"Authorization": f"Bearer {created.json()['key']}"}
    assert (await rewards_alone.get("/rewards/v1/program", headers=key)).status_code == 409
    revoked = await client.delete(
        f"/members/v1/api-keys/{created.json()['id']}", headers=brand.headers
    )
    assert revoked.status_code == 200
    refused = await rewards_alone.get("/rewards/v1/program", headers=key)
    assert (refused.status_code, refused.json()["detail"]) == (401, "The API key has been revoked.")

    forged = {"Authorization": f"Bearer {created.json()['key']}x"}
    assert (await rewards_alone.get("/rewards/v1/program", headers=forged)).status_code == 401
    calls = members_link.calls
    unknown = {"Authorization": "Bearer kf_0123456789abcdef0123456789abcdef_secret"}
    for _ in range(2):
        assert (await rewards_alone.get("/rewards/v1/program", headers=unknown)).status_code == 401
    assert members_link.calls == calls + 1  # unknown keys are remembered briefly
