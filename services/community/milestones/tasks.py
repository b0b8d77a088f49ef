"""Scheduled work of milestones: the daily join anniversaries."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.milestones import service
from services.kernel.jobs import JobSpec, Schedule


async def celebrate_anniversaries(session: AsyncSession, now: datetime | None = None) -> int:
    """Records the join anniversaries due today (or missed lately; see `service`)."""
    return await service.celebrate_anniversaries(session, now)


ANNIVERSARIES_JOB = JobSpec(
    "community.celebrate_anniversaries",
    celebrate_anniversaries,
    cron=Schedule(hour=7, minute=13),
    timeout_seconds=1_800,
)
