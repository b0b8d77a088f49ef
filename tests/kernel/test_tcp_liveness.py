"""A server that goes silent is found out: each TCP connection to PostgreSQL probes its peer
(keepalives) and bounds unacknowledged data (a user timeout), as `services.kernel.tcp_liveness`
sets them: its defaults, or libpq's parameters from the URL; and each TCP connection to Redis
probes its peer with the defaults.

What is checked is what the kernel says of the live connection's socket. Dropping the packets of
one connection to show a probe failing would need the machine's packet filter, which the suite
does not touch."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis
from sqlalchemy import text

from services.kernel.db import Database, driver_connection
from services.kernel.runtime import redis_client, redis_options
from services.kernel.settings import Settings
from services.kernel.tcp_liveness import DEFAULTS
from tests.conftest import WorkerInfrastructure

TCP = socket.IPPROTO_TCP


def _over_tcp(test_infra: WorkerInfrastructure) -> str:
    url = test_infra.database_url
    parts = urlsplit(url)
    if not parts.hostname or "host=/" in parts.query:
        pytest.skip("PostgreSQL is reached over a Unix socket here, which has no TCP to probe")
    return url


async def _socket_options(url: str) -> dict[str, int]:
    """What the kernel says of the socket under a pooled connection, after a statement ran."""
    database = Database(url, pool_size=1, max_overflow=0)
    try:
        async with database.unit_of_work() as session:
            assert (await session.execute(text("SELECT 1"))).scalar_one() == 1
            sock = (await driver_connection(session))._transport.get_extra_info("socket")
            return {
                "keepalive": sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                "idle": sock.getsockopt(TCP, socket.TCP_KEEPIDLE),
                "interval": sock.getsockopt(TCP, socket.TCP_KEEPINTVL),
                "count": sock.getsockopt(TCP, socket.TCP_KEEPCNT),
                "user_timeout_ms": sock.getsockopt(TCP, socket.TCP_USER_TIMEOUT),
            }
    finally:
        await database.dispose()


def _with(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"


async def test_a_url_without_parameters_gets_the_defaults(
    test_infra: WorkerInfrastructure,
) -> None:
    assert await _socket_options(_over_tcp(test_infra)) == {
        "keepalive": 1,
        "idle": 30,
        "interval": 10,
        "count": 3,
        "user_timeout_ms": 30_000,
    }


async def test_libpq_parameters_in_the_url_are_what_the_socket_gets(
    test_infra: WorkerInfrastructure,
) -> None:
    url = _with(
        _over_tcp(test_infra),
        "keepalives_idle=7&keepalives_interval=2&keepalives_count=5&tcp_user_timeout=1500",
    )
    assert await _socket_options(url) == {
        "keepalive": 1,
        "idle": 7,
        "interval": 2,
        "count": 5,
        "user_timeout_ms": 1500,
    }


async def test_keepalives_off_leaves_the_connection_unprobed(
    test_infra: WorkerInfrastructure,
) -> None:
    options = await _socket_options(_with(_over_tcp(test_infra), "keepalives=0"))
    assert options["keepalive"] == 0
    assert options["user_timeout_ms"] == 30_000  # a parameter of its own, still set


def test_a_unix_socket_is_left_alone() -> None:
    """The embedded server's form: TCP's options would be refused on it (not supported)."""
    one, other = socket.socketpair(socket.AF_UNIX)
    try:
        DEFAULTS.apply(one)
        assert one.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
        with pytest.raises(OSError, match="not supported"):
            one.setsockopt(TCP, socket.TCP_KEEPIDLE, 30)
    finally:
        one.close()
        other.close()


async def test_a_redis_connection_over_tcp_gets_the_defaults_too(
    test_infra: WorkerInfrastructure, base_settings: Settings
) -> None:
    if urlsplit(test_infra.redis_url).scheme == "unix":
        pytest.skip("Redis is reached over a Unix socket here, which has no TCP to probe")
    client = redis_client(test_infra.redis_url, base_settings)
    try:
        assert await client.ping()
        connection = await client.connection_pool.get_connection()
        try:
            sock = connection._writer.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert [
                sock.getsockopt(TCP, option)
                for option in (
                    socket.TCP_KEEPIDLE,
                    socket.TCP_KEEPINTVL,
                    socket.TCP_KEEPCNT,
                    socket.TCP_USER_TIMEOUT,
                )
            ] == [30, 10, 3, 30_000]
        finally:
            await client.connection_pool.release(connection)
    finally:
        await client.aclose()


def test_a_redis_unix_socket_gets_no_keepalive_options(base_settings: Settings) -> None:
    """redis-py refuses them for a Unix socket (the embedded server's form): every connection
    failed to be made."""
    url = "unix:///tmp/kinfolk-redis.sock"
    assert "socket_keepalive" not in redis_options(url, base_settings)
    client = Redis.from_url(url, **redis_options(url, base_settings))
    assert client.connection_pool.make_connection() is not None
