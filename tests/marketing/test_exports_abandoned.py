"""On-demand exports whose job is gone (its outcome rolled back, or the queue lost it) are ended
as failed by a sweep, instead of showing `running` forever; an export whose job is still queued
or running, a recent one, a finished one and a scheduled run's are left alone."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.marketing.exports import service, tasks
from services.marketing.exports.repository import ExportRepository
from services.marketing.models import Export, ExportFormat, ExportMode, ExportStatus
from tests.conftest import BrandFixture
from tests.marketing.test_exports import add_segment


async def test_exports_whose_job_is_gone_are_failed_and_the_rest_left_alone(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, redis: Redis
) -> None:
    segment = await add_segment(session, brand.id)
    now = utcnow()
    repository = ExportRepository(session)

    async def export(
        status: ExportStatus, age: timedelta = timedelta(minutes=30), *, scheduled: bool = False
    ) -> uuid.UUID:
        created = now - age
        row = await repository.add(
            Export(
                id=uuid.uuid4(),
                brand_id=brand.id,
                segment_id=segment.id,
                schedule_id=uuid.uuid4() if scheduled else None,
                fields=["email"],
                format=ExportFormat.CSV,
                gzip=False,
                mode=ExportMode.FULL,
                status=status,
                rows_done=7,
                created_at=created,
                started_at=created if status is ExportStatus.RUNNING else None,
            )
        )
        return row.id

    lost_running = await export(ExportStatus.RUNNING)
    lost_queued = await export(ExportStatus.QUEUED)
    queued_behind_others = await export(ExportStatus.QUEUED)
    still_running = await export(ExportStatus.RUNNING)
    recent = await export(ExportStatus.RUNNING, timedelta(minutes=2))
    finished = await export(ExportStatus.COMPLETED)
    scheduled = await export(ExportStatus.RUNNING, scheduled=True)
    await redis.set(f"arq:job:{tasks.export_job_id(queued_behind_others)}", b"job")
    await redis.set(f"arq:in-progress:{tasks.export_job_id(still_running)}", b"1")

    assert await tasks.fail_abandoned_exports(session, redis=redis) == 2
    statuses = {
        export_id: (await repository.get_any(export_id))
        for export_id in (
            lost_running,
            lost_queued,
            queued_behind_others,
            still_running,
            recent,
            finished,
            scheduled,
        )
    }
    assert {i: e.status for i, e in statuses.items() if e is not None} == {
        lost_running: ExportStatus.FAILED,
        lost_queued: ExportStatus.FAILED,
        queued_behind_others: ExportStatus.QUEUED,
        still_running: ExportStatus.RUNNING,
        recent: ExportStatus.RUNNING,
        finished: ExportStatus.COMPLETED,
        scheduled: ExportStatus.RUNNING,
    }
    await session.commit()
    shown = await client.get(f"/marketing/v1/exports/{lost_running}", headers=brand.headers)
    assert shown.status_code == 200, shown.text
    assert (shown.json()["status"], shown.json()["error"], shown.json()["download_url"]) == (
        "failed",
        service.ABANDONED_ERROR,
        None,
    )
    # A second sweep finds nothing more to end.
    assert await tasks.fail_abandoned_exports(session, redis=redis) == 0
    assert tasks.ABANDONED_JOB.cron is not None
    assert tasks.ABANDONED_JOB in tasks.EXPORT_JOBS
