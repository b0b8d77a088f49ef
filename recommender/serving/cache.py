"""A small in-process cache with a time to live, for what every request reads and rarely
changes (a brand's running experiment, its exploration candidates).

Each process holds its own copy: a change reaches other processes within the TTL, and the
process that made it at once (it calls `forget`). Loads are not deduplicated: two requests that
miss at the same moment both read, which costs one query more and no correctness.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from services.kernel.caches import MISSING, BoundedCache

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(self, seconds: float, max_entries: int = 10_000) -> None:
        self._seconds = seconds
        self._entries: BoundedCache[K, V] = BoundedCache(max_entries)

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        found = self._entries.get(key)
        if found is not MISSING:
            return found
        value = await load()
        self._entries.put(key, value, seconds=self._seconds)
        return value

    def forget(self, key: K) -> None:
        self._entries.forget(key)

    def clear(self) -> None:
        self._entries.clear()
