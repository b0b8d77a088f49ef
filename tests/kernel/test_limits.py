"""Limits: rate limits per member and per API key, body size, pagination caps, outbound timeouts.

The rate limiter runs on the real Redis with a fake clock, so windows pass without waiting and
`Retry-After` is asserted exactly. One all-services app with small limits is built per module.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from services.gateway.module import GATEWAY
from services.kernel import errors, middleware
from services.kernel.app import attach_runtime, build_app, never_started
from services.kernel.auth import (
    ApiKeyVerifier,
    Authenticator,
    MemberPrincipal,
    MemberTokenCodec,
    Scope,
    ServiceTokens,
)
from services.kernel.db import Database
from services.kernel.pagination import MAX_IDS, MAX_LIMIT
from services.kernel.rate_limits import KEY_PREFIX, Bucket, RateLimiter
from services.kernel.runtime import RemoteApiKeyLookup, Runtime
from services.kernel.settings import Settings
from services.members import service as members_service
from services.members.schemas import ApiKeyCreate, MemberCreate
from services.registry import SERVICES
from tests.conftest import ROOT, BrandFixture, bearer, make_runtime

LIMIT = 3
BODY_LIMIT = 2_000
# 10 s into a window (windows are aligned on multiples of 60 s since the epoch).
START = 1_800_000_000.0 + 10.0


@dataclass
class FakeClock:
    now: float = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def limited_settings(base_settings: Settings) -> Settings:
    return base_settings.model_copy(
        update={
            "rate_limit_member_per_minute": LIMIT,
            "rate_limit_api_key_per_minute": LIMIT,
            "max_body_bytes": BODY_LIMIT,
        }
    )


@pytest.fixture(scope="module")
def limited_app(limited_settings: Settings) -> FastAPI:
    return build_app(SERVICES, limited_settings, never_started)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def limited(
    limited_app: FastAPI,
    limited_settings: Settings,
    database: Database,
    redis: Redis,
    clock: FakeClock,
) -> Iterator[FastAPI]:
    attach_runtime(limited_app, make_runtime(limited_settings, database, redis))
    limited_app.state.rate_limiter = RateLimiter(redis, clock=clock)
    yield limited_app
    for name in ("gateway_upstreams", "gateway_manifests", "gateway_channels"):
        if hasattr(limited_app.state, name):
            delattr(limited_app.state, name)


@pytest.fixture
async def http(limited: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=limited, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://kinfolk.test") as client:
        yield client


async def new_member_token(
    session: AsyncSession, brand: BrandFixture, tokens: MemberTokenCodec
) -> tuple[uuid.UUID, str]:
    member = await members_service.create_member(
        session, brand.id, MemberCreate(external_id=f"m-{uuid.uuid4().hex[:8]}")
    )
    await session.commit()
    return member.id, tokens.issue(brand.id, member.id, timedelta(hours=1))


async def new_key(session: AsyncSession, brand: BrandFixture) -> tuple[uuid.UUID, str]:
    key, token = await members_service.create_api_key(
        session, brand.id, ApiKeyCreate(name=f"k-{uuid.uuid4().hex[:6]}", scopes=[Scope.ADMIN])
    )
    await session.commit()
    return key.id, token


async def counted(redis: Redis, principal: str) -> int:
    """Requests counted for a principal (`member:<brand>:<id>` or `key:<id>`) in every window."""
    total = 0
    async for key in redis.scan_iter(match=f"{KEY_PREFIX}{{{principal}}}:*"):
        total += int(await redis.get(key) or 0)
    return total


# --- Rate limits ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    name: str
    path: str  # a route this kind of principal may call
    who: str
    metric: str  # the `kind` label of its metrics
    make: Callable[[AsyncSession, BrandFixture, MemberTokenCodec], Awaitable[tuple[str, str]]]


async def _members(
    session: AsyncSession, brand: BrandFixture, tokens: MemberTokenCodec
) -> tuple[str, str]:
    member_id, token = await new_member_token(session, brand, tokens)
    return f"member:{brand.id}:{member_id}", token


async def _keys(
    session: AsyncSession, brand: BrandFixture, tokens: MemberTokenCodec
) -> tuple[str, str]:
    key_id, token = await new_key(session, brand)
    return f"key:{key_id}", token


KINDS = [
    Kind("member", "/members/v1/me", "this member", "member", _members),
    Kind("api key", "/members/v1/members", "this API key", "api_key", _keys),
]


def refusals(kind: str, outcome: str = "refused") -> float:
    labels = {"kind": kind, "outcome": outcome}
    return REGISTRY.get_sample_value("kinfolk_rate_limit_events_total", labels) or 0.0


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
async def test_a_flood_from_one_principal_spends_only_its_own_budget(
    kind: Kind,
    http: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    tokens: MemberTokenCodec,
    redis: Redis,
    clock: FakeClock,
) -> None:
    flooder, flooder_token = await kind.make(session, brand, tokens)
    other, other_token = await kind.make(session, brand, tokens)
    refusals_before = refusals(kind.metric)

    for remaining in (2, 1, 0):
        answer = await http.get(kind.path, headers=bearer(flooder_token))
        assert answer.status_code == 200, answer.text
        assert answer.headers["ratelimit-limit"] == "3"
        assert answer.headers["ratelimit-remaining"] == str(remaining)

    refused = await http.get(kind.path, headers=bearer(flooder_token))
    # 3 requests 10 s into the window: the next window starts in 50 s, and counts these 3 for
    # the share of it the sliding minute still covers, which is 2 once 20 s of it have passed.
    assert refused.status_code == 429
    assert refused.json() == {
        "error": "RateLimited",
        "detail": f"Too many requests for {kind.who}: the limit is 3 a minute; try again in 70 s.",
    }
    assert refused.headers["retry-after"] == "70"
    assert refused.headers["ratelimit-remaining"] == "0"
    assert len(refused.headers["x-request-id"]) == 36  # logged like any other request
    for _ in range(5):
        assert (await http.get(kind.path, headers=bearer(flooder_token))).status_code == 429
    # A second `Authorization` header that does not verify is no way around it: the route would
    # serve the first, so the first is what is charged.
    doubled = [("Authorization", f"Bearer {flooder_token}"), ("Authorization", "Bearer x.y.z")]
    assert (await http.get(kind.path, headers=doubled)).status_code == 429
    # Refused requests spend nothing, so retrying while refused does not push the wait back.
    assert await counted(redis, flooder) == 3

    # Everyone else is served as before, and their requests are counted only for them.
    served = await http.get(kind.path, headers=bearer(other_token))
    assert served.status_code == 200
    assert served.headers["ratelimit-remaining"] == "2"
    assert await counted(redis, other) == 1
    assert await counted(redis, flooder) == 3

    # Probes are never limited.
    for probe in ("/healthz", "/readyz", "/metrics"):
        answer = await http.get(probe, headers=bearer(flooder_token))
        assert answer.status_code == 200
        assert "ratelimit-limit" not in answer.headers

    clock.now += 69.9
    again = await http.get(kind.path, headers=bearer(flooder_token))
    assert (again.status_code, again.headers["retry-after"]) == (429, "1")
    clock.now += 0.1
    assert (await http.get(kind.path, headers=bearer(flooder_token))).status_code == 200
    assert refusals(kind.metric) - refusals_before == 8


async def test_credentials_that_do_not_verify_spend_no_ones_budget(
    http: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    tokens: MemberTokenCodec,
    redis: Redis,
) -> None:
    member_id, token = await new_member_token(session, brand, tokens)
    key_id, key = await new_key(session, brand)
    forged = jwt.encode(
        {"sub": str(member_id), "brand": str(brand.id), "iss": "kinfolk", "aud": "kinfolk"}
        | {"exp": 4_000_000_000},
        "not-the-secret-" + "y" * 40,
        algorithm="HS256",
    )
    wrong_secret = key.rsplit("_", 1)[0] + "_wrong"
    for _ in range(LIMIT + 2):
        assert (await http.get("/members/v1/me", headers=bearer(forged))).status_code == 401
        assert (
            await http.get("/members/v1/members", headers=bearer(wrong_secret))
        ).status_code == 401
        assert (await http.get("/members/v1/me")).status_code == 401
    assert await counted(redis, f"member:{brand.id}:{member_id}") == 0
    assert await counted(redis, f"key:{key_id}") == 0
    assert (await http.get("/members/v1/me", headers=bearer(token))).status_code == 200
    assert (await http.get("/members/v1/members", headers=bearer(key))).status_code == 200


async def test_calls_a_request_makes_in_process_are_part_of_it(
    limited: FastAPI,
    monkeypatch: pytest.MonkeyPatch,
    http: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    tokens: MemberTokenCodec,
    redis: Redis,
) -> None:
    """The privacy export asks every other service in process with the member's own token, and
    a GraphQL query calls the services it reads: each counts once, as the one request it is,
    and its token is verified once, by the rate limit check, for all of them."""
    member_id, token = await new_member_token(session, brand, tokens)
    codec: MemberTokenCodec = limited.state.authenticator.tokens
    verified: list[str] = []
    verify = codec.verify

    def counting_verify(presented: str) -> MemberPrincipal:
        verified.append(presented)
        return verify(presented)

    monkeypatch.setattr(codec, "verify", counting_verify)
    export = await http.get("/members/v1/me/export", headers=bearer(token))
    assert export.status_code == 200, export.text
    assert export.headers["ratelimit-remaining"] == "2"
    query = await http.post(
        "/graphql", json={"query": "{ me { displayName } }"}, headers=bearer(token)
    )
    assert query.status_code == 200
    assert "errors" not in query.json()
    assert query.headers["ratelimit-remaining"] == "1"
    assert await counted(redis, f"member:{brand.id}:{member_id}") == 2
    assert verified == [token, token]


async def test_the_limiter_fails_open_when_redis_is_down(
    limited: FastAPI,
    http: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    tokens: MemberTokenCodec,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    warnings: list[tuple[str, dict[str, Any]]] = []

    class Recorder:
        def info(self, event: str, **fields: Any) -> None:
            pass  # the access log

        def warning(self, event: str, **fields: Any) -> None:
            warnings.append((event, fields))

    monkeypatch.setattr(middleware, "log", Recorder())
    # Nothing listens on port 1: every command fails at once with a connection error.
    gone = Redis.from_url("redis://127.0.0.1:1/0")
    limited.state.rate_limiter = RateLimiter(gone)
    member_id, token = await new_member_token(session, brand, tokens)
    unchecked_before = refusals("member", "unavailable")
    try:
        for _ in range(LIMIT + 1):
            answer = await http.get("/members/v1/me", headers=bearer(token))
            assert answer.status_code == 200
            assert "ratelimit-limit" not in answer.headers
    finally:
        await gone.aclose()
    assert [event for event, _ in warnings] == ["rate_limit.unavailable"] * (LIMIT + 1)
    assert warnings[0][1]["bucket"] == f"member:{brand.id}:{member_id}"
    assert refusals("member", "unavailable") - unchecked_before == LIMIT + 1


async def test_a_limit_of_zero_turns_the_kind_off(
    base_settings: Settings,
    runtime: Runtime,
    session: AsyncSession,
    brand: BrandFixture,
    tokens: MemberTokenCodec,
    redis: Redis,
) -> None:
    from services.members.module import MEMBERS

    settings = base_settings.model_copy(
        update={"rate_limit_member_per_minute": 0, "rate_limit_api_key_per_minute": 1}
    )
    app = build_app([MEMBERS], settings, runtime)
    _, token = await new_member_token(session, brand, tokens)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://kinfolk.test") as client:
        for _ in range(5):
            answer = await client.get("/members/v1/me", headers=bearer(token))
            assert answer.status_code == 200
            assert "ratelimit-limit" not in answer.headers
        assert (await client.get("/members/v1/members", headers=brand.headers)).status_code == 200
        refused = await client.get("/members/v1/members", headers=brand.headers)
        assert refused.status_code == 429
    assert [key async for key in redis.scan_iter(match=f"{KEY_PREFIX}{{member:*")] == []


@pytest.mark.parametrize(
    ("previous", "current", "elapsed", "allowed", "retry_after"),
    [
        # Nothing counted yet.
        (0, 0, 0, True, 0),
        # This window is full: the next window, where these weigh less and less, lets one in
        # once 1 - 2/3 of it has passed (20 s), i.e. 50 s + 20 s from 10 s into this one.
        (0, 3, 10_000, False, 70),
        # Room in this window, but the previous one still weighs 3 * 50/60 = 2.5: 2.5 + 1 + 1 > 3
        # until the previous share is at most 1, at 40 s.
        (3, 1, 10_000, False, 30),
        # The previous share has shrunk enough: 3 * 20/60 + 1 + 1 = 3.
        (3, 1, 40_000, True, 0),
        # A limit of one: the full window weighs 1 until the end of the next.
        (0, 1, 59_000, False, 61),
    ],
)
async def test_the_sliding_window_weighs_the_previous_minute(
    redis: Redis, previous: int, current: int, elapsed: int, allowed: bool, retry_after: int
) -> None:
    clock = FakeClock(1_800_000_000.0 + elapsed / 1000)
    limiter = RateLimiter(redis, clock=clock)
    limit = 1 if (current, elapsed) == (1, 59_000) else LIMIT
    bucket = Bucket("member:test", limit, "member", "this member")
    this_window, previous_window = limiter.keys(bucket, int(clock.now * 1000))
    if previous:
        await redis.set(previous_window, previous)
    if current:
        await redis.set(this_window, current)
    decision = await limiter.hit(bucket)
    assert (decision.allowed, decision.retry_after) == (allowed, retry_after)
    assert int(await redis.get(this_window) or 0) == current + (1 if allowed else 0)


async def test_concurrent_requests_never_overshoot(redis: Redis) -> None:
    limiter = RateLimiter(redis, clock=FakeClock())
    bucket = Bucket("key:racing", 5, "api_key", "this API key")
    decisions = await asyncio.gather(*(limiter.hit(bucket) for _ in range(40)))
    assert sum(d.allowed for d in decisions) == 5
    assert sorted(d.remaining for d in decisions if d.allowed) == [0, 1, 2, 3, 4]
    assert await counted(redis, "key:racing") == 5


# --- Body size ---------------------------------------------------------------------------------


async def _chunks(total: int) -> AsyncIterator[bytes]:
    yield b'{"external_id": "chunked", "display_name": "'
    for _ in range(total // 500):
        yield b"x" * 500
    yield b'"}'


@pytest.mark.parametrize("path", ["/members/v1/members", "/graphql"])
@pytest.mark.parametrize("sent", ["content-length", "chunked"])
async def test_a_body_over_the_limit_is_413_and_nothing_is_done(
    path: str, sent: str, http: httpx.AsyncClient, brand: BrandFixture
) -> None:
    headers = {**brand.headers, "content-type": "application/json"}
    if sent == "content-length":
        body = b'{"external_id": "declared", "display_name": "' + b"x" * BODY_LIMIT + b'"}'
        answer = await http.post(path, content=body, headers=headers)
    else:
        answer = await http.post(path, content=_chunks(BODY_LIMIT * 2), headers=headers)
    assert answer.status_code == 413
    assert answer.json() == {
        "error": "PayloadTooLarge",
        "detail": f"The body is larger than this endpoint accepts ({BODY_LIMIT} bytes).",
    }
    listed = await http.get("/members/v1/members", headers=brand.headers)
    assert listed.json()["items"] == []


# --- Pagination caps ---------------------------------------------------------------------------


def test_every_rest_list_caps_its_page_size() -> None:
    # The committed OpenAPI documents (the contracts test keeps them current) are every route.
    capped: list[str] = []
    for document_path in sorted((ROOT / "schemas" / "openapi").glob("*.json")):
        document = json.loads(document_path.read_text())
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                for parameter in operation.get("parameters", []):
                    if parameter["in"] != "query":
                        continue
                    schema = parameter.get("schema", {})
                    where = (document_path.name, method, path)
                    if parameter["name"] == "limit":
                        assert schema.get("maximum", 10**9) <= MAX_LIMIT, where
                        capped.append(f"{method} {path}")
                    if parameter["name"] == "ids":
                        variants = schema.get("anyOf", [schema])
                        arrays = [v for v in variants if v.get("type") == "array"]
                        assert arrays, where
                        assert all(v.get("maxItems", 10**9) <= MAX_IDS for v in arrays), where
    assert len(capped) > 30  # the check saw the lists, not an empty document


async def test_a_page_over_the_cap_is_422(http: httpx.AsyncClient, brand: BrandFixture) -> None:
    over = await http.get(f"/members/v1/members?limit={MAX_LIMIT + 1}", headers=brand.headers)
    assert over.status_code == 422
    body = over.json()
    assert body["error"] == "ValidationError"
    assert [(d["loc"], d["type"]) for d in body["detail"]] == [
        (["query", "limit"], "less_than_equal")
    ]
    at_cap = await http.get(f"/members/v1/members?limit={MAX_LIMIT}", headers=brand.headers)
    assert at_cap.status_code == 200


# --- Outbound timeouts -------------------------------------------------------------------------


class Quiet:
    """A logger that drops everything."""

    def warning(self, event: str, **fields: Any) -> None:
        pass

    def exception(self, event: str, **fields: Any) -> None:
        pass


@dataclass
class HangingServer:
    """Accepts connections, reads the request and never answers."""

    url: str = ""
    requests: list[bytes] = field(default_factory=list)


@pytest.fixture
async def hanging() -> AsyncIterator[HangingServer]:
    found = HangingServer()
    release = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        found.requests.append(await reader.readline())
        await release.wait()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    found.url = f"http://127.0.0.1:{port}"
    yield found
    release.set()
    server.close()
    await server.wait_closed()


async def test_the_gateway_answers_unavailable_when_a_service_never_answers(
    base_settings: Settings,
    database: Database,
    redis: Redis,
    hanging: HangingServer,
    tokens: MemberTokenCodec,
) -> None:
    settings = base_settings.model_copy(
        update={
            "outbound_timeout_seconds": 0.2,
            **{f"{s}_url": hanging.url for s in ("members", "rewards", "community", "recommender")},
        }
    )
    app = build_app([GATEWAY], settings, make_runtime(settings, database, redis))
    token = tokens.issue(uuid.uuid4(), uuid.uuid4(), timedelta(hours=1))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://kinfolk.test") as client:
        async with asyncio.timeout(30):  # a guard against hanging the suite, not a measure
            answer = await client.post(
                "/graphql", json={"query": "{ me { displayName } }"}, headers=bearer(token)
            )
    await app.state.gateway_upstreams.aclose()
    assert answer.status_code == 200
    body = answer.json()
    assert body["data"] == {"me": {"displayName": None}}
    assert [(e["message"], e["extensions"]["code"]) for e in body["errors"]] == [
        ("The members service is not reachable; try again shortly.", "SERVICE_UNAVAILABLE")
    ]
    assert hanging.requests == [b"GET /members/v1/me HTTP/1.1\r\n"]


async def test_an_api_key_check_against_a_hanging_members_service_is_503(
    base_settings: Settings,
    database: Database,
    redis: Redis,
    hanging: HangingServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from services.rewards.module import REWARDS

    # The 500's log would render a long traceback with its locals: slow, and not the point here.
    monkeypatch.setattr(errors, "log", Quiet())

    settings = base_settings.model_copy(
        update={"outbound_timeout_seconds": 0.2, "members_url": hanging.url}
    )
    lookup = RemoteApiKeyLookup(hanging.url, settings.outbound_timeout_seconds)
    runtime = Runtime(
        settings=settings,
        database=database,
        redis=redis,
        authenticator=Authenticator(
            tokens=MemberTokenCodec(settings),
            api_keys=ApiKeyVerifier(redis, lookup, settings.api_key_cache_seconds),
            services=ServiceTokens(settings),
        ),
    )
    app = build_app([REWARDS], settings, runtime)
    key = f"kf_{uuid.uuid4().hex}_secret"
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://kinfolk.test") as c:
            async with asyncio.timeout(30):
                answer = await c.get("/rewards/v1/tiers", headers=bearer(key))
    finally:
        await lookup.aclose()
    assert hanging.requests  # the check was tried
    assert answer.status_code == 503
    assert answer.json()["error"] == "ServiceUnavailable"
