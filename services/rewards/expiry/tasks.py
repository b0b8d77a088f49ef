"""The expiry jobs: daily, in UTC, the reminders after the expiry (so nothing due is announced).

Run one by hand with `enqueue(redis, "rewards.expire_points", now=<aware datetime>)`.
"""

from __future__ import annotations

from services.kernel.jobs import JobSpec, Schedule
from services.rewards.expiry.service import expire_points, remind_expiring_points

EXPIRE_POINTS = JobSpec(
    "rewards.expire_points", expire_points, cron=Schedule(hour=2, minute=5), timeout_seconds=3600
)
REMIND_EXPIRING_POINTS = JobSpec(
    "rewards.remind_expiring_points",
    remind_expiring_points,
    cron=Schedule(hour=2, minute=35),
    timeout_seconds=3600,
)

EXPIRY_JOBS = (EXPIRE_POINTS, REMIND_EXPIRING_POINTS)
