"""Test harness: real PostgreSQL and Redis, one database per xdist worker, one transaction per test.

With `KINFOLK_DATABASE_URL` / `KINFOLK_REDIS_URL` set (CI points them at the machine's servers),
each worker creates its own database `kinfolk_test_<worker>` on that server and leases a Redis
database number of its own above the URL's. Unset, the embedded servers are started under
`.kinfolk/test`.
"""

from __future__ import annotations

import contextlib
import gc
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, create_async_engine

from services.contracts import render_contracts
from services.kernel.app import attach_runtime, build_app, never_started
from services.kernel.auth import (
    ApiKeyVerifier,
    Authenticator,
    MemberTokenCodec,
    ServiceTokens,
)
from services.kernel.clients import CALLS_HOLDING_A_CONNECTION
from services.kernel.db import Database, asyncpg_url
from services.kernel.embedded import InfrastructureUrls, infrastructure
from services.kernel.jobs import Continue, build_worker
from services.kernel.logging import configure_logging
from services.kernel.migrations import migrate
from services.kernel.module import ServiceModule
from services.kernel.runtime import Runtime
from services.kernel.settings import Settings
from services.members import service as members_service
from services.registry import SERVICES
from services.webhooks.urls import LOOPBACK_NETWORKS

ROOT = Path(__file__).resolve().parent.parent


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def _redis_url_with_db(url: str, number: int) -> str:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return urlunsplit((parts.scheme, parts.netloc, parts.path, f"db={number}", ""))
    return urlunsplit((parts.scheme, parts.netloc, f"/{number}", parts.query, parts.fragment))


def _redis_base(url: str) -> int:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
        return int(query.get("db", "0"))
    return int(parts.path.strip("/") or "0")


# Redis has databases 0 to 15. A worker leases one above the URL's own for the run, so that
# concurrent runs on one Redis (a developer's beside CI's) never flush each other's data; a
# lease left by a run that was killed runs out after this long.
REDIS_DATABASES = 16
REDIS_LEASE_SECONDS = 3_600


@contextlib.asynccontextmanager
async def _leased_redis_db(url: str, holder: str) -> AsyncIterator[str]:
    """A Redis database of this worker's own for the run, leased in the URL's own database."""
    base = _redis_base(url)
    admin = Redis.from_url(url)
    try:
        for number in range(base + 1, REDIS_DATABASES):
            lease = f"kinfolk:test:redis-db:{number}"
            if await admin.set(lease, holder, nx=True, ex=REDIS_LEASE_SECONDS):
                break
        else:
            raise RuntimeError(
                f"Every Redis database above {base} is leased by another test run; wait for it "
                "or give KINFOLK_REDIS_URL another server."
            )
        try:
            yield _redis_url_with_db(url, number)
        finally:
            if await admin.get(lease) == holder.encode():
                await admin.delete(lease)
    finally:
        await admin.aclose()


@dataclass(frozen=True)
class WorkerInfrastructure:
    server_url: str  # the PostgreSQL server's maintenance database
    database_url: str  # this worker's own database, migrated
    redis_url: str  # this worker's own Redis database number
    worker: str


async def run_burst(
    database: Database,
    infra: WorkerInfrastructure,
    services: list[ServiceModule],
    settings: Settings,
) -> int:
    """Runs the queued jobs with a worker that stops when the queue is empty; how many ran.

    Without the services' cron jobs: a burst that happened to span a scheduled minute (the
    five-minute release of pending purchases, say) ran that job too, and a test that counts
    the jobs it queued failed now and then."""
    worker = build_worker(database, infra.redis_url, services, settings, burst=True)
    worker.cron_jobs = []
    try:
        return await worker.run_check()
    finally:
        await worker.close()


async def until_done(
    job: Callable[..., Awaitable[Any]], session: AsyncSession, **arguments: Any
) -> list[Any]:
    """A job run in process as the worker would run it, each run that returns `Continue` then
    followed by the next: what each run did."""
    done: list[Any] = []
    while True:
        result = await job(session, **arguments)
        if not isinstance(result, Continue):
            return [*done, result]
        done.append(result.done)
        arguments = result.arguments


@pytest.fixture(scope="session")
def base_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        data_dir=tmp_path_factory.mktemp("kinfolk"),
        jwt_secret="test-secret-" + "x" * 64,  # type: ignore[arg-type]
        log_format="console",
        log_level="WARNING",
        # Tests run their webhook receivers on this machine.
        webhooks_allowed_networks=list(LOOPBACK_NETWORKS),
    )


@pytest.fixture(scope="session", autouse=True)
def logging_configured(base_settings: Settings) -> None:
    """The logs as every Kinfolk process configures them. Without this, structlog's default
    console renderer draws each logged exception as a rich traceback with every frame's local
    variables: seconds of a test's time per error, and not what a deployment writes."""
    configure_logging(base_settings)


def calls_holding_a_connection() -> float:
    """How many calls to another service this process made while the request it served held
    a connection (`clients.count_held_connection`), over every service called."""
    return sum(
        sample.value
        for metric in CALLS_HOLDING_A_CONNECTION.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


@pytest.fixture(autouse=True)
def no_call_holds_a_connection(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test is also a check that no request asks another service while it holds its
    database connection (the pool starves in a burst; see `db.release_connection`). A test
    that makes such a call on purpose is marked `holds_connection_on_purpose`."""
    before = calls_holding_a_connection()
    yield
    if request.node.get_closest_marker("holds_connection_on_purpose") is None:
        made = calls_holding_a_connection() - before
        assert made == 0, (
            f"{made:g} call(s) to another service were made while the request held its "
            "database connection: call db.release_connection(session) before the call "
            "(the warning call.holding_connection in the log names the URL)"
        )


@pytest.fixture(scope="session")
def contracts() -> dict[Path, str]:
    """Every generated contract file as the code renders it, rendered once per worker: each
    rendering builds every service's OpenAPI document, seconds of work."""
    return render_contracts()


@pytest.fixture(scope="session")
def server_urls() -> Iterator[InfrastructureUrls]:
    settings = Settings(data_dir=ROOT / ".kinfolk" / "test")
    with infrastructure(settings) as urls:
        yield urls


@pytest.fixture(scope="session")
async def test_infra(
    server_urls: InfrastructureUrls, worker_id: str
) -> AsyncIterator[WorkerInfrastructure]:
    # The pid keeps concurrent runs on one server apart; the database is dropped at the end.
    name = f"kinfolk_test_{worker_id}_{os.getpid()}"
    admin = create_async_engine(asyncpg_url(server_urls.database_url), isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
        # Dropped at the end, so a commit need not wait for the disk to sync its WAL: locks,
        # isolation and what each transaction sees are unchanged, only a machine crash could
        # lose a commit. Slow fsync otherwise doubles the suite's time on a shared machine.
        await conn.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    database_url = _with_database(server_urls.database_url, name)
    await migrate(database_url, SERVICES)
    async with _leased_redis_db(server_urls.redis_url, name) as redis_url:
        yield WorkerInfrastructure(server_urls.database_url, database_url, redis_url, worker_id)
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


@pytest.fixture(scope="session")
async def engine_database(test_infra: WorkerInfrastructure) -> AsyncIterator[Database]:
    """A real pooled Database on this worker's database: for tests whose work must commit."""
    database = Database(test_infra.database_url)
    yield database
    await database.dispose()


@pytest.fixture
async def redis(test_infra: WorkerInfrastructure) -> AsyncIterator[Redis]:
    client = Redis.from_url(test_infra.redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
async def connection(engine_database: Database) -> AsyncIterator[AsyncConnection]:
    async with engine_database.engine.connect() as conn:
        transaction = await conn.begin()
        yield conn
        await transaction.rollback()


@pytest.fixture
async def small_pool(test_infra: WorkerInfrastructure) -> AsyncIterator[Database]:
    """A pool of two connections of its own, whose work commits (not the test's rolled-back
    connection): for tests of what holds a connection, and for how long."""
    database = Database(test_infra.database_url, pool_size=2, max_overflow=0, pool_timeout=5.0)
    yield database
    await database.dispose()


@pytest.fixture
def database(connection: AsyncConnection) -> Database:
    """Every session from here shares the test's transaction, rolled back when the test ends."""
    return Database.bound_to(connection)


@pytest.fixture
async def session(database: Database) -> AsyncIterator[AsyncSession]:
    async with database.sessionmaker() as s:
        yield s


async def purge_brand(database: Database, brand_id: uuid.UUID) -> None:
    """Delete every row of one brand from every service: for tests that must commit."""
    async with database.engine.begin() as conn:
        for service in reversed(SERVICES):
            for table in reversed(service.metadata.sorted_tables):
                if "brand_id" in table.c:
                    await conn.execute(delete(table).where(table.c.brand_id == brand_id))
                elif table.name == "brands" and "id" in table.c:
                    await conn.execute(delete(table).where(table.c.id == brand_id))


@dataclass(frozen=True)
class BrandFixture:
    id: uuid.UUID
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.key)


@dataclass(frozen=True)
class MemberFixture:
    id: uuid.UUID
    brand_id: uuid.UUID
    external_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def make_brand(session: AsyncSession, name: str) -> BrandFixture:
    brand, key = await members_service.create_brand(session, name)
    await session.commit()
    return BrandFixture(brand.id, key)


@pytest.fixture
async def brand(session: AsyncSession) -> BrandFixture:
    """A brand and its admin API key (every scope)."""
    return await make_brand(session, "Acme Beauty")


@pytest.fixture
async def other_brand(session: AsyncSession) -> BrandFixture:
    return await make_brand(session, "Other Brand")


@pytest.fixture
def tokens(base_settings: Settings) -> MemberTokenCodec:
    return MemberTokenCodec(base_settings)


def make_runtime(settings: Settings, database: Database, redis: Redis) -> Runtime:
    lookup = next(s.api_key_lookup for s in SERVICES if s.api_key_lookup is not None)
    return Runtime(
        settings=settings,
        database=database,
        redis=redis,
        authenticator=Authenticator(
            tokens=MemberTokenCodec(settings),
            api_keys=ApiKeyVerifier(redis, lookup(database), settings.api_key_cache_seconds),
            services=ServiceTokens(settings),
        ),
    )


@pytest.fixture
def runtime(base_settings: Settings, database: Database, redis: Redis) -> Runtime:
    return make_runtime(base_settings, database, redis)


# Apps built in this worker, by the names of their services and their settings.
_BUILT_APPS: dict[tuple[tuple[str, ...], str], FastAPI] = {}

# What a test may leave on an app: gateway pools and channels made for its runtime, and
# dependency overrides.
_PER_TEST_STATE = ("gateway_upstreams", "gateway_manifests", "gateway_channels")


def app_for(services: Sequence[ServiceModule], settings: Settings, runtime: Runtime) -> FastAPI:
    """The app serving `services` under `settings`, pointed at `runtime`.

    Built once per worker and configuration, then reused: an app's first request builds every
    route's dependencies (FastAPI does it lazily, about half a second for all the services),
    which each test would otherwise pay again. What a test left on it is cleared first. So a
    test uses one app per configuration at a time; one that needs two processes' apps side by
    side (with the same settings) builds the second with `build_app`.
    """
    key = (tuple(service.name for service in services), settings.model_dump_json())
    app = _BUILT_APPS.get(key)
    if app is None:
        app = _BUILT_APPS[key] = build_app(services, settings, never_started)
    app.dependency_overrides.clear()
    for name in _PER_TEST_STATE:
        if hasattr(app.state, name):
            delattr(app.state, name)
    attach_runtime(app, runtime)
    return app


@pytest.fixture
def app(base_settings: Settings, runtime: Runtime) -> FastAPI:
    """The all-services app on the test's runtime."""
    return app_for(SERVICES, base_settings, runtime)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://kinfolk.test") as c:
        yield c


@pytest.fixture
def aws_test_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials a local S3 server accepts, and no lookup of the machine's own (which would
    wait on an instance metadata endpoint that is not there)."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="session")
def worker_id(request: pytest.FixtureRequest) -> str:
    # pytest-xdist provides this fixture; without xdist the run is one worker, "master".
    return str(getattr(request.config, "workerinput", {}).get("workerid", "master"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Tests marked `faults` start a deployment of their own and take minutes: they run only when
    # asked for by marker (`-m faults`, .ci/run's step of their own), never in the suite.
    if "faults" not in (config.option.markexpr or ""):
        skip_faults = pytest.mark.skip(reason="fault-injection test: run with -m faults")
        for item in items:
            if item.get_closest_marker("faults"):
                item.add_marker(skip_faults)
    # Tests marked `embedded` start Kinfolk's own servers. Where servers are configured (CI), they
    # run in .ci/run's separate embedded step instead, with the URLs unset, as a new user has them.
    if not os.environ.get("KINFOLK_DATABASE_URL"):
        return
    skip = pytest.mark.skip(reason="embedded-default test: .ci/run runs it with no URLs set")
    for item in items:
        if item.get_closest_marker("embedded"):
            item.add_marker(skip)


@pytest.fixture
def collector_on() -> Iterator[None]:
    """Python's cyclic garbage collector on for the test, as it was after."""
    was_enabled = gc.isenabled()
    gc.enable()
    yield
    if not was_enabled:
        gc.disable()
