"""Per-request DataLoaders: every field that fetches from a service goes through one.

Two kinds:
- `fetch` (the `get` loader): any GET, keyed by (service, path, params). Fields that need the same
  resource (the member's profile, summary, a recommendation list) share one call per request.
- `by_id(kind)`: objects of one kind by id. All ids asked for in one tick of the event loop become
  one call to the service's batch read (`GET ...?ids=a&ids=b`), so a list of 10 or 100 posts costs
  one call, not one per post.
- `batched(name, load)`: any other batch call, keyed as its caller chooses (the recommendation
  lists of one screen: one call for the perks, prompts and posts).

Loaders live in the request's context and die with it: nothing is cached across members.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from strawberry.dataloader import DataLoader

from services.gateway.upstream import Upstream, Upstreams

# A GET: service, path and sorted query parameters (hashable, so identical GETs share a call).
GetKey = tuple[str, str, tuple[tuple[str, Any], ...]]


def get_key(service: str, path: str, params: dict[str, Any] | None = None) -> GetKey:
    return (service, path, tuple(sorted((params or {}).items())))


@dataclass(frozen=True, slots=True)
class BatchRead:
    """A service's read of many objects by id: `GET path?ids=...` answering `{"items": [...]}`."""

    service: str
    path: str
    # Ids per call; the services cap `ids` at 100.
    max_batch: int = 100


# Every kind a `by_id` loader can fetch. A module adding a type adds its batch read here.
BATCH_READS: dict[str, BatchRead] = {}


def register_batch_read(kind: str, read: BatchRead) -> None:
    BATCH_READS[kind] = read


class Loaders:
    def __init__(self, upstreams: Upstreams) -> None:
        self._upstreams = upstreams
        self._get: DataLoader[GetKey, Any] = DataLoader(self._get_many)
        self._by_id: dict[str, DataLoader[uuid.UUID, dict[str, Any] | None]] = {}
        self._batched: dict[str, DataLoader[Any, Any]] = {}

    def upstream(self, service: str) -> Upstream:
        return getattr(self._upstreams, service)  # type: ignore[no-any-return]

    async def fetch(self, service: str, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET through the request's loader: identical GETs in one request make one call."""
        return await self._get.load(get_key(service, path, params))

    def by_id(self, kind: str) -> DataLoader[uuid.UUID, dict[str, Any] | None]:
        loader = self._by_id.get(kind)
        if loader is None:
            read = BATCH_READS[kind]

            async def load(ids: list[uuid.UUID]) -> Sequence[dict[str, Any] | None]:
                return await self._read_many(read, ids)

            loader = DataLoader(load, max_batch_size=read.max_batch)
            self._by_id[kind] = loader
        return loader

    def batched(
        self, name: str, load: Callable[[list[Any]], Awaitable[Sequence[Any]]]
    ) -> DataLoader[Any, Any]:
        """The request's loader `name`, made from `load` on first use: the keys asked for in
        one tick of the event loop reach `load` together (a service's own batch call that is
        not a read by id, such as several recommendation lists)."""
        loader = self._batched.get(name)
        if loader is None:
            loader = DataLoader(load)
            self._batched[name] = loader
        return loader

    def prime(self, kind: str, data: dict[str, Any]) -> None:
        """Keeps an object read some other way (a page's item) for this request's by-id loads."""
        self.by_id(kind).prime(uuid.UUID(str(data["id"])), data)

    def forget(self, kind: str, raw_id: uuid.UUID) -> None:
        """Drops the request's copy of one object, so a read after a write sees the write."""
        loader = self.by_id(kind)
        if loader.cache_map.get(raw_id) is not None:
            loader.clear(raw_id)

    def forget_get(self, service: str, path: str, params: dict[str, Any] | None = None) -> None:
        """Drops the request's copy of one GET (the member's profile after they change it)."""
        key = get_key(service, path, params)
        if self._get.cache_map.get(key) is not None:
            self._get.clear(key)

    async def _get_many(self, keys: list[GetKey]) -> Sequence[Any]:
        async def one(key: GetKey) -> Any:
            service, path, params = key
            try:
                return await self.upstream(service).get(path, dict(params))
            except Exception as exc:
                return exc

        return await asyncio.gather(*(one(key) for key in keys))

    async def _read_many(
        self, read: BatchRead, ids: list[uuid.UUID]
    ) -> Sequence[dict[str, Any] | None]:
        page = await self.upstream(read.service).get(read.path, {"ids": [str(i) for i in ids]})
        found = {str(item["id"]): item for item in page.get("items", [])}
        return [found.get(str(i)) for i in ids]
