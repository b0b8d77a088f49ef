"""The birthday job: daily, in UTC. Run by hand with `enqueue(redis, "rewards.award_birthdays")`."""

from __future__ import annotations

from services.kernel.jobs import JobSpec, Schedule
from services.rewards.activity.service import award_birthdays

AWARD_BIRTHDAYS = JobSpec(
    "rewards.award_birthdays",
    award_birthdays,
    cron=Schedule(hour=6, minute=10),
    timeout_seconds=3600,
)

ACTIVITY_JOBS = (AWARD_BIRTHDAYS,)
