"""One HTTP attempt: POST the signed body to the address the endpoint's host resolved to (the
one the URL check admitted, so a DNS answer that changes after the check cannot point the
request elsewhere), without following redirects, reading at most a kilobyte of the answer,
within the timeout whatever the receiver does.

aiohttp rather than httpx: delivering is the hot path of this service, and aiohttp sends about
six times the requests per second of httpx on the same core (see `benchmarks/webhooks.py`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType

import aiohttp
from yarl import URL

from services.webhooks.urls import Network, Target, UrlRefused, check_url

# The response body kept in the attempt log; the rest is never read.
MAX_RESPONSE_BYTES = 1_024
# How long a resolved (or refused) host is trusted before it is resolved and checked again.
RESOLVE_SECONDS = 60.0
USER_AGENT = "Kinfolk-Webhooks/1"


@dataclass(frozen=True, slots=True)
class Answer:
    """What an attempt came to: a status (and the start of the body), or an error without one."""

    status: int | None
    body: str | None
    error: str | None
    retry_after: str | None
    duration_ms: int

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def gone(self) -> bool:
        return self.status == 410


class Sender:
    """Sends attempts over one pooled aiohttp session; resolves and checks hosts once a minute."""

    def __init__(
        self, allowed: Sequence[Network], timeout_seconds: float, max_connections: int
    ) -> None:
        self._allowed = allowed
        self._timeout = timeout_seconds
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._targets: dict[str, tuple[float, Target | UrlRefused]] = {}

    async def __aenter__(self) -> Sender:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0),
            # Cookies from one receiver must never ride along to the next.
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _target(self, url: str) -> Target:
        now = time.monotonic()
        cached = self._targets.get(url)
        if cached is None or cached[0] < now:
            try:
                found: Target | UrlRefused = await check_url(
                    url, self._allowed, resolve_timeout_seconds=self._timeout
                )
            except UrlRefused as refused:
                found = refused
            cached = (now + RESOLVE_SECONDS, found)
            self._targets[url] = cached
        if isinstance(cached[1], UrlRefused):
            raise cached[1]
        return cached[1]

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        started = time.perf_counter()
        status: int | None = None
        text: str | None = None
        retry_after: str | None = None
        error: str | None = None
        # One deadline for the whole attempt, resolving the host included: a worker's lease on
        # the delivery is counted in attempt timeouts. A host that takes all of it to resolve
        # is refused (and remembered as refused, like one that does not resolve).
        deadline = asyncio.get_running_loop().time() + self._timeout
        try:
            target = await self._target(url)
            async with asyncio.timeout_at(deadline):
                status, text, retry_after = await self._exchange(target, body, headers)
        except UrlRefused as refused:
            error = f"url refused: {refused}"
        except TimeoutError:
            error = f"timeout after {self._timeout:g} s"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            # Refused or reset connections, TLS failures, and answers that are not HTTP.
            error = f"{type(exc).__name__}: {exc}"[:MAX_RESPONSE_BYTES]
        duration_ms = round((time.perf_counter() - started) * 1000)
        return Answer(status, text, error, retry_after, duration_ms)

    async def _exchange(
        self, target: Target, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, str, str | None]:
        """Status, the start of the body, and any Retry-After."""
        assert self._session is not None, "use the sender as an async context manager"
        url = URL(target.url)
        address = URL(target.url, encoded=True).with_host(target.addresses[0])
        request_headers = {
            **headers,
            "host": url.raw_authority,
            "content-type": "application/json",
            "user-agent": USER_AGENT,
        }
        async with self._session.post(
            address,
            data=body,
            headers=request_headers,
            allow_redirects=False,
            server_hostname=target.host if url.scheme == "https" else None,
            timeout=aiohttp.ClientTimeout(total=None),  # the caller's `asyncio.timeout` rules
        ) as response:
            content = bytearray()
            while len(content) < MAX_RESPONSE_BYTES:
                chunk = await response.content.read(MAX_RESPONSE_BYTES - len(content))
                if not chunk:
                    break
                content += chunk
            if not response.content.at_eof():
                response.close()  # a huge body: drop the connection rather than read it
            text = content.decode("utf-8", errors="replace")
            return response.status, text, response.headers.get("retry-after")
