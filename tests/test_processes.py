"""Stopping a process's components: a component slow to stop is cancelled after the grace, and
the stop still completes cleanly (a crash on Ctrl-C in `kinfolk dev` while workers were busy)."""

from __future__ import annotations

import asyncio

import pytest

from services import processes


async def test_a_component_slow_to_stop_is_cancelled_and_the_stop_completes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(processes, "STOP_GRACE_SECONDS", 0.1)
    stop = asyncio.Event()
    finished: list[str] = []

    async def prompt() -> None:
        await stop.wait()
        finished.append("prompt")

    async def stubborn() -> None:
        try:
            await asyncio.sleep(3600)  # ignores `stop`
        except asyncio.CancelledError:
            finished.append("stubborn cancelled")
            raise

    async def broken() -> None:
        raise RuntimeError("boom")

    tasks = [asyncio.create_task(c()) for c in (prompt, stubborn, broken)]
    stop.set()
    async with asyncio.timeout(5):
        await processes._stop_all(tasks)
    assert sorted(finished) == ["prompt", "stubborn cancelled"]
    assert all(task.done() for task in tasks)


async def test_a_cancellation_while_stopping_still_stops_every_component(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As when uvicorn raises SIGINT again after serving and asyncio cancels the main task."""
    monkeypatch.setattr(processes, "STOP_GRACE_SECONDS", 0.5)
    stop = asyncio.Event()
    cancelled: list[str] = []
    finished: list[str] = []

    async def prompt() -> None:
        await asyncio.sleep(0.2)  # finishes within the grace, after the cancellation
        finished.append("prompt")

    async def slow_to_stop() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append("component")
            raise

    tasks = [asyncio.create_task(slow_to_stop()), asyncio.create_task(prompt())]
    stop.set()
    stopping = asyncio.create_task(processes._stop_all(tasks))
    await asyncio.sleep(0.05)
    stopping.cancel()  # the signal's cancellation arrives while the stop waits
    async with asyncio.timeout(5):
        await stopping  # completes: it does not raise CancelledError
    assert cancelled == ["component"]
    assert finished == ["prompt"]  # it was given the rest of the grace, not cancelled
    assert all(task.done() for task in tasks)
