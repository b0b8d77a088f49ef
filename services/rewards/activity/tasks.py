"""The birthday job: daily, in UTC, through a large brand in runs (`rewards.job_runs`). Run it by
hand with `enqueue(redis, "rewards.award_birthdays")`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.kernel.jobs import Continue, JobSpec, Schedule
from services.rewards import job_runs
from services.rewards.activity import service


async def award_birthdays(
    session: AsyncSession, now: datetime | None = None, resume: dict[str, Any] | None = None
) -> int | Continue:
    """Members this run paid."""
    moment = now or utcnow()
    limit = job_runs.limit_from(resume)
    paid = await service.award_birthdays(
        session, now=moment, batch_size=job_runs.batch_size(service.BATCH_SIZE), limit=limit
    )
    return job_runs.done_or_continue(moment, limit, paid)


AWARD_BIRTHDAYS = JobSpec(
    "rewards.award_birthdays",
    award_birthdays,
    cron=Schedule(hour=6, minute=10),
    timeout_seconds=3600,
)

ACTIVITY_JOBS = (AWARD_BIRTHDAYS,)
