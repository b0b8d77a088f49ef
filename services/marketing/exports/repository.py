"""Exports' and schedules' SQL."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.pagination import PageRequest, keyset
from services.marketing.models import Export, ExportSchedule, ExportStatus, SegmentVersion


class ExportRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # Exports ----------------------------------------------------------------------------------

    async def add(self, export: Export) -> Export:
        self.session.add(export)
        await self.session.flush()
        return export

    async def get(self, brand_id: uuid.UUID, export_id: uuid.UUID) -> Export | None:
        return await self.session.scalar(
            select(Export).where(Export.brand_id == brand_id, Export.id == export_id)
        )

    async def get_any(self, export_id: uuid.UUID) -> Export | None:
        """For the job, which has only the id (it re-reads: the row may have changed since)."""
        return await self.session.scalar(
            select(Export).where(Export.id == export_id).execution_options(populate_existing=True)
        )

    async def page(self, brand_id: uuid.UUID, page: PageRequest) -> Sequence[Export]:
        statement = select(Export).where(Export.brand_id == brand_id)
        return (
            await self.session.scalars(keyset(statement, Export.id, page, newest_first=True))
        ).all()

    async def finish(self, export_id: uuid.UUID, **values: Any) -> Export:
        """The export's outcome, written in one statement at the end of the job."""
        await self.session.execute(update(Export).where(Export.id == export_id).values(**values))
        found = await self.get_any(export_id)
        assert found is not None
        return found

    async def unfinished_on_demand(self, before: datetime, limit: int) -> Sequence[Export]:
        """On-demand exports queued or running since before `before`, oldest first. (A
        scheduled run's export is written with its outcome, so it is never left unfinished.)"""
        statement = (
            select(Export)
            .where(
                Export.schedule_id.is_(None),
                Export.status.in_((ExportStatus.QUEUED, ExportStatus.RUNNING)),
                func.coalesce(Export.started_at, Export.created_at) < before,
            )
            .order_by(Export.created_at)
            .limit(limit)
        )
        return (await self.session.scalars(statement)).all()

    async def count(self, ids: Select[tuple[uuid.UUID]]) -> int:
        total = await self.session.scalar(select(func.count()).select_from(ids.subquery()))
        return int(total or 0)

    async def version_exists(self, segment_id: uuid.UUID, version: int) -> bool:
        found = await self.session.scalar(
            select(
                exists().where(
                    SegmentVersion.segment_id == segment_id, SegmentVersion.version == version
                )
            )
        )
        return bool(found)

    # Schedules --------------------------------------------------------------------------------

    async def add_schedule(self, schedule: ExportSchedule) -> ExportSchedule:
        self.session.add(schedule)
        await self.session.flush()
        return schedule

    async def get_schedule(
        self, brand_id: uuid.UUID, schedule_id: uuid.UUID
    ) -> ExportSchedule | None:
        return await self.session.scalar(
            select(ExportSchedule).where(
                ExportSchedule.brand_id == brand_id, ExportSchedule.id == schedule_id
            )
        )

    async def get_schedule_any(self, schedule_id: uuid.UUID) -> ExportSchedule | None:
        return await self.session.scalar(
            select(ExportSchedule).where(ExportSchedule.id == schedule_id)
        )

    async def schedules_page(
        self, brand_id: uuid.UUID, page: PageRequest
    ) -> Sequence[ExportSchedule]:
        statement = select(ExportSchedule).where(ExportSchedule.brand_id == brand_id)
        return (await self.session.scalars(keyset(statement, ExportSchedule.id, page))).all()

    async def delete_schedule(self, schedule: ExportSchedule) -> None:
        await self.session.delete(schedule)
        await self.session.flush()

    async def next_due(self, now: datetime) -> ExportSchedule | None:
        """The most overdue enabled schedule, locked; schedules another run holds are skipped,
        so two schedulers never run the same one."""
        return await self.session.scalar(
            select(ExportSchedule)
            .where(ExportSchedule.enabled.is_(True), ExportSchedule.next_run_at <= now)
            .order_by(ExportSchedule.next_run_at, ExportSchedule.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
