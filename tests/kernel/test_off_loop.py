"""CPU-bound work off the event loop: results and errors come back; a cancelled wait does not
wait for the thread."""

from __future__ import annotations

import asyncio
import threading

import pytest

from services.kernel.loops import off_loop


async def test_the_result_and_the_error_come_back_to_the_awaiting_task() -> None:
    assert await off_loop(lambda: sum(range(10))) == 45

    def fails() -> int:
        raise ValueError("no hidden items")

    with pytest.raises(ValueError, match="no hidden items"):
        await off_loop(fails)


async def test_the_loop_runs_meanwhile_and_a_cancelled_wait_leaves_the_thread_behind() -> None:
    release = threading.Event()
    ticks = 0

    def busy() -> str:
        release.wait(timeout=10)
        return "done"

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    waiting = asyncio.create_task(off_loop(busy))
    await asyncio.sleep(0.2)
    assert ticks >= 5  # the loop was not blocked
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    # The wait ended while `busy` is still blocked: its thread lives on, as a daemon.
    threads = [t for t in threading.enumerate() if t.name == "off-loop" and t.is_alive()]
    assert threads
    assert all(t.daemon for t in threads)
    release.set()
    ticker.cancel()
