"""Scheduled work of the perks module: the daily birthday gifts, through a large brand in runs
(`rewards.job_runs`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.kernel.jobs import Continue, JobSpec, Schedule
from services.rewards import job_runs
from services.rewards.perks import service


async def grant_birthday_gifts(
    session: AsyncSession, now: datetime | None = None, resume: dict[str, Any] | None = None
) -> int | Continue:
    """Grants the birthday perk to members whose birthday month it is (see `service`): how
    many this run granted."""
    moment = now or utcnow()
    limit = job_runs.limit_from(resume)
    granted = await service.grant_birthday_gifts(
        session, moment, batch_size=job_runs.batch_size(service.BIRTHDAY_BATCH_SIZE), limit=limit
    )
    return job_runs.done_or_continue(moment, limit, granted)


BIRTHDAY_GIFTS_JOB = JobSpec(
    "rewards.grant_birthday_gifts",
    grant_birthday_gifts,
    cron=Schedule(hour=6, minute=5),
    timeout_seconds=1_800,
)
