"""Helpers for the long-running loops (relay, consumers, job worker) that share one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import threading
from collections.abc import Callable
from typing import Any, TypeVar

# The default backoff: module constants so a test can shorten them.
T = TypeVar("T")

BACKOFF_INITIAL_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    """Sleep up to `seconds`, waking at once when `stop` is set, so shutdown never waits a poll."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


# How long a cancelled task gets to finish before it is cancelled again.
RECANCEL_SECONDS = 1.0


async def cancel_and_wait(task: asyncio.Future[Any], *, again_after: float | None = None) -> int:
    """Cancels `task` and waits until it is done, cancelling it again each `again_after` seconds
    (RECANCEL_SECONDS) while it is not. Returns how many cancellations it took.

    One cancellation is not always enough: code that catches `CancelledError` to clean up and
    then awaits something else (a Redis client closing its connection, say) swallows it, and a
    task that waits for such a task waits forever. arq's worker loop did so once in a while, and
    a stopping worker then never stopped.
    """
    delay = RECANCEL_SECONDS if again_after is None else again_after
    cancels = 0
    while not task.done():
        task.cancel()
        cancels += 1
        await asyncio.wait({task}, timeout=delay)
    return cancels


class Backoff:
    """Exponential backoff after failures: initial, doubled each time, capped; reset on success.

    The loops never exit on an infrastructure error (a database restart, a Redis failover): they
    log, wait this long and try again, so events keep flowing once the dependency is back.
    """

    def __init__(self, initial: float | None = None, maximum: float | None = None) -> None:
        self.initial = BACKOFF_INITIAL_SECONDS if initial is None else initial
        self.maximum = BACKOFF_MAX_SECONDS if maximum is None else maximum
        self.current = self.initial

    def next_delay(self) -> float:
        delay = self.current
        self.current = min(self.current * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self.current = self.initial


def _malloc_trim() -> Callable[[], None]:
    """glibc's `malloc_trim(0)`, or nothing where the C library has none (musl, macOS)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    trim.argtypes = [ctypes.c_size_t]

    def release() -> None:
        trim(0)

    return release


# glibc keeps what a thread frees in that thread's malloc arena, for the thread to reuse; the
# threads here are new each time and a model fit frees hundreds of megabytes, so without giving
# it back the process keeps the high-water mark of every arena (measured: a dev server
# retraining a young brand every five minutes grew by 40 to 100 MB a round; with this, flat).
release_free_memory = _malloc_trim()


async def off_loop(function: Callable[[], T]) -> T:
    """Run CPU-bound `function()` in a daemon thread and await its result, so the event
    loop (which may also serve HTTP, as in `kinfolk dev`) keeps going meanwhile.

    The freed memory of the work goes back to the system afterwards (`release_free_memory`).
    Unlike `asyncio.to_thread`, a process that stops does not wait for the thread: a model fit
    cannot be interrupted, and the job awaiting it is cancelled and rolled back anyway (arq runs
    it again later), so its thread is abandoned rather than holding up the shutdown."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def work() -> None:
        try:
            result = function()
        except BaseException as exc:  # handed to the awaiting task, not lost in the thread
            error = exc
            with contextlib.suppress(RuntimeError):  # the loop has closed: no one is waiting
                loop.call_soon_threadsafe(settle, lambda: future.set_exception(error))
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, lambda: future.set_result(result))
        # After the result is handed over: the awaiting task does not wait for this.
        release_free_memory()

    threading.Thread(target=work, name="off-loop", daemon=True).start()
    return await future
