"""A PostgreSQL that goes silent mid-query, or a Redis mid-read (a dropped route: no reply, no
reset), is found out by the connection's TCP keepalives (`services.kernel.tcp_liveness`), as
unavailable; without them the query or the read waits for as long as the operating system keeps
the connection.

The route is real: a network namespace joined to this one by a veth pair, with a relay inside
it to the server. Taking the namespace's end of the pair down drops every packet between them,
which is what a failover behind a stale address or a firewall that forgot the connection does.
It needs root (network namespaces), and skips, saying why, where that is not allowed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest
import redis.exceptions
import sqlalchemy.exc
from redis.asyncio import Redis
from sqlalchemy import text

from services.gateway.notifications.channels import MemberChannels, member_channel
from services.kernel.db import Database, driver_connection
from services.kernel.errors import dependency_unavailable
from services.kernel.runtime import redis_options
from services.kernel.settings import Settings
from services.kernel.tcp_liveness import TcpLiveness
from tests.conftest import ROOT, WorkerInfrastructure
from tests.faults.relay import Opener, relay

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]

# Probing scaled down from the defaults (30 s, three probes 10 s apart, 30 s user timeout), so
# that the test takes seconds: silence found after about 2 + 1 + 1 s, within the user timeout.
FAST = "keepalives_idle=2&keepalives_interval=1&keepalives_count=2&tcp_user_timeout=4000"
OFF = "keepalives=0&tcp_user_timeout=0"
FAST_PROBING = TcpLiveness.of(dict(parse_qsl(FAST)))  # the same, for Redis's options
NO_PROBING = TcpLiveness.of(dict(parse_qsl(OFF)))
SILENCE_AFTER_SECONDS = 0.5
WAITED_SECONDS = 12.0  # how long a query without probes is shown still waiting


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _opener(url: str) -> Opener:
    """How to reach the server of a PostgreSQL or Redis URL, over TCP or its Unix socket."""
    parts = urlsplit(url)
    if parts.scheme == "unix":  # Redis's socket form
        return lambda: asyncio.open_unix_connection(parts.path)
    socket_folder = parse_qs(parts.query).get("host", [""])[0]
    if socket_folder.startswith("/"):  # PostgreSQL's socket form
        path = f"{socket_folder}/.s.PGSQL.{parts.port or 5432}"
        return lambda: asyncio.open_unix_connection(path)
    return lambda: asyncio.open_connection(parts.hostname, parts.port)


@asynccontextmanager
async def _through(route: Route, url: str, port: int) -> AsyncIterator[str]:
    """The server of `url` reached through the route: the address (host:port) to connect to.
    A relay in this namespace forwards to the server; one in the route's namespace to it."""
    server = await relay(route.outer_address, port, _opener(url))
    inner = await asyncio.create_subprocess_exec(
        *("ip", "netns", "exec", route.namespace, sys.executable, "-m", "tests.faults.relay"),
        *(route.inner_address, str(port), route.outer_address, str(port)),
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert inner.stdout is not None
        assert await inner.stdout.readline() == b"ready\n"
        yield f"{route.inner_address}:{port}"
    finally:
        inner.kill()
        await inner.wait()
        server.close()


class Route:
    """A veth pair from this namespace into one of its own, where a relay listens."""

    def __init__(self) -> None:
        tag = os.getpid() % 10_000
        self.namespace = f"kinfolk-silent-{tag}"
        self.outer, self.inner = f"kfs{tag}o", f"kfs{tag}i"
        octet = tag % 250
        self.outer_address, self.inner_address = f"10.213.{octet}.1", f"10.213.{octet}.2"

    def up(self) -> None:
        _ip("netns", "add", self.namespace)
        _ip("link", "add", self.outer, "type", "veth", "peer", "name", self.inner)
        _ip("link", "set", self.inner, "netns", self.namespace)
        _ip("addr", "add", f"{self.outer_address}/30", "dev", self.outer)
        _ip("link", "set", self.outer, "up")
        self.inside("addr", "add", f"{self.inner_address}/30", "dev", self.inner)
        self.inside("link", "set", self.inner, "up")

    def inside(self, *args: str) -> None:
        _ip("netns", "exec", self.namespace, "ip", *args)

    def silence(self) -> None:
        self.inside("link", "set", self.inner, "down")

    def speak(self) -> None:
        self.inside("link", "set", self.inner, "up")

    def down(self) -> None:
        with suppress(subprocess.SubprocessError):
            _ip("netns", "delete", self.namespace)  # and the pair with it
        with suppress(subprocess.SubprocessError):
            _ip("link", "delete", self.outer)


@pytest.fixture
def route() -> Iterator[Route]:
    """A route into a namespace of its own, which `silence()` drops every packet of."""
    if shutil.which("ip") is None:
        pytest.skip("no `ip` command (iproute2) on this machine")
    made = Route()
    try:
        made.up()
    except subprocess.CalledProcessError as exc:
        made.down()
        pytest.skip(f"network namespaces are not allowed here: {exc.stderr.decode().strip()}")
    try:
        yield made
    finally:
        made.down()


@pytest.fixture
async def postgresql(route: Route, test_infra: WorkerInfrastructure) -> AsyncIterator[str]:
    """A URL of the test's PostgreSQL through the route, with no query yet."""
    parts = urlsplit(test_infra.database_url)
    async with _through(route, test_infra.database_url, 5432) as address:
        yield f"postgresql://{parts.username or 'postgres'}@{address}{parts.path}"


@pytest.fixture
async def redis_address(route: Route, test_infra: WorkerInfrastructure) -> AsyncIterator[str]:
    async with _through(route, test_infra.redis_url, 6379) as address:
        yield address


async def _query_into_silence(route: Route, url: str) -> tuple[float, BaseException | None]:
    """A query under way when the route goes silent: how long until it failed (and how), or
    WAITED_SECONDS and None when it was still waiting then."""
    database = Database(url, pool_size=1, max_overflow=0)
    started = time.monotonic()
    still_waiting: float | None = None
    try:
        async with database.unit_of_work() as session:
            assert (await session.execute(text("SELECT 1"))).scalar_one() == 1
            driver = await driver_connection(session)
            asyncio.get_running_loop().call_later(SILENCE_AFTER_SECONDS, route.silence)
            started = time.monotonic()
            try:
                await asyncio.wait_for(session.execute(text("SELECT pg_sleep(1)")), WAITED_SECONDS)
            except TimeoutError:
                still_waiting = time.monotonic() - started
                # Nothing else would end it: dropped here, the rollback need not wait too.
                driver.terminate()
                raise
    except (TimeoutError, sqlalchemy.exc.SQLAlchemyError) as exc:
        if still_waiting is not None:
            return still_waiting, None
        return time.monotonic() - started, exc
    finally:
        with suppress(Exception):
            await asyncio.wait_for(database.dispose(), 5)
    raise AssertionError("the query was answered through a silent route")


async def test_a_query_to_a_postgresql_gone_silent_fails_as_unavailable_within_the_probing(
    route: Route, postgresql: str
) -> None:
    waited, error = await _query_into_silence(route, f"{postgresql}?{FAST}")
    assert error is not None, f"still waiting after {waited:.1f} s"
    assert dependency_unavailable(error)  # a 503 in a request, to be retried
    assert waited < 8.0  # 2 s of silence, two probes a second apart, the 4 s user timeout


async def test_without_probes_the_same_query_is_still_waiting(
    route: Route, postgresql: str
) -> None:
    """The route really is silent: nothing but the probes would end the wait."""
    waited, error = await _query_into_silence(route, f"{postgresql}?{OFF}")
    assert error is None, f"failed after {waited:.1f} s: {error!r}"
    assert waited >= WAITED_SECONDS


async def _read_into_silence(
    route: Route, address: str, settings: Settings, liveness: TcpLiveness
) -> tuple[float, BaseException | None]:
    """A pub/sub read (as the gateway's notifications wait) under way when the route goes
    silent: how long until it failed (and how), or WAITED_SECONDS and None when it had still
    heard nothing then."""
    url = f"redis://{address}/0"
    client = Redis.from_url(url, **redis_options(url, settings, liveness))
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        await pubsub.subscribe("kinfolk:silent-route")
        assert await pubsub.get_message(timeout=0.2) is None
        asyncio.get_running_loop().call_later(SILENCE_AFTER_SECONDS, route.silence)
        started = time.monotonic()
        try:
            message = await pubsub.get_message(timeout=WAITED_SECONDS)
        except redis.exceptions.RedisError as exc:
            return time.monotonic() - started, exc
        assert message is None
        return time.monotonic() - started, None
    finally:
        with suppress(Exception):
            await asyncio.wait_for(pubsub.aclose(), 5)  # type: ignore[no-untyped-call]
        with suppress(Exception):
            await asyncio.wait_for(client.aclose(), 5)


async def test_a_pub_sub_read_on_a_redis_gone_silent_ends_within_the_probing(
    route: Route, redis_address: str, base_settings: Settings
) -> None:
    """redis-py ends it as it ends a quiet read, with nothing (None): the next test is what
    the gateway's reader makes of that."""
    waited, error = await _read_into_silence(route, redis_address, base_settings, FAST_PROBING)
    assert error is None
    assert waited < 8.0, f"still waiting after {waited:.1f} s"


async def test_notifications_flow_again_after_the_redis_they_come_through_went_silent(
    route: Route, redis_address: str, base_settings: Settings, redis: Redis
) -> None:
    """The gateway's one pub/sub connection of a process: its Redis goes silent, the probes
    find it dead, the route comes back, and the next notification published reaches the open
    subscription. A reader that took the dead connection's None for a quiet wait would spin
    on it for ever and hear nothing again."""
    url = f"redis://{redis_address}/0"
    through_route = Redis.from_url(url, **redis_options(url, base_settings, FAST_PROBING))
    channels = MemberChannels(through_route)
    channel = member_channel(uuid.uuid4(), uuid.uuid4())
    try:
        async with channels.listen(channel) as queue:
            # SUBSCRIBE goes through the route's two relays: published directly, a message
            # can arrive first, with no one subscribed yet.
            for _ in range(100):
                if await redis.publish(channel, b"before"):
                    break
                await asyncio.sleep(0.05)
            assert await asyncio.wait_for(queue.get(), 5) == b"before"
            route.silence()
            await asyncio.sleep(6.0)  # 2 s of silence, two probes, the user timeout: found dead
            route.speak()
            heard: bytes | None = None
            deadline = time.monotonic() + 20
            while heard is None and time.monotonic() < deadline:
                # Published while the reader is away is lost (pub/sub keeps nothing): again
                # until it is back.
                await redis.publish(channel, b"after")
                with suppress(TimeoutError):
                    heard = await asyncio.wait_for(queue.get(), 0.5)
            assert heard == b"after"
    finally:
        await through_route.aclose()


async def test_without_probes_the_pub_sub_read_hears_nothing_and_waits_on(
    route: Route, redis_address: str, base_settings: Settings
) -> None:
    waited, error = await _read_into_silence(route, redis_address, base_settings, NO_PROBING)
    assert error is None, f"failed after {waited:.1f} s: {error!r}"
    assert waited >= WAITED_SECONDS
