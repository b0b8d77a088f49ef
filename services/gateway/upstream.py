"""The gateway's calls to the other services, on the member's behalf.

Every call forwards the member's own `Authorization` header, so each service applies its own
rules to the member exactly as it would for the app calling it directly: the gateway adds no
privileges. A service hosted by the same app is called in process (`httpx.ASGITransport`), the
others at their `KINFOLK_<SERVICE>_URL`, with one pooled client per service for the process.

A 4xx answer becomes an `UpstreamRefusal` carrying the service's `{"error", "detail"}`: a query
turns it into a typed GraphQL error, a mutation into `userErrors`. A 5xx or an unreachable service
is `UpstreamUnavailable`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from services.gateway.errors import UpstreamUnavailable
from services.kernel.clients import Peers
from services.kernel.errors import ServiceUnavailable

UPSTREAM_SERVICES = ("members", "rewards", "community", "recommender")


@dataclass(frozen=True, slots=True)
class UpstreamRefusal(Exception):
    """A service answered 4xx: the caller asked for something it may not have or do."""

    service: str
    status: int
    code: str
    detail: Any

    @property
    def message(self) -> str:
        detail = self.detail
        if isinstance(detail, str):
            return detail
        if isinstance(detail, dict) and isinstance(detail.get("message"), str):
            # Some refusals detail facts besides their `message` (a perk's or prompt's window).
            return str(detail["message"])
        if isinstance(detail, list) and detail:
            # A ValidationError's detail lists the fields at fault; the first says what to fix.
            first = detail[0]
            if isinstance(first, dict) and "msg" in first:
                return str(first["msg"])
        return f"The {self.service} service refused the request ({self.code})."

    @property
    def location(self) -> list[str] | None:
        """Where a ValidationError's first fault is, as the service says it: `["body", "seats"]`,
        `["header", "Idempotency-Key"]`; None for any other refusal."""
        if isinstance(self.detail, list) and self.detail and isinstance(self.detail[0], dict):
            location = self.detail[0].get("loc")
            if isinstance(location, list):
                return [str(part) for part in location]
        return None

    @property
    def field(self) -> list[str] | None:
        """The `location` within the body, query or path (its first element dropped); None
        when there is none, or the fault is with the body as a whole."""
        location = self.location
        if location and location[0] in ("body", "query", "path"):
            location = location[1:]
        return location or None


class Upstream:
    """One service, called with one member's headers."""

    def __init__(
        self, service: str, http: httpx.AsyncClient | str, headers: Mapping[str, str]
    ) -> None:
        self.service = service
        # A string: why the service cannot be reached (neither hosted nor configured).
        self._http = http
        self._headers = dict(headers)
        self.calls = 0

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return await self.request("GET", path, params=params)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """The JSON answer (None for 204); `UpstreamRefusal` on 4xx; unavailable on 5xx."""
        headers = self._headers
        if idempotency_key is not None:
            headers = {**headers, "Idempotency-Key": idempotency_key}
        query = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        self.calls += 1
        if isinstance(self._http, str):
            raise UpstreamUnavailable(self._http)
        try:
            response = await self._http.request(
                method, path, params=query, json=json, headers=headers
            )
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(
                f"The {self.service} service is not reachable; try again shortly."
            ) from exc
        if response.status_code == 204:
            return None
        if response.status_code >= 500:
            raise UpstreamUnavailable(
                f"The {self.service} service failed ({response.status_code}); try again shortly."
            )
        body = response.json() if response.content else None
        if response.status_code >= 400:
            code = body.get("error", "Refused") if isinstance(body, dict) else "Refused"
            detail = body.get("detail") if isinstance(body, dict) else None
            raise UpstreamRefusal(self.service, response.status_code, str(code), detail)
        return body


def _param(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return str(value)


class UpstreamPool:
    """One pooled httpx client per service for the life of the process."""

    def __init__(self, peers: Peers) -> None:
        self._clients: dict[str, httpx.AsyncClient | str] = {}
        for service in UPSTREAM_SERVICES:
            try:
                self._clients[service] = peers.http(service)
            except ServiceUnavailable as exc:
                # Not fatal at start: a field that needs the service answers unavailable.
                self._clients[service] = str(exc.detail)

    def for_member(self, authorization: str) -> Upstreams:
        headers = {"Authorization": authorization}
        return Upstreams(
            members=Upstream("members", self._clients["members"], headers),
            rewards=Upstream("rewards", self._clients["rewards"], headers),
            community=Upstream("community", self._clients["community"], headers),
            recommender=Upstream("recommender", self._clients["recommender"], headers),
        )

    async def aclose(self) -> None:
        for client in self._clients.values():
            if not isinstance(client, str):
                await client.aclose()


@dataclass(frozen=True, slots=True)
class Upstreams:
    members: Upstream
    rewards: Upstream
    community: Upstream
    recommender: Upstream

    @property
    def calls(self) -> int:
        """Calls made so far in this request, across services (the N+1 test counts them)."""
        upstreams = (self.members, self.rewards, self.community, self.recommender)
        return sum(upstream.calls for upstream in upstreams)
