"""One bounded in-process cache, for every process-local copy Kinfolk keeps: parsed events,
verified tokens, a brand's earning rules, moderation models, the recommender's per-brand reads.

At most `size` entries: past it, the least recently used goes, so a copy in steady use stays
and memory stays bounded however many keys come by. An entry may carry a deadline on the
monotonic clock, after which it is gone. Not thread-safe: each is used from one event loop.
"""

from __future__ import annotations

import enum
import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, Literal, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Missing(enum.Enum):
    """What `get` answers for a key it does not hold (values may be None)."""

    MISSING = enum.auto()


MISSING: Literal[Missing.MISSING] = Missing.MISSING


class BoundedCache(Generic[K, V]):
    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a cache holds at least one entry")
        self._size = size
        self._entries: OrderedDict[K, tuple[V, float | None]] = OrderedDict()

    def get(self, key: K) -> V | Literal[Missing.MISSING]:
        """The value, made the most recently used; MISSING if absent or past its deadline."""
        entry = self._entries.get(key)
        if entry is None:
            return MISSING
        value, until = entry
        if until is not None and time.monotonic() >= until:
            self._entries.pop(key, None)
            return MISSING
        self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V, *, seconds: float | None = None) -> None:
        """Holds `value` (for `seconds` at most, when given), evicting the least recently used
        entry past the size."""
        until = time.monotonic() + seconds if seconds is not None else None
        self._entries[key] = (value, until)
        self._entries.move_to_end(key)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def forget(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def keys(self) -> list[K]:
        """The keys held, least recently used first (deadlines not checked, nothing used)."""
        return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
