"""A small in-process cache with a time to live, for what every request reads and rarely
changes (a brand's running experiment, its exploration candidates).

Each process holds its own copy: a change reaches other processes within the TTL, and the
process that made it at once (it calls `forget`).

Loads are shared: requests that miss while a load of the same key is under way wait for it
instead of starting their own. Unshared, every request that arrived during a load read too,
and the loads they added slowed the next arrivals into missing as well: on the recommendation
benchmark, the lists served in the first tenth of a second after a quiet spell (every entry
expired) took 100 ms and more. A load that fails or is cancelled is its own request's: the
requests waiting on it each load for themselves.

An entry lives between three quarters of the TTL and all of it, at random: entries loaded
together (each surface's exploration pool, in every process, after a start or a quiet spell)
would otherwise expire together, and their loads would come due in the same instant.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, Literal, TypeVar

from services.kernel.caches import MISSING, BoundedCache, Missing

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(self, seconds: float, max_entries: int = 10_000) -> None:
        self._seconds = seconds
        self._entries: BoundedCache[K, V] = BoundedCache(max_entries)
        # The loads under way; each resolves to the value, or to MISSING when it failed.
        self._loading: dict[K, asyncio.Future[V | Literal[Missing.MISSING]]] = {}

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        while True:
            found = self._entries.get(key)
            if found is not MISSING:
                return found
            under_way = self._loading.get(key)
            # A load of another event loop (a test's, gone) is nothing to wait for.
            if under_way is None or under_way.get_loop() is not asyncio.get_running_loop():
                return await self._load(key, load)
            # Shielded: a waiter cancelled (its client went away) leaves the load to the others.
            shared = await asyncio.shield(under_way)
            if shared is not MISSING:
                return shared
            # That load failed: the first waiter to wake loads, the others wait for it.

    async def _load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        mine: asyncio.Future[V | Literal[Missing.MISSING]] = (
            asyncio.get_running_loop().create_future()
        )
        self._loading[key] = mine
        try:
            value = await load()
        except BaseException:
            mine.set_result(MISSING)
            raise
        else:
            if self._loading.get(key) is mine:  # not forgotten while it loaded
                lifetime = self._seconds * random.uniform(0.75, 1.0)
                self._entries.put(key, value, seconds=lifetime)
            mine.set_result(value)
            return value
        finally:
            if self._loading.get(key) is mine:
                del self._loading[key]

    def forget(self, key: K) -> None:
        """Drops the entry. A load under way is not waited for by the next request, and what it
        read (perhaps before the change that calls this) is not kept."""
        self._entries.forget(key)
        self._loading.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
        self._loading.clear()
