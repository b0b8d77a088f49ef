"""Scheduled work of drops: draw every drop whose entry window has closed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.jobs import JobSpec, Schedule
from services.rewards.drops import service


async def draw_due_drops(session: AsyncSession, now: datetime | None = None) -> int:
    """Draws the drops that closed by `now` (see `service` for the procedure)."""
    return await service.draw_due(session, now)


# Every minute: a drop is drawn within a minute of its `closes_at`.
DRAW_DROPS_JOB = JobSpec("rewards.draw_due_drops", draw_due_drops, cron=Schedule(second=0))
