"""Issue 10, limits: every outbound call gives up in about the time its setting allows.

Each client is pointed at a real TCP server on this machine that accepts connections and never
answers (a hanging upstream), with its timeout set to half a second, and must fail with its own
kind of error long before its library's default wait (asyncpg a minute, redis-py and arq
forever, PyJWKClient 30 s, the AWS SDK 3 s a try): the bounds on elapsed time are loose on
purpose, the machine is noisy. Where waiting is the point (a consumer's blocking read, an idle
pub/sub subscription), the timeouts must not cut it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
import redis.exceptions
import sqlalchemy.exc
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from jwt.algorithms import RSAAlgorithm
from redis.asyncio import Redis
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.gateway.notifications.channels import MemberChannels
from services.kernel.app import build_app
from services.kernel.auth import JWKS_KEY_LIFESPAN_SECONDS, format_api_key
from services.kernel.clients import Peers, ServiceClient
from services.kernel.consumer import BLOCK_MILLISECONDS
from services.kernel.db import Database, connect_options
from services.kernel.errors import ServiceUnavailable, dependency_unavailable
from services.kernel.jobs import build_worker
from services.kernel.runtime import RemoteApiKeyLookup, redis_client
from services.kernel.settings import Settings
from services.marketing.exports import storage
from services.members import service as members_service
from services.members.module import MEMBERS
from services.members.schemas import MemberCreate
from services.registry import SERVICES
from services.webhooks.delivery.sender import Sender
from services.webhooks.urls import LOOPBACK_NETWORKS, UrlRefused, check_url, networks
from tests.conftest import BrandFixture, WorkerInfrastructure, bearer, make_runtime

# The timeout every test sets, and how long any call may take to give up: ten times the
# timeout, for a noisy machine, and still far under the defaults it replaces (30 s and up).
HANG = 0.5
PATIENCE = 5.0


@dataclass
class Upstream:
    """A server that accepts connections and never answers; it notes when each one ended."""

    host: str
    port: int
    # Seconds from accepting each connection to the client closing it.
    lifetimes: list[float] = field(default_factory=list)
    accepted: int = 0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@pytest.fixture
async def hanging() -> AsyncIterator[Upstream]:
    held: list[asyncio.StreamWriter] = []
    upstream = Upstream("127.0.0.1", 0)
    loop = asyncio.get_running_loop()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        opened = loop.time()
        upstream.accepted += 1
        held.append(writer)
        await reader.read()  # whatever is asked, until the client gives up
        upstream.lifetimes.append(loop.time() - opened)

    server = await asyncio.start_server(hold, upstream.host, 0)
    upstream.port = server.sockets[0].getsockname()[1]
    try:
        yield upstream
    finally:
        server.close()
        for writer in held:
            writer.close()
        await server.wait_closed()


@pytest.fixture
def unaccepting() -> Iterator[Upstream]:
    """A listener whose accept queue is full: the kernel drops further connection attempts, so
    a connect neither succeeds nor fails (a firewall that drops packets looks the same)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):  # connecting, in the background
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    try:
        yield Upstream("127.0.0.1", port)
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


# --- PostgreSQL -----------------------------------------------------------------------------


async def test_postgresql_gives_up_on_a_server_that_never_answers_and_says_it_is_unreachable(
    hanging: Upstream, base_settings: Settings
) -> None:
    settings = base_settings.model_copy(update={"database_connect_timeout_seconds": HANG})
    database = Database(
        f"postgresql://postgres@{hanging.address}/kinfolk", **connect_options(settings)
    )
    watch = Stopwatch()
    try:
        with pytest.raises(TimeoutError) as caught:
            async with database.unit_of_work() as session:
                await session.execute(text("SELECT 1"))
    finally:
        await database.dispose()
    assert watch.elapsed < PATIENCE
    assert hanging.accepted >= 1
    assert caught.value.errno == errno.ETIMEDOUT
    assert "within 0.5 s" in str(caught.value)
    assert dependency_unavailable(caught.value)


async def test_a_request_that_meets_a_database_that_never_answers_is_a_503(
    hanging: Upstream, base_settings: Settings, redis: Redis
) -> None:
    settings = base_settings.model_copy(update={"database_connect_timeout_seconds": HANG})
    database = Database(
        f"postgresql://postgres@{hanging.address}/kinfolk", **connect_options(settings)
    )
    app = build_app([MEMBERS], settings, make_runtime(settings, database, redis))
    # A key Redis has not cached: checking it needs the database.
    key = format_api_key(uuid.uuid4(), "s" * 40)
    watch = Stopwatch()
    try:
        async with _client(app) as client:
            response = await client.get("/members/v1/members", headers=bearer(key))
    finally:
        await database.dispose()
    assert watch.elapsed < PATIENCE
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "ServiceUnavailable"
    assert response.headers["retry-after"] == "1"


async def test_a_unit_of_work_waits_for_a_pooled_connection_only_as_long_as_the_pool_timeout(
    test_infra: WorkerInfrastructure, base_settings: Settings
) -> None:
    settings = base_settings.model_copy(
        update={
            "database_pool_timeout_seconds": HANG,
            "database_pool_size": 1,
            "database_pool_overflow": 0,
        }
    )
    database = Database(test_infra.database_url, **connect_options(settings))
    try:
        async with database.unit_of_work() as busy:
            await busy.execute(text("SELECT 1"))  # holds the pool's only connection
            watch = Stopwatch()
            with pytest.raises(sqlalchemy.exc.TimeoutError) as caught:
                async with database.unit_of_work() as session:
                    await session.execute(text("SELECT 1"))
            assert watch.elapsed < PATIENCE
    finally:
        await database.dispose()
    assert dependency_unavailable(caught.value)


async def test_the_pool_keeps_its_size_open_and_closes_only_the_burst_past_it(
    test_infra: WorkerInfrastructure, base_settings: Settings
) -> None:
    """Connections past the pool are closed when returned; the pool's own stay open, so a load
    within `database_pool_size` opens no PostgreSQL backend after the first requests."""
    settings = base_settings.model_copy(
        update={"database_pool_size": 3, "database_pool_overflow": 2}
    )
    database = Database(test_infra.database_url, **connect_options(settings))
    opened: list[object] = []
    event.listen(
        database.engine.sync_engine, "connect", lambda connection, _: opened.append(connection)
    )
    all_in = asyncio.Event()
    holding = 0

    async def unit() -> None:
        nonlocal holding
        async with database.unit_of_work() as session:
            await session.execute(text("SELECT 1"))
            holding += 1
            if holding == 5:
                all_in.set()
            await all_in.wait()

    try:
        await asyncio.gather(*(unit() for _ in range(5)))  # the pool and the whole overflow
        assert len(opened) == 5
        assert database.engine.pool.checkedin() == 3  # type: ignore[attr-defined]
        for _ in range(4):
            await asyncio.gather(*(_backend_of(database) for _ in range(3)))
        assert len(opened) == 5  # three at a time is within the pool: nothing new opened
    finally:
        await database.dispose()


async def _backend_of(database: Database) -> int:
    async with database.unit_of_work() as session:
        backend: int = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    return backend


async def _terminate(test_infra: WorkerInfrastructure, backend: int) -> None:
    """Drops one server connection, as a restarted server or a firewall would."""
    killer = Database(test_infra.database_url, pool_size=1, max_overflow=0)
    try:
        async with killer.unit_of_work() as session:
            await session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
            for _ in range(100):
                gone = (
                    await session.execute(
                        text("SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = :pid"),
                        {"pid": backend},
                    )
                ).scalar_one()
                if gone:
                    break
                await asyncio.sleep(0.02)
    finally:
        await killer.dispose()


def _one_connection(
    test_infra: WorkerInfrastructure, base_settings: Settings, *, ping_after_idle_seconds: float
) -> Database:
    """A process's database as settings make it, with a pool of one connection."""
    settings = base_settings.model_copy(
        update={"database_pool_size": 1, "database_pool_overflow": 0}
    )
    return Database(
        test_infra.database_url,
        **connect_options(settings),
        ping_after_idle_seconds=ping_after_idle_seconds,
    )


async def test_a_connection_dropped_while_it_sat_idle_is_replaced_before_it_is_handed_out(
    test_infra: WorkerInfrastructure, base_settings: Settings
) -> None:
    database = _one_connection(test_infra, base_settings, ping_after_idle_seconds=0.2)
    try:
        first = await _backend_of(database)
        await _terminate(test_infra, first)
        await asyncio.sleep(0.3)  # idle past the ping threshold
        second = await _backend_of(database)  # no error: the ping found it gone
    finally:
        await database.dispose()
    assert second != first


async def test_a_connection_reused_at_once_is_not_pinged_and_a_dead_one_costs_one_503(
    test_infra: WorkerInfrastructure, base_settings: Settings
) -> None:
    """The trade the idle ping makes: a busy pool pays no round trips, and a connection that
    dies between two uses fails the one request that meets it, as unavailable (503), not 500."""
    database = _one_connection(test_infra, base_settings, ping_after_idle_seconds=60)
    try:
        first = await _backend_of(database)
        await _terminate(test_infra, first)
        with pytest.raises(sqlalchemy.exc.DBAPIError) as caught:
            await _backend_of(database)
        after = await _backend_of(database)
    finally:
        await database.dispose()
    assert dependency_unavailable(caught.value)
    assert after != first


# --- Redis ----------------------------------------------------------------------------------


def _redis_settings(base_settings: Settings, seconds: float = HANG) -> Settings:
    return base_settings.model_copy(update={"redis_timeout_seconds": seconds})


async def test_redis_gives_up_on_a_reply_that_never_comes(
    hanging: Upstream, base_settings: Settings
) -> None:
    client = redis_client(f"redis://{hanging.address}/0", _redis_settings(base_settings))
    watch = Stopwatch()
    try:
        with pytest.raises(redis.exceptions.TimeoutError):
            await client.ping()
    finally:
        await client.aclose()
    assert watch.elapsed < PATIENCE
    assert hanging.accepted == 1


async def test_redis_gives_up_on_a_connect_that_never_completes(
    unaccepting: Upstream, base_settings: Settings
) -> None:
    client = redis_client(f"redis://{unaccepting.address}/0", _redis_settings(base_settings))
    watch = Stopwatch()
    try:
        with pytest.raises(redis.exceptions.TimeoutError, match="connecting"):
            await client.ping()
    finally:
        await client.aclose()
    assert watch.elapsed < PATIENCE


async def test_a_consumers_blocking_read_is_not_cut_by_the_reply_timeout(
    test_infra: WorkerInfrastructure, redis: Redis, base_settings: Settings
) -> None:
    """XREADGROUP BLOCK answers only when its block is over: the reply timeout, here half the
    block, must leave it that long. (At 0.1 s, Redis's answer had 0.1 s of slack past the
    block, and a busy machine ran out of it.)"""
    client = redis_client(test_infra.redis_url, _redis_settings(base_settings, 0.5))
    stream, group = "kinfolk:test:timeouts", "timeouts"
    await redis.xgroup_create(stream, group, id="$", mkstream=True)
    try:
        for _ in range(2):
            read = await client.xreadgroup(
                group, "consumer-1", {stream: ">"}, count=10, block=BLOCK_MILLISECONDS
            )
            assert not read
    finally:
        await client.aclose()


async def test_an_idle_subscription_outlives_the_reply_timeout_on_its_one_connection(
    test_infra: WorkerInfrastructure, redis: Redis, base_settings: Settings
) -> None:
    """The gateway's listener waits for news as long as there is none, on one connection: a
    quiet minute must not cost a reconnect (and the messages published meanwhile)."""
    client = redis_client(test_infra.redis_url, _redis_settings(base_settings, 0.1))
    channels = MemberChannels(client)
    channel = f"kinfolk:test:timeouts:{uuid.uuid4()}"
    try:
        async with channels.listen(channel) as queue:
            # Over twice the client's reply timeout (0.1 s, plus the 1 s left for blocks).
            await asyncio.sleep(2.5)
            subscribers = [c for c in await redis.client_list() if int(c["sub"]) > 0]
            await redis.publish(channel, b"news")
            async with asyncio.timeout(PATIENCE):
                assert await queue.get() == b"news"
    finally:
        await client.aclose()
    # Connected before the wait, and not since.
    assert [int(c["age"]) >= 2 for c in subscribers] == [True]


async def test_the_job_worker_gives_up_on_a_redis_that_never_answers(
    hanging: Upstream, base_settings: Settings, engine_database: Database
) -> None:
    """arq's own settings bound only the connect: its poll would wait on a silent Redis
    forever. Failing instead, `run_worker` starts it again after a backoff."""
    worker = build_worker(
        engine_database, f"redis://{hanging.address}/0", SERVICES, _redis_settings(base_settings)
    )
    watch = Stopwatch()
    try:
        with pytest.raises(redis.exceptions.TimeoutError):
            await worker.main()
    finally:
        await worker.pool.connection_pool.disconnect()
    assert watch.elapsed < PATIENCE


# --- JWKS -----------------------------------------------------------------------------------

KEY_ID = "key-1"


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwks(private: rsa.RSAPrivateKey) -> bytes:
    public = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    return json.dumps({"keys": [{**public, "kid": KEY_ID, "use": "sig", "alg": "RS256"}]}).encode()


def _rs256_token(
    private: rsa.RSAPrivateKey, brand_id: uuid.UUID, member_id: uuid.UUID, kid: str = KEY_ID
) -> str:
    now = datetime.now(UTC)
    claims = {
        "iss": "kinfolk",
        "aud": "kinfolk",
        "sub": str(member_id),
        "brand": str(brand_id),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
    }
    return jwt.encode(claims, private, algorithm="RS256", headers={"kid": kid})


@dataclass
class JwksServer:
    """A JWKS endpoint that answers each request once `release` is set."""

    document: bytes
    release: asyncio.Event = field(default_factory=asyncio.Event)
    asked: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        self.asked.set()
        await self.release.wait()
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(self.document)}\r\nConnection: close\r\n\r\n"
        )
        writer.write(head.encode() + self.document)
        await writer.drain()
        writer.close()


@pytest.fixture
async def jwks_server(signing_key: rsa.RSAPrivateKey) -> AsyncIterator[JwksServer]:
    jwks = JwksServer(_jwks(signing_key))
    server = await asyncio.start_server(jwks.serve, "127.0.0.1", 0)
    jwks.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/.well-known/jwks.json"
    try:
        yield jwks
    finally:
        jwks.release.set()
        server.close()
        await server.wait_closed()


def _rs256_app(
    base_settings: Settings, jwks_url: str, timeout: float, database: Database, redis: Redis
) -> FastAPI:
    settings = base_settings.model_copy(
        update={
            "jwt_algorithm": "RS256",
            "jwt_jwks_url": jwks_url,
            "outbound_timeout_seconds": timeout,
        }
    )
    return build_app([MEMBERS], settings, make_runtime(settings, database, redis))


async def _member(session: AsyncSession, brand: BrandFixture) -> uuid.UUID:
    member = await members_service.create_member(
        session, brand.id, MemberCreate(external_id=f"m-{uuid.uuid4().hex[:8]}")
    )
    await session.commit()
    return member.id


async def test_a_member_request_whose_jwks_never_answers_is_a_clean_503_and_one_fetch(
    hanging: Upstream,
    base_settings: Settings,
    database: Database,
    redis: Redis,
    session: AsyncSession,
    brand: BrandFixture,
    signing_key: rsa.RSAPrivateKey,
) -> None:
    app = _rs256_app(base_settings, f"http://{hanging.address}/jwks.json", HANG, database, redis)
    token = _rs256_token(signing_key, brand.id, await _member(session, brand))
    watch = Stopwatch()
    async with _client(app) as client:
        first = await client.get("/members/v1/me", headers=bearer(token))
        assert watch.elapsed < PATIENCE
        again = await client.get("/members/v1/me", headers=bearer(token))
    for response in (first, again):
        assert response.status_code == 503, response.text
        assert set(response.json()) == {"error", "detail"}
        assert response.json()["error"] == "ServiceUnavailable"
        assert int(response.headers["retry-after"]) >= 1
    # The rate limit's check, the route's and the next request: the provider was asked once,
    # and the rest were told at once to retry rather than each waiting out the timeout.
    assert hanging.accepted == 1


async def test_the_jwks_is_fetched_off_the_event_loop(
    jwks_server: JwksServer,
    base_settings: Settings,
    database: Database,
    redis: Redis,
    session: AsyncSession,
    brand: BrandFixture,
    signing_key: rsa.RSAPrivateKey,
) -> None:
    """The JWKS server lives on the test's event loop and answers only when the test says so,
    while the request waits for it: a fetch that blocked the loop would wait out its timeout."""
    app = _rs256_app(base_settings, jwks_server.url, PATIENCE, database, redis)
    member_id = await _member(session, brand)
    token = _rs256_token(signing_key, brand.id, member_id)
    async with _client(app) as client:
        request = asyncio.create_task(client.get("/members/v1/me", headers=bearer(token)))
        async with asyncio.timeout(PATIENCE):
            await jwks_server.asked.wait()
        assert not request.done()
        jwks_server.release.set()
        response = await request
        # Known now: no fetch, no thread.
        jwks_server.release.clear()
        again = await client.get("/members/v1/me", headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.json()["id"] == str(member_id)
    assert again.status_code == 200, again.text


async def test_a_token_naming_a_key_the_jwks_does_not_have_is_a_401(
    jwks_server: JwksServer,
    base_settings: Settings,
    database: Database,
    redis: Redis,
    brand: BrandFixture,
) -> None:
    jwks_server.release.set()
    app = _rs256_app(base_settings, jwks_server.url, PATIENCE, database, redis)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = _rs256_token(other, brand.id, uuid.uuid4(), kid="rotated-away")
    async with _client(app) as client:
        response = await client.get("/members/v1/me", headers=bearer(token))
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "Unauthorized"


async def test_a_key_withdrawn_from_the_jwks_stops_verifying_within_its_lifespan(
    jwks_server: JwksServer,
    base_settings: Settings,
    database: Database,
    redis: Redis,
    session: AsyncSession,
    brand: BrandFixture,
    signing_key: rsa.RSAPrivateKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    jwks_server.release.set()
    app = _rs256_app(base_settings, jwks_server.url, PATIENCE, database, redis)
    token = _rs256_token(signing_key, brand.id, await _member(session, brand))
    async with _client(app) as client:
        assert (await client.get("/members/v1/me", headers=bearer(token))).status_code == 200
        # The provider rotates the key out (compromised, say).
        jwks_server.document = json.dumps({"keys": []}).encode()
        assert (await client.get("/members/v1/me", headers=bearer(token))).status_code == 200
        # Once the key's lifespan (and PyJWKClient's cache of the set) has passed, the JWKS
        # is asked again and the token no longer verifies.
        later = time.monotonic() + JWKS_KEY_LIFESPAN_SECONDS + 1
        monkeypatch.setattr(time, "monotonic", lambda: later)
        withdrawn = await client.get("/members/v1/me", headers=bearer(token))
    assert withdrawn.status_code == 401, withdrawn.text
    assert withdrawn.json()["error"] == "Unauthorized"


# --- S3 -------------------------------------------------------------------------------------


async def test_an_s3_store_that_never_answers_fails_each_try_within_the_timeout(
    hanging: Upstream, base_settings: Settings, aws_test_credentials: None
) -> None:
    """The AWS SDK tries three times; on Linux its request timeout counts whole seconds
    without a byte moving, so half a second makes each try last about one (its default, 3)."""
    settings = base_settings.model_copy(
        update={"s3_endpoint_url": f"http://{hanging.address}", "s3_timeout_seconds": HANG}
    )
    watch = Stopwatch()
    with pytest.raises(OSError, match=r"(?i)timeout"):
        # pyarrow blocks: off the loop, so the hanging server can accept and watch.
        await asyncio.to_thread(storage.open_input, "s3://exports/brand/file.csv", settings)
    assert watch.elapsed < 3 * PATIENCE
    await asyncio.sleep(0.1)  # the server sees the last close
    assert hanging.lifetimes
    assert max(hanging.lifetimes) < 2.5


# --- Webhooks -------------------------------------------------------------------------------


@pytest.fixture
async def silent_resolver(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """getaddrinfo that never finishes, as for a host whose DNS servers never answer (which
    cannot be staged offline); returns the hosts asked for."""
    asked: list[str] = []

    async def never(host: str, *args: Any, **kwargs: Any) -> Any:
        asked.append(host)
        await asyncio.Event().wait()

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", never)
    return asked


async def test_a_webhook_host_that_never_resolves_fails_the_attempt_within_its_timeout(
    silent_resolver: list[str],
) -> None:
    async with Sender(networks(LOOPBACK_NETWORKS), HANG, max_connections=4) as sender:
        watch = Stopwatch()
        answer = await sender.post("https://hooks.example.com/kinfolk", b"{}", {})
        assert watch.elapsed < PATIENCE
        again = await sender.post("https://hooks.example.com/kinfolk", b"{}", {})
    for attempt in (answer, again):
        assert attempt.status is None
        assert attempt.error is not None
        assert attempt.error.startswith("url refused: ")
        assert "did not resolve within 0.5 s" in attempt.error
    # Remembered as refused, like a host that does not resolve: not asked again at once.
    assert silent_resolver == ["hooks.example.com"]


async def test_checking_an_endpoints_url_gives_up_on_a_host_that_never_resolves(
    silent_resolver: list[str],
) -> None:
    watch = Stopwatch()
    with pytest.raises(UrlRefused, match=r"did not resolve within 0\.5 s"):
        await check_url("https://hooks.example.com/kinfolk", (), resolve_timeout_seconds=HANG)
    assert watch.elapsed < PATIENCE


# --- Other services over HTTP (already bounded by `outbound_timeout_seconds`) ---------------


async def test_a_call_to_another_service_that_never_answers_is_unavailable_in_time(
    hanging: Upstream, base_settings: Settings
) -> None:
    settings = base_settings.model_copy(
        update={"members_url": f"http://{hanging.address}", "outbound_timeout_seconds": HANG}
    )
    watch = Stopwatch()
    with pytest.raises(ServiceUnavailable):
        async with ServiceClient.open("members", Peers(settings)) as members:
            await members.get_json(f"/members/v1/privacy/members/{uuid.uuid4()}")
    lookup = RemoteApiKeyLookup(f"http://{hanging.address}", HANG)
    try:
        with pytest.raises(ServiceUnavailable):
            await lookup(uuid.uuid4(), format_api_key(uuid.uuid4(), "s" * 40))
    finally:
        await lookup.aclose()
    assert watch.elapsed < PATIENCE


def _client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://kinfolk.test")
