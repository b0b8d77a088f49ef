"""Helpers for the long-running loops (relay, consumers, job worker) that share one event loop."""

from __future__ import annotations

import asyncio
import contextlib

# The default backoff: module constants so a test can shorten them.
BACKOFF_INITIAL_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    """Sleep up to `seconds`, waking at once when `stop` is set, so shutdown never waits a poll."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


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
