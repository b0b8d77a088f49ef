"""Typed HTTP clients for calling another Kinfolk service.

A service never reads another's tables; it calls the other's HTTP API. When the other service is
hosted by the same app (all in one, tests), the client talks to that app in process through
`httpx.ASGITransport`: the same code path, no network. Otherwise it calls the base URL configured as
`KINFOLK_<SERVICE>_URL` (a `<service>_url` field of `Settings`).

Privacy contract: a service that declares `privacy_export=True` serves
`GET /<service>/v1/privacy/members/{member_id}`. It answers 200 with a JSON object holding
everything it keeps on that member (404 or `{}` when it holds nothing), and admits a staff key with
`members:read` of the member's brand or that member's own token: the members service forwards
its caller's `Authorization` header.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cached_property
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, Self

import httpx
import structlog
from prometheus_client import Counter
from starlette.applications import Starlette
from starlette.types import ASGIApp

from services.kernel.auth import Scope, ServiceTokens
from services.kernel.db import request_holds_connection
from services.kernel.errors import ServiceUnavailable
from services.kernel.middleware import current_request_id
from services.kernel.module import ServiceModule
from services.kernel.settings import Settings


class ServiceClient:
    """Calls one other service. Subclass it to add a service's typed calls."""

    def __init__(self, service: str, http: httpx.AsyncClient) -> None:
        self.service = service
        self._http = http

    @classmethod
    @asynccontextmanager
    async def open(
        cls, service: str, peers: Peers, *, headers: Mapping[str, str] | None = None
    ) -> AsyncIterator[Self]:
        """A client for `service`, where `peers` finds it."""
        async with peers.http(service, headers=headers) as http:
            yield cls(service, http)

    async def get_json(
        self, path: str, *, params: Mapping[str, str | int] | None = None, missing: Any = None
    ) -> Any:
        """GET `path` as JSON; `missing` on 404; 503 when the service fails or is unreachable."""
        try:
            response = await self._http.get(path, params=params)
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(f"The {self.service} service is not reachable: {exc}") from exc
        if response.status_code == 404:
            return missing
        if response.status_code != 200:
            raise ServiceUnavailable(
                f"The {self.service} service answered {response.status_code} to GET {path}."
            )
        return response.json()

    async def privacy_export(self, member_id: uuid.UUID) -> dict[str, Any]:
        """Everything this service holds on a member (see the privacy contract above)."""
        path = f"/{self.service}/v1/privacy/members/{member_id}"
        data = await self.get_json(path, missing={})
        if not isinstance(data, dict):
            raise ServiceUnavailable(
                f"The {self.service} service's privacy export is not an object."
            )
        return data


@dataclass(frozen=True)
class Peers:
    """The other services as this process reaches them: in process through `app` for those it
    hosts (`hosted`), else at their `KINFOLK_<SERVICE>_URL`.

    A request's calls carry its caller's `Authorization` (the other service decides what that
    caller may read). A job has no caller: its calls carry a service token for one brand and
    only the scopes they need (`acting_for`).
    """

    settings: Settings
    app: ASGIApp | None = None
    hosted: frozenset[str] = frozenset()

    @classmethod
    def of(cls, app: Starlette) -> Peers:
        """The peers of the app serving a request (or of `kinfolk dev`'s one app)."""
        settings: Settings = app.state.settings
        return cls(settings, app, hosted_services(app))

    def http(self, service: str, *, headers: Mapping[str, str] | None = None) -> httpx.AsyncClient:
        """An httpx client for `service`; `ServiceUnavailable` when it is neither hosted here
        nor has a URL."""
        timeout = httpx.Timeout(self.settings.outbound_timeout_seconds)
        if self.app is not None and service in self.hosted:
            return service_client(
                "http://in-process",
                timeout=timeout,
                headers=headers,
                # Answered as over the network: a service's error is its 500 (already logged
                # there), not its exception raised on into the caller, which then behaved as
                # it never does when the service runs elsewhere.
                transport=httpx.ASGITransport(app=self.app, raise_app_exceptions=False),
            )
        # Each service that others call adds its `<service>_url` setting, as members does.
        configured = getattr(self.settings, f"{service}_url", None)
        if not isinstance(configured, str) or not configured:
            raise ServiceUnavailable(
                f"The {service} service is not in this process and "
                f"KINFOLK_{service.upper()}_URL is not set."
            )
        return service_client(configured, timeout=timeout, headers=headers)

    def acting_for(
        self, brand_id: uuid.UUID, scopes: frozenset[Scope], *, caller: str
    ) -> dict[str, str]:
        """Headers for a call that `caller`'s job makes for `brand_id`, with `scopes` only."""
        return {"Authorization": self._tokens.authorization(caller, brand_id, scopes)}

    @cached_property
    def _tokens(self) -> ServiceTokens:
        return ServiceTokens(self.settings)


def service_client(
    base_url: str,
    *,
    timeout: httpx.Timeout | float,
    headers: Mapping[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """An httpx client for calls to another Kinfolk service: it keeps no cookies, and each
    call carries the id of the request being served."""
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=timeout,
        headers=headers,
        transport=transport,
        cookies=no_cookies(),
        event_hooks={"request": [send_request_id, count_held_connection]},
    )


async def send_request_id(request: httpx.Request) -> None:
    """The call is part of the request being served: it carries that request's id."""
    request_id = current_request_id()
    if request_id is not None and "x-request-id" not in request.headers:
        request.headers["X-Request-ID"] = request_id


log = structlog.get_logger("kinfolk.clients")

CALLS_HOLDING_A_CONNECTION = Counter(
    "kinfolk_calls_holding_a_connection_total",
    "Calls to another service made while the request being served held a database connection "
    "it had not been asked to give up (db.release_connection): each can starve the pool.",
    ["service"],
)


async def count_held_connection(request: httpx.Request) -> None:
    """A request that calls another service while it holds a connection keeps it through the
    wait; in a burst, in process, that starves the pool the call itself needs. Counted and
    logged (the test suite fails on any), not refused: the call still works."""
    if request_holds_connection():
        service = request.url.path.strip("/").partition("/")[0] or "unknown"
        CALLS_HOLDING_A_CONNECTION.labels(service).inc()
        log.warning(
            "call.holding_connection",
            url=str(request.url),
            hint="call db.release_connection(session) before calling another service",
        )


def no_cookies() -> CookieJar:
    """A cookie jar that keeps nothing. A client serves many members' calls (the gateway keeps
    one per service for the process), so a cookie that one answer set (a proxy's session, a
    load balancer's) would otherwise go out with every later call, whoever made it. (Passed as
    a jar: httpx copies an `httpx.Cookies` into a jar of its own, which keeps everything.)"""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


def hosted_services(app: Starlette) -> frozenset[str]:
    """Names of the services the app in `app.state` serves itself (set by `build_app`)."""
    services: tuple[ServiceModule, ...] = getattr(app.state, "services", ())
    return frozenset(s.name for s in services)
