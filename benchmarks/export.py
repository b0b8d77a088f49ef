"""Exporting half of a 1,000,000-member brand as CSV: rows per second and the job process's
peak memory, next to PostgreSQL's own `COPY (SELECT ...) TO STDOUT` of the same rows.

The brand is `benchmarks.marketing_world` (the simulator's members and a year of their orders
in marketing's store). The segment is an email segment (the consent filter is part of it) of
buyers with at least K orders, K picked so that it holds about half the brand; its first
version is materialised beforehand, as its schedule would have. Each run is the real export
job (`exports.service.run_export`, as the worker runs it: materialise a fresh version, count,
COPY to the file) in a fresh process that imports every service like a worker, so the peak
memory measured is the job's process's own. The anchor is the same SELECT, in the same run,
through `COPY ... TO STDOUT` into a client that throws the bytes away.

Targets (issue #8): at least half of COPY's rows per second; peak memory under 300 MB.
Run: python -m benchmarks.export   (KINFOLK_BENCH_MEMBERS=50000 for a quick check)
"""

from __future__ import annotations

import asyncio
import multiprocessing
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

from benchmarks._harness import peak_rss_mb, report, scratch_database, servers
from benchmarks.marketing_world import MEMBERS, World, build
from services.kernel.auth import Scope, StaffPrincipal
from services.kernel.db import Database, driver_connection, driver_sql
from services.kernel.settings import Settings
from services.marketing.exports import formats, service
from services.marketing.exports.schemas import ExportCreate
from services.marketing.models import MemberView, RefreshEvery, Segment, SegmentPurpose
from services.marketing.segments import repository as segment_rows
from services.marketing.segments import service as segments

RUNS = 3
FIELDS = [
    "external_id",
    "email",
    "display_name",
    "locale",
    "tier",
    "points_available",
    "spend_365d_minor",
    "order_count",
    "last_purchase_at",
    "interests",
]
TARGET_RATIO = 0.5
TARGET_MB = 300


async def _segment(url: str, world: World) -> tuple[uuid.UUID, int]:
    """An email segment of about half the brand; its first version materialised."""
    database = Database(url)
    async with database.unit_of_work() as session:
        consented = MemberView.consents.contains(["email_marketing"])
        best, size = 1, 0
        for k in range(1, 8):
            count = await session.scalar(
                select(func.count()).where(
                    MemberView.brand_id == world.brand_id, consented, MemberView.order_count >= k
                )
            )
            if abs((count or 0) - MEMBERS / 2) < abs(size - MEMBERS / 2):
                best, size = k, int(count or 0)
        segment = Segment(
            id=uuid.uuid4(),
            brand_id=world.brand_id,
            name=f"Email buyers, {best}+ orders",
            rule={"field": "order_count", "op": "gte", "value": best},
            uses=[],
            purpose=SegmentPurpose.EMAIL_MARKETING,
            refresh=RefreshEvery.DAILY,
            version=0,
        )
        session.add(segment)
    started = time.perf_counter()
    async with database.unit_of_work() as session:
        version = await segments.materialise(
            session, await segments.get_segment(session, world.brand_id, segment.id)
        )
    async with database.unit_of_work() as session:
        # What autovacuum does after a table grows: the planner's statistics of the stays.
        await session.execute(text("ANALYZE marketing.segment_memberships"))
    print(
        f"segment: order_count >= {best} with email consent, {version.size:,} members "
        f"({version.size / MEMBERS:.0%}); version 1 in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    await database.dispose()
    return segment.id, version.size


def _export_in_child(url: str, export_id: str, data_dir: str, out: Any) -> None:
    """The export job alone in a fresh process that has every service loaded, as a worker."""
    import services.registry  # noqa: F401  (a worker's imports: its baseline memory)

    baseline = peak_rss_mb()

    async def run() -> dict[str, Any]:
        from structlog.testing import capture_logs

        database = Database(url)
        settings = Settings(data_dir=Path(data_dir))
        started = time.perf_counter()
        with capture_logs() as logs:
            async with database.unit_of_work() as session:
                export = await service.run_export(session, uuid.UUID(export_id), settings)
        seconds = time.perf_counter() - started
        await database.dispose()
        assert export is not None
        assert export.status.value == "completed", export.error
        phases = next(e for e in logs if e["event"] == "marketing.export_completed")
        return {
            "seconds": seconds,
            "rows": export.rows_done,
            "bytes": export.bytes,
            "version": export.version,
            "materialise_seconds": phases["materialise_seconds"],
            "write_seconds": phases["write_seconds"],
        }

    result = asyncio.run(run())
    result["baseline_rss_mb"] = baseline
    result["peak_rss_mb"] = peak_rss_mb()
    out.put(result)


async def _queue_export(url: str, world: World, segment_id: uuid.UUID) -> str:
    database = Database(url)
    staff = StaffPrincipal(world.brand_id, uuid.uuid4(), frozenset({Scope.ADMIN.value}))
    async with database.unit_of_work() as session:
        export = await service.create_export(
            session, staff, ExportCreate(segment_id=segment_id, fields=FIELDS)
        )
    await database.dispose()
    return str(export.id)


async def _copy_anchor(url: str, world: World, segment_id: uuid.UUID, version: int) -> float:
    """Seconds for PostgreSQL's COPY of the export's own SELECT, bytes thrown away."""
    database = Database(url)
    statement = formats.file_rows(
        world.brand_id,
        ["member_id", *FIELDS],
        formats.Shape.TEXT,
        "consent:email_marketing",
        members=segment_rows.version_members(segment_id, version),
    )
    async with database.unit_of_work() as session:
        sql, args = driver_sql(session, statement)
        connection = await driver_connection(session)

        async def discard(chunk: bytes) -> None:
            del chunk

        started = time.perf_counter()
        await connection.copy_from_query(sql, *args, output=discard, format="csv", header=True)
        seconds = time.perf_counter() - started
    await database.dispose()
    return seconds


async def bench(server_url: str) -> dict[str, Any]:
    async with scratch_database(server_url, "kinfolk_bench_export") as url:
        world = await build(url)
        segment_id, size = await _segment(url, world)
        data_dir = tempfile.mkdtemp(prefix="kinfolk-bench-export-")
        runs: list[dict[str, Any]] = []
        anchors: list[float] = []
        try:
            for run in range(RUNS):
                export_id = await _queue_export(url, world, segment_id)
                context = multiprocessing.get_context("spawn")
                queue: Any = context.Queue()
                child = context.Process(
                    target=_export_in_child, args=(url, export_id, data_dir, queue)
                )
                child.start()
                result = queue.get()
                child.join()
                runs.append(result)
                anchor = await _copy_anchor(url, world, segment_id, result["version"])
                anchors.append(anchor)
                print(
                    f"run {run + 1}: {result['rows']:,} rows, {result['bytes'] / 1e6:,.0f} MB "
                    f"in {result['seconds']:.2f} s (materialise {result['materialise_seconds']:.2f}"
                    f" s, writing {result['write_seconds']:.2f} s), peak memory "
                    f"{result['peak_rss_mb']:.0f} MB (imports {result['baseline_rss_mb']:.0f} MB)"
                    f"; COPY of the same rows {anchor:.2f} s",
                    flush=True,
                )
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
    return {"world": world, "size": size, "runs": runs, "anchors": anchors}


def main() -> None:
    with servers() as urls:
        result = asyncio.run(bench(urls.database_url))
    runs = result["runs"]
    rows = runs[0]["rows"]
    job_seconds = statistics.median(r["seconds"] for r in runs)
    write_seconds = statistics.median(r["write_seconds"] for r in runs)
    anchor_seconds = statistics.median(result["anchors"])
    peak = max(r["peak_rss_mb"] for r in runs)
    report(
        "export",
        value=rows / job_seconds,
        unit=f"rows per second, the whole export job ({rows:,} of {MEMBERS:,} members, "
        f"{len(FIELDS) + 2} columns, CSV), median of {RUNS}",
        anchor="PostgreSQL COPY (SELECT ...) TO STDOUT of the same rows",
        anchor_value=rows / anchor_seconds,
        target=f"ratio >= {TARGET_RATIO}, peak memory < {TARGET_MB} MB",
        peak_rss_mb=round(peak),
        baseline_rss_mb=round(max(r["baseline_rss_mb"] for r in runs)),
        write_rows_per_second=round(rows / write_seconds),
        write_ratio=round(anchor_seconds / write_seconds, 4),
        materialise_seconds=round(statistics.median(r["materialise_seconds"] for r in runs), 2),
        bytes=runs[0]["bytes"],
        journal_rows=result["world"].journal_rows,
    )


if __name__ == "__main__":
    main()
