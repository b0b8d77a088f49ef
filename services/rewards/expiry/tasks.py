"""The expiry jobs: daily, in UTC, the reminders after the expiry (so nothing due is announced).
Each works through a large brand in runs (`rewards.job_runs`).

Run one by hand with `enqueue(redis, "rewards.expire_points", now=<aware datetime>)`.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.jobs import Continue, JobSpec, Schedule
from services.rewards import job_runs
from services.rewards.expiry import service


async def expire_points(
    session: AsyncSession, now: datetime | None = None, resume: dict[str, Any] | None = None
) -> int | Continue:
    """Ledger entries written by this run."""

    async def work(*, now: datetime, batch_size: int, limit: job_runs.RunLimit) -> int:
        run = await service.expire_points(session, now=now, batch_size=batch_size, limit=limit)
        return run.entries

    return await job_runs.one_run(work, now=now, resume=resume, largest_batch=service.BATCH_SIZE)


async def remind_expiring_points(
    session: AsyncSession, now: datetime | None = None, resume: dict[str, Any] | None = None
) -> int | Continue:
    """Reminders sent by this run."""
    work = partial(service.remind_expiring_points, session)
    return await job_runs.one_run(work, now=now, resume=resume, largest_batch=service.BATCH_SIZE)


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
