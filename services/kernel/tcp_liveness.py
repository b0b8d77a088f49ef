"""Finding out that PostgreSQL or Redis went silent: TCP keepalives and a user timeout.

A server that goes away without closing its connections (a failover behind a stale address, a
dropped route, a NAT that forgot the mapping) sends nothing more, not even a reset. A query
already sent then waits for a reply that never comes, for as long as the operating system keeps
the connection: without keepalives, until the process restarts. Statement timeouts cannot help
(the server that would enforce one is gone) and would cut the long statements bulk jobs run.
Keepalive probes ask the peer's kernel, not PostgreSQL, so a long query on a live server is never
cut; with DEFAULTS a dead peer fails the connection in about 40 s, and a request that meets it
is a 503 (`errors.dependency_unavailable`); tests/faults/test_silent_server.py drops a route.

libpq does this with the connection parameters `keepalives`, `keepalives_idle`,
`keepalives_interval`, `keepalives_count` and `tcp_user_timeout` (milliseconds), which operators
already put in their URLs; asyncpg has no such parameters (MagicStack/asyncpg#606, where its
maintainers point to the transport's socket, as done here), and refuses them. So a URL may carry
them in libpq's spelling: the services set them on each new connection's socket, libpq tools
read them themselves, and a URL without them gets DEFAULTS, tighter than the operating system's
(probing after two hours of silence). A Unix socket has no TCP to probe and is left alone.

Redis connections get the same DEFAULTS (`runtime.redis_options`): a pub/sub reader on a Redis
gone silent would otherwise wait for messages on a dead connection for ever, and every
subscription of its process with it.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

# libpq's names, in libpq's units (seconds, and milliseconds for tcp_user_timeout).
PARAMETERS = (
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
)


class SocketOptions(Protocol):
    """What a transport's socket (asyncio's TransportSocket, uvloop's PseudoSocket) offers."""

    @property
    def family(self) -> int: ...

    def setsockopt(self, level: int, optname: int, value: int, /) -> None: ...


@dataclass(frozen=True, slots=True)
class TcpLiveness:
    keepalives: bool
    idle_seconds: int  # silence before the first probe
    interval_seconds: int  # between probes
    count: int  # probes unanswered before the connection fails
    # How long sent data may stay unacknowledged (a query sent into a dropped route); also
    # bounds the probing. 0 leaves it to the operating system (about 15 minutes).
    user_timeout_ms: int

    @classmethod
    def of(cls, query: Mapping[str, str]) -> TcpLiveness:
        """The settings a URL's query asks for, DEFAULTS for the rest; a ValueError, saying
        what to write, for a value libpq would refuse."""
        keepalives = query.get("keepalives", "1" if DEFAULTS.keepalives else "0")
        if keepalives not in ("0", "1"):
            raise ValueError(f"keepalives must be 0 or 1 (not {keepalives!r})")
        return cls(
            keepalives=keepalives == "1",
            idle_seconds=_whole(query, "keepalives_idle", DEFAULTS.idle_seconds, low=1),
            interval_seconds=_whole(query, "keepalives_interval", DEFAULTS.interval_seconds, low=1),
            count=_whole(query, "keepalives_count", DEFAULTS.count, low=1),
            user_timeout_ms=_whole(query, "tcp_user_timeout", DEFAULTS.user_timeout_ms, low=0),
        )

    def tcp_options(self) -> dict[int, int]:
        """The TCP-level socket options (IPPROTO_TCP), besides SO_KEEPALIVE itself."""
        probing = {
            socket.TCP_KEEPIDLE: self.idle_seconds,
            socket.TCP_KEEPINTVL: self.interval_seconds,
            socket.TCP_KEEPCNT: self.count,
        }
        return {
            **(probing if self.keepalives else {}),
            socket.TCP_USER_TIMEOUT: self.user_timeout_ms,
        }

    def apply(self, sock: SocketOptions) -> None:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, int(self.keepalives))
        for option, value in self.tcp_options().items():
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


# Probes after 30 s of silence, 10 s apart; the user timeout then ends the connection at the
# first probe unanswered past 30 s of silence, the second (40 s; three would take 60). Data sent
# into a dropped route is given up after 30 s. A live server's kernel answers the probes at
# once, however long its query runs.
DEFAULTS = TcpLiveness(
    keepalives=True, idle_seconds=30, interval_seconds=10, count=3, user_timeout_ms=30_000
)


def without_parameters(query: Mapping[str, str]) -> dict[str, str]:
    """A URL's query without libpq's TCP parameters: for asyncpg, which refuses them."""
    return {name: value for name, value in query.items() if name not in PARAMETERS}


def _whole(query: Mapping[str, str], name: str, default: int, *, low: int) -> int:
    given = query.get(name)
    if given is None:
        return default
    try:
        value = int(given)
    except ValueError:
        value = low - 1
    if value < low:
        raise ValueError(f"{name} must be a whole number of at least {low} (not {given!r})")
    return value
