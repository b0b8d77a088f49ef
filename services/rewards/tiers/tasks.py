"""Scheduled work of tiers: the daily review that applies downgrade rules, through a large
brand in runs (`rewards.job_runs`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.kernel.jobs import Continue, JobSpec, Schedule
from services.rewards import job_runs
from services.rewards.tiers import service
from services.rewards.tiers.service import REVIEW_HOUR, REVIEW_MINUTE


async def review_tiers(
    session: AsyncSession, now: datetime | None = None, resume: dict[str, Any] | None = None
) -> int | Continue:
    """Members moved down by this run."""
    moment = now or utcnow()
    limit = job_runs.limit_from(resume)
    moved = await service.review_tiers(
        session, moment, batch_size=job_runs.batch_size(service.REVIEW_BATCH), limit=limit
    )
    return job_runs.done_or_continue(moment, limit, moved)


REVIEW_TIERS = JobSpec(
    "rewards.review_tiers",
    review_tiers,
    cron=Schedule(hour=REVIEW_HOUR, minute=REVIEW_MINUTE),
    timeout_seconds=3600,
)
