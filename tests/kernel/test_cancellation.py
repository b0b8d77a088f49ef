"""Stopping a task that swallows a cancellation: it is cancelled again until it is done."""

from __future__ import annotations

import asyncio

from services.kernel.loops import cancel_and_wait


async def _swallows_one_cancellation(cleaned: list[str]) -> None:
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        # Clean-up that awaits something slow and does not re-raise, as a client closing its
        # connection may: the first cancellation is lost here.
        cleaned.append("first")
    await asyncio.Event().wait()  # would wait forever but for a second cancellation


async def test_a_task_that_swallows_a_cancellation_is_cancelled_again_until_done() -> None:
    cleaned: list[str] = []
    task = asyncio.create_task(_swallows_one_cancellation(cleaned))
    await asyncio.sleep(0)
    assert await cancel_and_wait(task, again_after=0.05) == 2
    assert task.cancelled()
    assert cleaned == ["first"]


async def test_a_task_that_obeys_is_cancelled_once_and_a_done_one_not_at_all() -> None:
    obeys = asyncio.create_task(asyncio.Event().wait())
    await asyncio.sleep(0)
    assert await cancel_and_wait(obeys, again_after=0.05) == 1
    assert obeys.cancelled()
    done = asyncio.create_task(asyncio.sleep(0))
    await done
    assert await cancel_and_wait(done) == 0
    assert not done.cancelled()
