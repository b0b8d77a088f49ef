"""Export jobs: one export on demand, the scheduler of scheduled exports (every minute), and the
sweep that ends on-demand exports whose job is gone (every ten minutes).

Jobs get the process's settings (`KINFOLK_*`), as the worker was started with: where files go
and the S3 endpoint are the worker's business.
"""

from __future__ import annotations

import uuid

from arq import Retry
from arq.constants import in_progress_key_prefix, job_key_prefix
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clients import Peers
from services.kernel.jobs import JobSpec, Schedule
from services.kernel.settings import get_settings
from services.marketing.exports import service
from services.marketing.segments.affinity import RecommenderAudiences

EXPORT_JOB_NAME = "marketing.export"
SCHEDULES_JOB_NAME = "marketing.run_export_schedules"
ABANDONED_JOB_NAME = "marketing.fail_abandoned_exports"

# The request that queued an export commits just after queueing it: a worker that is quicker
# than that commit finds no export yet and tries again shortly.
NOT_YET_COMMITTED_RETRY_SECONDS = 2


def export_job_id(export_id: uuid.UUID) -> str:
    return f"{EXPORT_JOB_NAME}:{export_id}"


async def run_export(session: AsyncSession, export_id: str, *, peers: Peers) -> str:
    export = await service.run_export(
        session, uuid.UUID(export_id), get_settings(), RecommenderAudiences.for_jobs(peers)
    )
    if export is None:
        raise Retry(defer=NOT_YET_COMMITTED_RETRY_SECONDS)
    return export.status.value


async def fail_abandoned_exports(session: AsyncSession, *, redis: Redis) -> int:
    async def job_alive(export_id: uuid.UUID) -> bool:
        # arq keeps a job's key while it is queued or running (a worker that dies leaves it,
        # and another takes the job again), and marks it in progress while it runs.
        job_id = export_job_id(export_id)
        return bool(
            await redis.exists(f"{job_key_prefix}{job_id}", f"{in_progress_key_prefix}{job_id}")
        )

    return len(await service.fail_abandoned(session, job_alive))


async def run_export_schedules(session: AsyncSession, *, peers: Peers) -> int:
    affinity = RecommenderAudiences.for_jobs(peers)
    return len(await service.run_due_schedules(session, get_settings(), affinity=affinity))


EXPORT_JOB = JobSpec(EXPORT_JOB_NAME, run_export, timeout_seconds=3_600, needs_peers=True)
ABANDONED_JOB = JobSpec(
    ABANDONED_JOB_NAME,
    fail_abandoned_exports,
    cron=Schedule(minute=frozenset(range(3, 60, 10))),
    needs_redis=True,
)
SCHEDULES_JOB = JobSpec(
    SCHEDULES_JOB_NAME,
    run_export_schedules,
    cron=Schedule(second=0),
    timeout_seconds=3_600,
    needs_peers=True,
)
EXPORT_JOBS: tuple[JobSpec, ...] = (EXPORT_JOB, SCHEDULES_JOB, ABANDONED_JOB)
