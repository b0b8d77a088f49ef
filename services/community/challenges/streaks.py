"""Streaks: runs of consecutive UTC days with at least one counted action in a challenge.

Computed from the set of active days rather than step by step, so an event that arrives late
(or an action withdrawn when its content is removed) leaves the same answer as if everything
had come in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

ONE_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Runs:
    last: int  # the run that ends on the last active day
    longest: int
    last_day: date | None


def runs(days: Sequence[date]) -> Runs:
    """`days` ascending and distinct."""
    longest = run = 0
    previous: date | None = None
    for day in days:
        run = run + 1 if previous is not None and day - previous == ONE_DAY else 1
        longest = max(longest, run)
        previous = day
    return Runs(last=run, longest=longest, last_day=previous)


def current(streak: int, last_day: date | None, today: date) -> int:
    """The streak as of `today`: still alive if the last active day is today or yesterday
    (today may yet extend it), broken (0) once a whole day has passed without an action."""
    if last_day is None or last_day < today - ONE_DAY:
        return 0
    return streak
