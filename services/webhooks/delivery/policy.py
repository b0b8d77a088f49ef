"""What follows from an attempt's answer: success, a retry when, or the end of the schedule.

The schedule is the Standard Webhooks habit (and Svix's): immediately, then about 5 s, 5 min,
30 min, 2 h, 5 h, 10 h and 10 h (`webhooks_retry_schedule_seconds`), each delay give or take a
fifth at random so that the retries of a burst that failed together do not come back together.
A `Retry-After` from the receiver replaces the delay, held between one second and the longest
delay of the schedule so that a receiver can neither make us hammer it nor park a message for
ever.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

JITTER = 0.2
RETRY_AFTER_MIN_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Next:
    succeeded: bool
    retry_at: datetime | None  # None: succeeded, or the schedule is spent


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """A `Retry-After` header as seconds from `now`: delta-seconds or an HTTP date; None when
    absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max((when - now).total_seconds(), 0.0)


def next_step(
    *,
    succeeded: bool,
    attempts_before: int,
    attempted_at: datetime,
    schedule: Sequence[float],
    retry_after: float | None = None,
    uniform: Callable[[float, float], float] = random.uniform,
) -> Next:
    """After the attempt number `attempts_before + 1` of a schedule (the first one is the
    immediate try), when to try again."""
    if succeeded:
        return Next(succeeded=True, retry_at=None)
    if attempts_before >= len(schedule):
        return Next(succeeded=False, retry_at=None)
    delay = schedule[attempts_before] * uniform(1 - JITTER, 1 + JITTER)
    if retry_after is not None:
        delay = min(max(retry_after, RETRY_AFTER_MIN_SECONDS), max(schedule))
    return Next(succeeded=False, retry_at=attempted_at + timedelta(seconds=delay))
