"""Scheduled work of the perks module: the daily birthday gifts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.jobs import JobSpec, Schedule
from services.rewards.perks import service


async def grant_birthday_gifts(session: AsyncSession, now: datetime | None = None) -> int:
    """Grants the birthday perk to members whose birthday month it is (see `service`)."""
    return await service.grant_birthday_gifts(session, now)


BIRTHDAY_GIFTS_JOB = JobSpec(
    "rewards.grant_birthday_gifts",
    grant_birthday_gifts,
    cron=Schedule(hour=6, minute=5),
    timeout_seconds=1_800,
)
