"""Serving's scheduled work: counting what was shown, for exploration's posteriors."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from recommender.serving.service import refresh_item_stats
from services.kernel.clock import utcnow
from services.kernel.jobs import JobSpec, Schedule

WINDOW = timedelta(minutes=1)


async def count_shown(session: AsyncSession, now: datetime | None = None) -> int:
    """Adds the exposures of the minute before last to the items' shown counts. Each scheduled
    run takes its own minute (arq runs a cron job once per schedule), so windows neither overlap
    nor leave gaps; a minute whose run was missed (no worker up) is not counted."""
    minute = (now or utcnow()).replace(second=0, microsecond=0)
    counted = await refresh_item_stats(session, minute - 2 * WINDOW, minute - WINDOW)
    return counted.exposures


SERVING_JOBS: tuple[JobSpec, ...] = (
    JobSpec("recommender.count_shown", count_shown, cron=Schedule(second=30), timeout_seconds=55),
)
