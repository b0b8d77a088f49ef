"""The serving cache's shared loads: requests that miss together read once, and a load that
fails or goes away leaves the others to read for themselves."""

from __future__ import annotations

import asyncio

import pytest

from recommender.serving.cache import TtlCache


class Loads:
    """A load that counts its calls and finishes when the test says so."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()
        self.fail_first = False

    async def __call__(self) -> str:
        self.calls += 1
        call = self.calls
        await self.release.wait()
        if self.fail_first and call == 1:
            raise ConnectionError("the database went away")
        return f"value {call}"


async def loading_and_waiting(
    cache: TtlCache[str, str], load: Loads
) -> tuple[asyncio.Task[str], asyncio.Task[str]]:
    """A request that starts the load, and one that came after it and waits for it."""
    loading = asyncio.create_task(cache.get("brand", load))
    await asyncio.sleep(0)
    waiting = asyncio.create_task(cache.get("brand", load))
    await asyncio.sleep(0)
    return loading, waiting


async def test_requests_that_miss_together_share_one_load() -> None:
    cache: TtlCache[str, str] = TtlCache(60)
    load = Loads()
    waiting = [asyncio.create_task(cache.get("brand", load)) for _ in range(10)]
    await asyncio.sleep(0)
    load.release.set()
    assert await asyncio.gather(*waiting) == ["value 1"] * 10
    assert load.calls == 1
    assert await cache.get("brand", load) == "value 1"
    assert load.calls == 1


async def test_a_failed_load_fails_its_own_request_and_the_others_load_for_themselves() -> None:
    cache: TtlCache[str, str] = TtlCache(60)
    load = Loads()
    load.fail_first = True
    first = asyncio.create_task(cache.get("brand", load))
    await asyncio.sleep(0)
    others = [asyncio.create_task(cache.get("brand", load)) for _ in range(3)]
    await asyncio.sleep(0)
    assert load.calls == 1  # they wait for the first
    load.release.set()
    with pytest.raises(ConnectionError):
        await first
    answers = await asyncio.gather(*others)
    # The first waiter to wake reads again; the others share its read.
    assert answers == ["value 2"] * 3
    assert load.calls == 2


async def test_a_cancelled_load_leaves_the_others_to_load() -> None:
    cache: TtlCache[str, str] = TtlCache(60)
    load = Loads()
    first, second = await loading_and_waiting(cache, load)
    first.cancel()
    load.release.set()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second == "value 2"
    assert load.calls == 2


async def test_a_cancelled_waiter_does_not_cancel_the_load() -> None:
    cache: TtlCache[str, str] = TtlCache(60)
    load = Loads()
    first, waiter = await loading_and_waiting(cache, load)
    waiter.cancel()
    load.release.set()
    assert await first == "value 1"
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert load.calls == 1


async def test_what_a_load_read_before_a_forget_is_not_kept() -> None:
    cache: TtlCache[str, str] = TtlCache(60)
    load = Loads()
    under_way = asyncio.create_task(cache.get("brand", load))
    await asyncio.sleep(0)
    cache.forget("brand")  # the experiment changed while the load read the old one
    load.release.set()
    assert await under_way == "value 1"  # its own request still gets what it read
    assert await cache.get("brand", load) == "value 2"
    assert load.calls == 2


async def test_an_entry_past_its_time_is_loaded_again() -> None:
    cache: TtlCache[str, str] = TtlCache(0.05)
    load = Loads()
    load.release.set()
    assert await cache.get("brand", load) == "value 1"
    assert await cache.get("brand", load) == "value 1"
    await asyncio.sleep(0.06)
    assert await cache.get("brand", load) == "value 2"


async def test_entries_live_between_three_quarters_of_their_time_and_all_of_it() -> None:
    cache: TtlCache[int, str] = TtlCache(0.4)
    load = Loads()
    load.release.set()
    for key in range(20):
        await cache.get(key, load)
    assert load.calls == 20
    await asyncio.sleep(0.25)  # under three quarters: every entry is still there
    for key in range(20):
        await cache.get(key, load)
    assert load.calls == 20
    await asyncio.sleep(0.16)  # past the whole time: none is
    for key in range(20):
        await cache.get(key, load)
    assert load.calls == 40
