"""Progress shows while the export job's transaction is still open: the job writes it through
a connection of its own. This test commits (another connection must see it), on its own brand,
removed at the end.

The job is held at a known point without touching its code: another transaction locks the
outbox, where the job writes `export.completed` after the file is done and before it commits.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy import delete, select, text

from services.kernel.db import Database
from services.kernel.settings import Settings
from services.marketing.exports import service
from services.marketing.exports.schemas import ExportCreate
from services.marketing.models import OUTBOX, Export, SegmentMembership
from services.marketing.segments import service as segments
from tests.conftest import purge_brand
from tests.marketing.test_exports import add_segment, small_brand, staff


async def _export_row(database: Database, export_id: uuid.UUID) -> Any:
    async with database.engine.connect() as connection:
        return (
            await connection.execute(select(Export.__table__).where(Export.id == export_id))
        ).one()


async def test_rows_done_and_total_show_before_the_job_commits(
    engine_database: Database, base_settings: Settings
) -> None:
    brand_id = uuid.uuid4()
    async with engine_database.unit_of_work() as session:
        await small_brand(session, brand_id)
        segment = await add_segment(session, brand_id)
        segment_id = segment.id
    try:
        # The segment's first version is made beforehand (as its schedule would), so the
        # export's own version changes nobody and writes no segment events.
        async with engine_database.unit_of_work() as session:
            await segments.materialise(
                session, await segments.get_segment(session, brand_id, segment_id)
            )
        async with engine_database.unit_of_work() as session:
            export = await service.create_export(
                session, staff(brand_id), ExportCreate(segment_id=segment_id, fields=["email"])
            )
            export_id = export.id

        async def job() -> str:
            async with engine_database.unit_of_work() as session:
                finished = await service.run_export(session, export_id, base_settings)
                assert finished is not None
                return finished.status.value

        async with engine_database.engine.connect() as blocker:
            hold = await blocker.begin()
            await blocker.execute(text("LOCK TABLE marketing.outbox IN ACCESS EXCLUSIVE MODE"))
            running = asyncio.create_task(job())
            seen = await _export_row(engine_database, export_id)
            for _ in range(400):  # waits for the job to get there; not a measure of its speed
                if seen.rows_done == 3 or running.done():
                    break
                await asyncio.sleep(0.05)
                seen = await _export_row(engine_database, export_id)
            assert not running.done()
            assert (seen.status, seen.rows_done, seen.rows_total) == ("running", 3, 3)
            assert seen.started_at is not None
            assert (seen.completed_at, seen.version, seen.location) == (None, None, None)
            await hold.rollback()
        assert await running == "completed"
        done = await _export_row(engine_database, export_id)
        assert (done.status, done.rows_done, done.rows_total, done.version) == (
            "completed",
            3,
            3,
            2,
        )
        assert done.location is not None
        assert done.completed_at is not None
    finally:
        await purge_brand(engine_database, brand_id)
        async with engine_database.unit_of_work() as session:
            await session.execute(
                delete(SegmentMembership).where(SegmentMembership.segment_id == segment_id)
            )
            await session.execute(delete(OUTBOX.table).where(OUTBOX.table.c.brand_id == brand_id))
