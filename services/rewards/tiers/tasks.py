"""Scheduled work of tiers: the daily review that applies downgrade rules, through a large
brand in runs (`rewards.job_runs`)."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.jobs import Continue, JobSpec, Schedule
from services.rewards import job_runs
from services.rewards.tiers import service
from services.rewards.tiers.service import REVIEW_HOUR, REVIEW_MINUTE


async def review_tiers(
    session: AsyncSession, now: datetime | None = None, resume: dict[str, Any] | None = None
) -> int | Continue:
    """Members moved down by this run."""
    work = partial(service.review_tiers, session)
    return await job_runs.one_run(work, now=now, resume=resume, largest_batch=service.REVIEW_BATCH)


REVIEW_TIERS = JobSpec(
    "rewards.review_tiers",
    review_tiers,
    cron=Schedule(hour=REVIEW_HOUR, minute=REVIEW_MINUTE),
    timeout_seconds=3600,
)
