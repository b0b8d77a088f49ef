"""Shared by the fuzzing tests: schemathesis cases generated with a fixed seed and sent through
the test's own client, a world of resources for them to name, and event delivery.

Why not schemathesis's own ASGI transport: it drives the app from a loop of its own (Starlette's
TestClient), where the test's database connection, bound to the session's loop, cannot follow.
So schemathesis generates each case and judges the answer, and the request in between is the
exact one it would send (`requests`' prepared request), sent through httpx over ASGI.
"""

from __future__ import annotations

import os
import uuid
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
import requests
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from redis.asyncio import Redis
from schemathesis import GenerationMode
from schemathesis.core.result import Err
from schemathesis.generation.case import Case
from schemathesis.schemas import APIOperation, BaseSchema
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.app import attach_runtime
from services.kernel.auth import MemberTokenCodec
from services.kernel.clock import utcnow
from services.kernel.consumer import consumer_specs
from services.kernel.db import Database
from services.kernel.events import Event, parse_event
from services.kernel.outbox import OUTBOX_TABLE
from services.kernel.runtime import Runtime
from services.kernel.settings import Settings
from services.registry import SERVICES
from tests.conftest import (
    BrandFixture,
    app_for,
    bearer,
    make_brand,
    make_runtime,
    purge_brand,
)

BASE_URL = "http://kinfolk.test"


def without_limits(settings: Settings) -> Settings:
    """`settings` with the per-member, per-key and GraphQL cost budgets out of the way: the
    fuzzers and the authorisation matrix send one token hundreds or thousands of times a minute
    (more with KINFOLK_FUZZ_EXAMPLES). The limits have their own tests (tests/kernel/test_limits.py,
    tests/gateway)."""
    return settings.model_copy(
        update={
            "rate_limit_member_per_minute": 0,
            "rate_limit_api_key_per_minute": 0,
            "graphql_cost_per_minute": 10_000_000,
        }
    )


@pytest.fixture
def unlimited_settings(base_settings: Settings) -> Settings:
    return without_limits(base_settings)


@pytest.fixture
def runtime(unlimited_settings: Settings, database: Database, redis: Redis) -> Runtime:
    return make_runtime(unlimited_settings, database, redis)


@pytest.fixture
def app(unlimited_settings: Settings, runtime: Runtime) -> FastAPI:
    """The all-services app, as tests/conftest.py's, without the limits (`without_limits`)."""
    return app_for(SERVICES, unlimited_settings, runtime)


# Cases per operation: EXAMPLES that fit the schema, and half as many that do not. Negative
# generation costs several times more than positive (schemathesis mutates the schema and filters
# until the value breaks it), so CI's one positive case per operation comes with a negative one
# only where the operation takes a body, where the validation written by hand lives. Set
# KINFOLK_FUZZ_EXAMPLES for a longer run (e.g. 10) and KINFOLK_FUZZ_SEED for other cases.
EXAMPLES = int(os.environ.get("KINFOLK_FUZZ_EXAMPLES", "1"))
SEED = int(os.environ.get("KINFOLK_FUZZ_SEED", "0"))

Operation = APIOperation[Any, Any, Any, Any]
FuzzCase = Case[Any]


def counts(operation: Operation) -> dict[GenerationMode, int]:
    """How many cases of each kind `operation` gets."""
    has_body = any(True for _ in operation.body)
    negative = max(EXAMPLES // 2, 1 if has_body else 0)
    return {GenerationMode.POSITIVE: EXAMPLES, GenerationMode.NEGATIVE: negative}


def operations_of(schema: BaseSchema) -> list[Operation]:
    """Every operation of a loaded schema; one schemathesis cannot read fails the test."""
    found: list[Operation] = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        found.append(result.ok())
    return found


_REQUEST_ARGUMENTS = frozenset(
    {"method", "url", "headers", "files", "data", "params", "cookies", "json"}
)


def generate(operation: Operation, mode: GenerationMode, count: int) -> list[FuzzCase]:
    """`count` cases for `operation`: the same ones every run for one KINFOLK_FUZZ_SEED, so a
    failure in CI is one that reproduces."""
    cases: list[FuzzCase] = []
    if count == 0:
        return cases

    @seed(zlib.crc32(f"{SEED}:{mode.value}:{operation.label}".encode()))
    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(mode))
    def collect(case: FuzzCase) -> None:
        cases.append(case)

    try:
        collect()
    except Unsatisfiable:
        # Negative cases of an operation without parameters or body: nothing to get wrong.
        assert mode is GenerationMode.NEGATIVE, operation.label
    return cases


async def send(
    client: httpx.AsyncClient, case: FuzzCase, headers: dict[str, str], base_url: str = BASE_URL
) -> httpx.Response:
    """Sends the request schemathesis would send for `case`, through `client`."""
    arguments = case.as_transport_kwargs(base_url=base_url, headers=headers)
    prepared = requests.Request(
        **{k: v for k, v in arguments.items() if k in _REQUEST_ARGUMENTS}
    ).prepare()
    assert prepared.method is not None
    assert prepared.url is not None
    body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
    assert body is None or isinstance(body, bytes), type(body)  # JSON, forms and multipart
    sent = [
        (k, v.decode("latin-1") if isinstance(v, bytes) else v) for k, v in prepared.headers.items()
    ]
    return await client.request(prepared.method, prepared.url, headers=sent, content=body)


@dataclass(frozen=True)
class FuzzWorld:
    """A brand with one of each main resource, made through the API, and every event delivered
    to every consumer, so fuzzed requests that name these ids get past the lookups."""

    staff: dict[str, str]  # the brand's admin key: every scope
    member: uuid.UUID  # the member whose token `member_headers` carries
    member_headers: dict[str, str]
    other: uuid.UUID  # a second member: whom the member follows, blocks, ...
    ids: dict[str, str]  # path parameter name -> an existing id, e.g. "perk_id"


def _created(response: httpx.Response) -> str:
    assert response.status_code in (200, 201), response.text
    return str(response.json()["id"])


async def deliver_events(session: AsyncSession, brand_id: uuid.UUID | None = None) -> None:
    """Every event in every outbox to every consumer that wants it, as the workers would: each
    consumer records the events in its inbox (a seen one is skipped) and handles the new ones as
    one batch read, in a savepoint. Handlers may write events of their own, so this goes round
    until nothing new arrives. Given `brand_id`, only that brand's events (a committed database
    may hold other brands' that no consumer took)."""
    outboxes = [
        (service.name, table)
        for service in SERVICES
        for table in service.metadata.tables.values()
        if table.name == OUTBOX_TABLE
    ]
    specs = consumer_specs(SERVICES)
    for _ in range(5):
        found: list[tuple[uuid.UUID, str, Event]] = []
        for name, table in outboxes:
            query = select(table.c.id, table.c.payload)
            if brand_id is not None:
                query = query.where(table.c.brand_id == brand_id)
            rows = await session.execute(query)
            found.extend((i, name, parse_event(orjson.dumps(p))) for i, p in rows)
        found.sort(key=lambda row: row[0])
        handled = 0
        for spec in specs:
            wanted = [e for _, source, e in found if source in spec.services and spec.wants(e.type)]
            if not wanted:
                continue
            async with session.begin_nested():
                new = set(
                    await session.scalars(
                        insert(spec.inbox)
                        .values([{"consumer": spec.name, "event_id": e.id} for e in wanted])
                        .on_conflict_do_nothing()
                        .returning(spec.inbox.c.event_id)
                    )
                )
                fresh = [event for event in wanted if event.id in new]
                if fresh:
                    await spec.handle_batch(session, fresh)
                    handled += len(fresh)
        if not handled:
            return
    raise AssertionError("events kept coming after five rounds of delivery")


async def build_world(
    client: httpx.AsyncClient,
    brand: BrandFixture,
    tokens: MemberTokenCodec,
    deliver: Callable[[], Awaitable[None]],
) -> FuzzWorld:
    """The fuzz world of `brand`, made through `client`; `deliver` hands the events written so
    far to every consumer."""
    staff = brand.headers

    async def post(path: str, body: dict[str, Any], headers: dict[str, str] = staff) -> str:
        return _created(await client.post(path, json=body, headers=headers))

    member = uuid.UUID(
        await post("/members/v1/members", {"external_id": "fuzz-1", "email": "fuzz@example.com"})
    )
    other = uuid.UUID(await post("/members/v1/members", {"external_id": "fuzz-2"}))
    member_headers = bearer(tokens.issue(brand.id, member, timedelta(hours=1)))
    program = {"currency": "EUR", "points_per_unit": 1}
    assert (await client.put("/rewards/v1/program", json=program, headers=staff)).is_success
    await deliver()  # the members are known to every service from here

    starts = utcnow() + timedelta(days=3)
    window = {
        "starts_at": (starts - timedelta(days=4)).isoformat(),
        "ends_at": (starts + timedelta(days=30)).isoformat(),
    }
    experience = await post(
        "/community/v1/experiences", {"title": "Masterclass", "kind": "masterclass"}
    )
    ids = {
        "tier_id": await post(
            "/rewards/v1/tiers", {"name": "Gold", "rank": 1, "threshold_minor": 10_000}
        ),
        "perk_id": await post(
            "/rewards/v1/perks",
            {"name": "Mini", "category": "skincare", "cost_points": 10, "kind": "custom"},
        ),
        "campaign_id": await post(
            "/rewards/v1/campaigns", {"name": "Spring", "bonus_points": 10, **window}
        ),
        "post_id": await post("/community/v1/posts", {"body": "Hello all"}, member_headers),
        "group_id": await post("/community/v1/groups", {"name": "Skincare fans"}),
        "prompt_id": await post("/community/v1/prompts", {"title": "Your routine?", **window}),
        "idea_id": await post(
            "/community/v1/ideas",
            {"title": "Refills", "body": "Refill pouches please", "category": "product"},
            member_headers,
        ),
        "experience_id": experience,
        "session_id": await post(
            f"/community/v1/experiences/{experience}/sessions",
            {
                "starts_at": starts.isoformat(),
                "ends_at": (starts + timedelta(hours=2)).isoformat(),
                "time_zone": "Europe/Paris",
                "place": {"kind": "address", "address": "12 rue de Rivoli, Paris"},
                "capacity": 10,
            },
        ),
        "segment_id": await post(
            "/marketing/v1/segments",
            {
                "name": "French speakers",
                "purpose": "analytics",
                "rule": {"field": "locale", "op": "eq", "value": "fr-FR"},
            },
        ),
        "endpoint_id": await post(
            "/webhooks/v1/endpoints",
            {"url": "http://127.0.0.1:9/hooks", "event_types": ["member.created"]},
        ),
    }
    await deliver()
    return FuzzWorld(staff, member, member_headers, other, ids)


@pytest.fixture
async def fuzz_world(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    tokens: MemberTokenCodec,
) -> FuzzWorld:
    """The fuzz world inside the test's transaction, rolled back at its end."""
    return await build_world(client, brand, tokens, lambda: deliver_events(session))


@pytest.fixture
async def committed_fuzz_world(
    app: FastAPI,
    client: httpx.AsyncClient,
    unlimited_settings: Settings,
    engine_database: Database,
    redis: Redis,
    tokens: MemberTokenCodec,
) -> AsyncIterator[FuzzWorld]:
    """The fuzz world on a real connection pool, committed, its brand deleted at the end.

    For the GraphQL fuzzing: a field that fails where the schema promises a value nulls its
    parent, and graphql-core then cancels the sibling fields still running, in-process service
    calls included. A call cancelled mid-statement spoils the connection it was using; the pool
    drops that connection (as in production), whereas the one connection a test's transaction
    runs on would be left unusable for every later request of the test.
    """
    attach_runtime(app, make_runtime(unlimited_settings, engine_database, redis))
    pool = engine_database.engine.sync_engine.pool

    def in_use() -> int:
        # The lent connections `Database.driver` keeps between borrowings are not in use.
        checked_out: int = pool.checkedout()  # type: ignore[attr-defined]
        return checked_out - engine_database.idle_lent_connections

    before = in_use()
    async with engine_database.sessionmaker() as session:
        brand = await make_brand(session, f"Fuzz {uuid.uuid4().hex[:8]}")

    async def deliver() -> None:
        async with engine_database.sessionmaker() as session:
            await deliver_events(session, brand.id)
            await session.commit()

    try:
        yield await build_world(client, brand, tokens, deliver)
    finally:
        await purge_brand(engine_database, brand.id)
    # Cancelled calls gave their connections back (or the pool dropped them): none leaked.
    assert in_use() == before
