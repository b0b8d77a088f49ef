"""Scheduled work of the perks module: the daily birthday gifts, through a large brand in runs
(`rewards.job_runs`)."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.jobs import Continue, JobSpec, Schedule
from services.rewards import job_runs
from services.rewards.perks import service


async def grant_birthday_gifts(
    session: AsyncSession, now: datetime | None = None, resume: dict[str, Any] | None = None
) -> int | Continue:
    """Grants the birthday perk to members whose birthday month it is (see `service`): how
    many this run granted."""
    work = partial(service.grant_birthday_gifts, session)
    return await job_runs.one_run(
        work, now=now, resume=resume, largest_batch=service.BIRTHDAY_BATCH_SIZE
    )


BIRTHDAY_GIFTS_JOB = JobSpec(
    "rewards.grant_birthday_gifts",
    grant_birthday_gifts,
    cron=Schedule(hour=6, minute=5),
    timeout_seconds=1_800,
)
