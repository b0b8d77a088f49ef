"""A PostgreSQL that goes silent mid-query (a dropped route: no reply, no reset) is found out by
the connection's TCP keepalives (`services.kernel.tcp_liveness`), as unavailable; without them
the query waits for as long as the operating system keeps the connection.

The route is real: a network namespace joined to this one by a veth pair, with a relay inside
it to PostgreSQL. Taking the namespace's end of the pair down drops every packet between them,
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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy.exc
from sqlalchemy import text

from services.kernel.db import Database, driver_connection
from services.kernel.errors import dependency_unavailable
from tests.conftest import WorkerInfrastructure

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]

# Probing scaled down from the defaults (30 s, three probes 10 s apart, 30 s user timeout), so
# that the test takes seconds: silence found after about 2 + 1 + 1 s, within the user timeout.
FAST = "keepalives_idle=2&keepalives_interval=1&keepalives_count=2&tcp_user_timeout=4000"
OFF = "keepalives=0&tcp_user_timeout=0"
SILENCE_AFTER_SECONDS = 0.5
WAITED_SECONDS = 12.0  # how long a query without probes is shown still waiting

# A relay: accepts on (host, port) in the namespace, forwards each connection to the next hop.
_RELAY = """
import asyncio, sys
async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()
async def handle(reader, writer):
    upstream_reader, upstream_writer = await asyncio.open_connection(sys.argv[3], int(sys.argv[4]))
    await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))
async def main():
    server = await asyncio.start_server(handle, sys.argv[1], int(sys.argv[2]))
    print("ready", flush=True)
    await server.serve_forever()
asyncio.run(main())
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


@asynccontextmanager
async def _to_postgresql(url: str, host: str, port: int) -> AsyncIterator[None]:
    """A relay in this namespace, on (host, port), to the PostgreSQL of `url` (TCP or socket)."""
    parts = urlsplit(url)
    socket_folder = parse_qs(parts.query).get("host", [""])[0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if socket_folder.startswith("/"):
            path = f"{socket_folder}/.s.PGSQL.{parts.port or 5432}"
            upstream = await asyncio.open_unix_connection(path)
        else:
            upstream = await asyncio.open_connection(parts.hostname, parts.port or 5432)
        await asyncio.gather(_pipe(reader, upstream[1]), _pipe(upstream[0], writer))

    server = await asyncio.start_server(handle, host, port)
    try:
        yield
    finally:
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

    def down(self) -> None:
        with suppress(subprocess.SubprocessError):
            _ip("netns", "delete", self.namespace)  # and the pair with it
        with suppress(subprocess.SubprocessError):
            _ip("link", "delete", self.outer)


@pytest.fixture
async def silenceable(test_infra: WorkerInfrastructure) -> AsyncIterator[tuple[Route, str]]:
    """A PostgreSQL URL through the route, and the route (`silence()` drops its packets)."""
    if shutil.which("ip") is None:
        pytest.skip("no `ip` command (iproute2) on this machine")
    route = Route()
    try:
        route.up()
    except subprocess.CalledProcessError as exc:
        route.down()
        pytest.skip(f"network namespaces are not allowed here: {exc.stderr.decode().strip()}")
    relay: asyncio.subprocess.Process | None = None
    try:
        async with _to_postgresql(test_infra.database_url, route.outer_address, 55_432):
            relay = await asyncio.create_subprocess_exec(
                *("ip", "netns", "exec", route.namespace, sys.executable, "-c", _RELAY),
                *(route.inner_address, "5432", route.outer_address, "55432"),
                stdout=asyncio.subprocess.PIPE,
            )
            assert relay.stdout is not None
            assert await relay.stdout.readline() == b"ready\n"
            parts = urlsplit(test_infra.database_url)
            user = parts.username or "postgres"
            yield route, f"postgresql://{user}@{route.inner_address}:5432{parts.path}"
    finally:
        if relay is not None:
            relay.kill()
            await relay.wait()
        route.down()


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


async def test_a_query_to_a_server_gone_silent_fails_as_unavailable_within_the_probing(
    silenceable: tuple[Route, str],
) -> None:
    route, url = silenceable
    waited, error = await _query_into_silence(route, f"{url}?{FAST}")
    assert error is not None, f"still waiting after {waited:.1f} s"
    assert dependency_unavailable(error)  # a 503 in a request, to be retried
    assert waited < 8.0  # 2 s of silence, two probes a second apart, the 4 s user timeout


async def test_without_probes_the_same_query_is_still_waiting(
    silenceable: tuple[Route, str],
) -> None:
    """The route really is silent: nothing but the probes would end the wait."""
    route, url = silenceable
    waited, error = await _query_into_silence(route, f"{url}?{OFF}")
    assert error is None, f"failed after {waited:.1f} s: {error!r}"
    assert waited >= WAITED_SECONDS
