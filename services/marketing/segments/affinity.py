"""Affinity conditions ask the recommender which members its serving model ranks most likely
to engage with an item (DESIGN: another service's data only through its HTTP API).

On a request, the call carries the caller's own key, so the recommender decides what that key
may read (`recommender:read`). A job (a scheduled refresh, an export) has no caller: its call
carries a service token for the segment's brand with `recommender:read` only. Saving a rule
with an affinity condition needs a key with `recommender:read`, so a schedule reads no more
than the person who set it up could.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Protocol
from urllib.parse import quote

import httpx
from starlette.requests import Request

from services.kernel.auth import Scope
from services.kernel.clients import Peers
from services.kernel.errors import ServiceUnavailable
from services.marketing.segments.compiler import Audience
from services.marketing.segments.errors import (
    AffinityNotAllowed,
    AffinityUnavailable,
    UnknownItem,
)


class AffinitySource(Protocol):
    async def audience(self, item: str, top_share: float, *, path: str) -> Audience:
        """The members among the brand's top `top_share` for `item`; `path` names the rule
        node asking, for errors."""
        ...


# Affinity sources for the segments of any brand: what a job asks with.
AffinityFor = Callable[[uuid.UUID], AffinitySource]

_JOB_SCOPES = frozenset({Scope.RECOMMENDER_READ})


class RecommenderAudiences:
    """The recommender's answers over HTTP: in process when this app hosts it, else at
    `KINFOLK_RECOMMENDER_URL`."""

    def __init__(self, peers: Peers, headers: Mapping[str, str], *, job: bool = False) -> None:
        self._peers = peers
        self._headers = headers
        self._job = job

    @classmethod
    def for_request(cls, request: Request) -> RecommenderAudiences:
        """Asking with the caller's own key."""
        authorization = request.headers.get("authorization", "")
        return cls(Peers.of(request.app), {"Authorization": authorization})

    @staticmethod
    def for_jobs(peers: Peers) -> AffinityFor:
        """Asking, for a brand's segments, with a service token of that brand."""

        def for_brand(brand_id: uuid.UUID) -> AffinitySource:
            headers = peers.acting_for(brand_id, _JOB_SCOPES, caller="marketing")
            return RecommenderAudiences(peers, headers, job=True)

        return for_brand

    async def audience(self, item: str, top_share: float, *, path: str) -> Audience:
        url = f"/recommender/v1/items/{quote(item, safe=':')}/audience"
        try:
            async with self._peers.http("recommender", headers=self._headers) as http:
                response = await http.get(url, params={"top_share": top_share})
        except ServiceUnavailable as exc:
            raise AffinityUnavailable(f"{path}: {exc.detail}") from exc
        except httpx.HTTPError as exc:
            raise AffinityUnavailable(
                f"{path}: the recommender is not reachable ({exc}); try again shortly."
            ) from exc
        if response.status_code == 404:
            raise UnknownItem(f"{path}.affinity.item", f"The recommender knows no item {item!r}.")
        if response.status_code == 401 and self._job:
            # Not the segment's fault: the two processes do not share the signing secret.
            raise AffinityUnavailable(
                f"{path}: the recommender refused this process's service token; every process "
                "of the deployment needs the same KINFOLK_SERVICE_SECRET (or KINFOLK_JWT_SECRET)."
            )
        if response.status_code in (401, 403):
            raise AffinityNotAllowed(
                path, "Affinity conditions read the recommender: the key needs recommender:read."
            )
        if response.status_code != 200:
            raise AffinityUnavailable(
                f"{path}: the recommender answered {response.status_code}; try again shortly."
            )
        body = response.json()
        if body.get("version_id") is None:
            return Audience(None, body.get("note"))
        return Audience([uuid.UUID(m) for m in body["member_ids"]], body.get("note"))
