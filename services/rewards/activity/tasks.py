"""The birthday job: daily, in UTC, through a large brand in runs (`rewards.job_runs`). Run it by
hand with `enqueue(redis, "rewards.award_birthdays")`."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.jobs import Continue, JobSpec, Schedule
from services.rewards import job_runs
from services.rewards.activity import service


async def award_birthdays(
    session: AsyncSession, now: datetime | None = None, resume: dict[str, Any] | None = None
) -> int | Continue:
    """Members this run paid."""
    work = partial(service.award_birthdays, session)
    return await job_runs.one_run(work, now=now, resume=resume, largest_batch=service.BATCH_SIZE)


AWARD_BIRTHDAYS = JobSpec(
    "rewards.award_birthdays",
    award_birthdays,
    cron=Schedule(hour=6, minute=10),
    timeout_seconds=3600,
)

ACTIVITY_JOBS = (AWARD_BIRTHDAYS,)
