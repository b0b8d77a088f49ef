"""The one bounded cache: least recently used goes first, deadlines end entries, None is a
value like any other."""

from __future__ import annotations

import time

import pytest

from services.kernel.caches import MISSING, BoundedCache


def test_past_its_size_the_least_recently_used_entry_goes() -> None:
    cache: BoundedCache[str, int] = BoundedCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # now "b" is the least recently used
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, MISSING, 3)
    cache.put("a", 10)  # replacing counts as a use, and keeps the size
    cache.put("d", 4)
    assert (cache.get("a"), cache.get("c"), cache.get("d")) == (10, MISSING, 4)
    assert len(cache) == 2
    assert cache.keys() == ["a", "d"]  # least recently used first


def test_an_entry_past_its_deadline_is_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    cache: BoundedCache[str, int | None] = BoundedCache(10)
    cache.put("short", 1, seconds=5)
    cache.put("none", None, seconds=60)
    cache.put("kept", 3)
    assert cache.get("none") is None  # a held None is not a miss
    later = time.monotonic() + 6
    monkeypatch.setattr(time, "monotonic", lambda: later)
    assert cache.get("short") is MISSING
    assert (cache.get("none"), cache.get("kept")) == (None, 3)
    assert len(cache) == 2
    cache.forget("kept")
    assert cache.get("kept") is MISSING
    cache.clear()
    assert len(cache) == 0


def test_a_cache_holds_at_least_one_entry() -> None:
    with pytest.raises(ValueError, match="at least one entry"):
        BoundedCache(0)
