"""Segments' scheduled work: materialise the segments whose hourly or daily refresh is due."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clients import Peers
from services.kernel.jobs import JobSpec, Schedule
from services.marketing.segments import service
from services.marketing.segments.affinity import RecommenderAudiences

REFRESH_JOB_NAME = "marketing.refresh_segments"


async def refresh_segments(
    session: AsyncSession, now: datetime | None = None, *, peers: Peers
) -> int:
    return await service.refresh_due(session, now, affinity=RecommenderAudiences.for_jobs(peers))


# Every ten minutes: an hourly segment is at most that late; a run stops taking segments after
# its budget (well inside the timeout) and the next run takes the rest.
REFRESH_JOB = JobSpec(
    name=REFRESH_JOB_NAME,
    function=refresh_segments,
    cron=Schedule(minute=frozenset(range(0, 60, 10))),
    timeout_seconds=600,
    needs_peers=True,
)
