"""A small in-process cache with a time to live, for what every request reads and rarely
changes (a brand's running experiment, its exploration candidates).

Each process holds its own copy: a change reaches other processes within the TTL, and the
process that made it at once (it calls `forget`). Loads are not deduplicated: two requests that
miss at the same moment both read, which costs one query more and no correctness.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(self, seconds: float, max_entries: int = 10_000) -> None:
        self._seconds = seconds
        self._max_entries = max_entries
        self._entries: dict[K, tuple[float, V]] = {}

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        value = await load()
        if len(self._entries) >= self._max_entries:
            self._evict(now)
        self._entries[key] = (now + self._seconds, value)
        return value

    def forget(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def _evict(self, now: float) -> None:
        expired = [k for k, (until, _) in self._entries.items() if until <= now]
        for key in expired:
            del self._entries[key]
        if len(self._entries) >= self._max_entries:
            self._entries.clear()
