"""Affinity conditions ask the recommender which members its serving model ranks most likely
to engage with an item (DESIGN: another service's data only through its HTTP API).

The call carries the caller's own key, so the recommender decides what that key may read
(`recommender:read`). A job has no caller: a rule with an affinity condition is materialised
on demand only (the service refuses a schedule for it).
"""

from __future__ import annotations

import uuid
from typing import Protocol
from urllib.parse import quote

import httpx
from starlette.types import ASGIApp

from services.kernel.clients import service_http
from services.kernel.errors import ServiceUnavailable
from services.kernel.settings import Settings
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


class RecommenderAudiences:
    """The recommender's answers over HTTP: in process when this app hosts it, else at
    `KINFOLK_RECOMMENDER_URL`."""

    def __init__(self, settings: Settings, app: ASGIApp, *, hosted: bool, authorization: str):
        self._settings = settings
        self._app = app
        self._hosted = hosted
        self._headers = {"Authorization": authorization}

    async def audience(self, item: str, top_share: float, *, path: str) -> Audience:
        url = f"/recommender/v1/items/{quote(item, safe=':')}/audience"
        try:
            async with service_http(
                "recommender",
                settings=self._settings,
                app=self._app,
                hosted=self._hosted,
                headers=self._headers,
            ) as http:
                response = await http.get(url, params={"top_share": top_share})
        except ServiceUnavailable as exc:
            raise AffinityUnavailable(f"{path}: {exc.detail}") from exc
        except httpx.HTTPError as exc:
            raise AffinityUnavailable(
                f"{path}: the recommender is not reachable ({exc}); try again shortly."
            ) from exc
        if response.status_code == 404:
            raise UnknownItem(f"{path}.affinity.item", f"The recommender knows no item {item!r}.")
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
