"""Exports' rules: what may be exported by whom, running an export, and scheduled exports.

An export materialises a fresh version of its segment (so `segment.entered` / `segment.exited`
go out and the file is exactly that version), then streams the version's rows from PostgreSQL
to the file. Its outcome (the version, the finished export and `export.completed`) commits with
the job, or not at all; a failure is recorded on the export instead of leaving it `running`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.auth import StaffPrincipal
from services.kernel.clock import utcnow
from services.kernel.ids import new_id
from services.kernel.pagination import PageRequest
from services.kernel.settings import Settings
from services.marketing.events import ExportCompleted, ExportCompletedData
from services.marketing.exports import formats, storage, writers
from services.marketing.exports.errors import (
    DestinationNotAllowed,
    DuplicateField,
    ExportNotFound,
    ExportNotReady,
    FieldNotReadable,
    LawfulBasisNotForDelta,
    ScheduleNotFound,
    SinceVersionNotForFull,
    SinceVersionRequired,
    UnknownField,
    UnknownVersion,
)
from services.marketing.exports.progress import Progress
from services.marketing.exports.repository import ExportRepository
from services.marketing.exports.schemas import ExportCreate, ScheduleCreate, ScheduleUpdate
from services.marketing.fields import FIELDS, unreadable
from services.marketing.models import (
    OUTBOX,
    Export,
    ExportFormat,
    ExportMode,
    ExportSchedule,
    ExportStatus,
    RefreshEvery,
    Segment,
    SegmentPurpose,
)
from services.marketing.segments import repository as segment_rows
from services.marketing.segments import service as segments
from services.marketing.segments.affinity import AffinityFor, AffinitySource

log = structlog.get_logger(__name__)

EVERY: dict[RefreshEvery, timedelta] = {
    RefreshEvery.HOURLY: timedelta(hours=1),
    RefreshEvery.DAILY: timedelta(days=1),
}

# Due schedules one scheduler run takes on; the rest wait for the next minute's run.
SCHEDULES_PER_RUN = 20

_ERROR_CHARS = 2_000


# Checks ---------------------------------------------------------------------------------------


def file_fields(staff: StaffPrincipal, fields: list[str]) -> list[str]:
    """The file's fields: `member_id` first, then the others as asked. Unknown and repeated
    names are 422s, personal fields without `members:read` a 403, each with its path."""
    for index, name in enumerate(fields):
        if name not in FIELDS:
            raise UnknownField(f"fields[{index}]", f"No member-360 field {name!r}.")
        if name in fields[:index]:
            raise DuplicateField(f"fields[{index}]", f"{name!r} is already in the list.")
    for name in unreadable(staff, fields):
        raise FieldNotReadable(
            f"fields[{fields.index(name)}]",
            f"{name!r} is personal data: the key needs the members:read scope too.",
        )
    return [formats.MEMBER_ID, *(name for name in fields if name != formats.MEMBER_ID)]


def check_mode(mode: ExportMode, lawful_basis: str | None) -> None:
    if mode is ExportMode.DELTA and lawful_basis is not None:
        raise LawfulBasisNotForDelta(
            "lawful_basis",
            "A lawful basis exports the rule's members without the consent filter, in full; "
            "deltas follow the segment's consented versions.",
        )


async def check_since(
    repository: ExportRepository, segment: Segment, mode: ExportMode, since: int | None
) -> None:
    if mode is ExportMode.FULL:
        if since is not None:
            raise SinceVersionNotForFull("since_version", "Only a delta starts from a version.")
        return
    if since is None:
        raise SinceVersionRequired(
            "since_version", "A delta needs the version to start from (0: from the start)."
        )
    if since != 0 and not await repository.version_exists(segment.id, since):
        raise UnknownVersion(
            "since_version",
            f"The segment has no version {since}; its latest is {segment.version}.",
        )


def check_destination(settings: Settings, destination: str, brand_id: uuid.UUID) -> str:
    """A scheduled export's destination, normalised: a folder under the folders root, or an
    S3 location the server allows for the brand."""
    try:
        return storage.check_uri(
            destination,
            storage.folders_root(settings),
            buckets=storage.s3_roots(settings, brand_id),
        )
    except storage.BadDestination as exc:
        raise DestinationNotAllowed("destination", str(exc)) from exc


def basis_of(segment: Segment, lawful_basis: str | None) -> str:
    """What the file's `lawful_basis` column says."""
    if lawful_basis is not None:
        return lawful_basis
    if segment.purpose is SegmentPurpose.ANALYTICS:
        return "analytics"
    return f"consent:{segment.purpose.value}"


# On-demand exports ------------------------------------------------------------------------------


async def create_export(
    session: AsyncSession, staff: StaffPrincipal, payload: ExportCreate
) -> Export:
    """A queued export, after every check: nothing is written when one fails."""
    segment = await segments.get_segment(session, staff.brand_id, payload.segment_id)
    fields = file_fields(staff, payload.fields)
    check_mode(payload.mode, payload.lawful_basis)
    repository = ExportRepository(session)
    await check_since(repository, segment, payload.mode, payload.since_version)
    return await repository.add(
        Export(
            id=new_id(),
            brand_id=staff.brand_id,
            segment_id=segment.id,
            schedule_id=None,
            fields=fields,
            format=payload.format,
            gzip=payload.gzip,
            mode=payload.mode,
            since_version=payload.since_version,
            lawful_basis=payload.lawful_basis,
            status=ExportStatus.QUEUED,
            rows_done=0,
            created_at=utcnow(),
        )
    )


async def get_export(session: AsyncSession, brand_id: uuid.UUID, export_id: uuid.UUID) -> Export:
    export = await ExportRepository(session).get(brand_id, export_id)
    if export is None:
        raise ExportNotFound(export_id)
    return export


async def get_ready_export(session: AsyncSession, export_id: uuid.UUID) -> Export:
    """For a signed download link: the link names the export, whatever the brand."""
    export = await ExportRepository(session).get_any(export_id)
    if export is None or export.status is not ExportStatus.COMPLETED or export.location is None:
        raise ExportNotReady()
    return export


async def list_exports(
    session: AsyncSession, brand_id: uuid.UUID, page: PageRequest
) -> list[Export]:
    return list(await ExportRepository(session).page(brand_id, page))


# Running an export --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    version: int
    rows: int
    bytes: int
    location: str
    materialise_seconds: float
    write_seconds: float


async def run_export(
    session: AsyncSession,
    export_id: uuid.UUID,
    settings: Settings,
    affinity: AffinityFor | None = None,
) -> Export | None:
    """Runs a queued export (again, if a worker died mid-way); None if there is no such export
    (yet: the request that made it may not have committed). A finished one is left as it is.
    `affinity` answers the affinity conditions of the brand's segments (without it, a segment
    with one fails the export)."""
    repository = ExportRepository(session)
    export = await repository.get_any(export_id)
    if export is None:
        return None
    if export.status in (ExportStatus.COMPLETED, ExportStatus.FAILED):
        return export
    started_at = utcnow()
    async with Progress(session, export.id) as progress:
        await progress.publish(
            status=ExportStatus.RUNNING, started_at=started_at, rows_done=0, rows_total=None
        )
        try:
            # A savepoint: a failure undoes the version and any events, and the export records
            # the failure in the job's still usable transaction.
            async with session.begin_nested():
                source = affinity(export.brand_id) if affinity is not None else None
                outcome = await _produce(session, export, settings, progress, source)
        except Exception as exc:
            log.exception("marketing.export_failed", export_id=str(export.id))
            return await repository.finish(
                export.id,
                status=ExportStatus.FAILED,
                error=f"{type(exc).__name__}: {exc}"[:_ERROR_CHARS],
                started_at=started_at,
                completed_at=utcnow(),
            )
    finished = await repository.finish(
        export.id,
        status=ExportStatus.COMPLETED,
        version=outcome.version,
        rows_done=outcome.rows,
        rows_total=outcome.rows,
        bytes=outcome.bytes,
        location=outcome.location,
        error=None,
        started_at=started_at,
        completed_at=utcnow(),
    )
    log.info(
        "marketing.export_completed",
        export_id=str(export.id),
        rows=outcome.rows,
        bytes=outcome.bytes,
        materialise_seconds=round(outcome.materialise_seconds, 3),
        write_seconds=round(outcome.write_seconds, 3),
    )
    await OUTBOX.add(
        session,
        ExportCompleted(
            brand_id=export.brand_id,
            data=ExportCompletedData(
                export_id=export.id,
                segment_id=export.segment_id,
                segment_version=outcome.version,
                format=export.format.value,
                gzip=export.gzip,
                mode=export.mode.value,
                rows=outcome.rows,
                bytes=outcome.bytes,
                schedule_id=export.schedule_id,
            ),
        ),
    )
    return finished


async def _produce(
    session: AsyncSession,
    export: Export,
    settings: Settings,
    progress: Progress,
    affinity: AffinitySource | None,
) -> Outcome:
    started = time.perf_counter()
    segment = await segments.get_segment(session, export.brand_id, export.segment_id)
    made = await segments.materialise(session, segment, affinity=affinity)
    version = made.version
    materialised = time.perf_counter()
    basis = basis_of(segment, export.lawful_basis)
    shape = formats.shape_of(export.format)
    delta = export.mode is ExportMode.DELTA
    if delta:
        since = export.since_version or 0
        entered = segment_rows.entered_between(export.segment_id, since, version)
        exited = segment_rows.exited_between(export.segment_id, since, version)
        statement = formats.file_rows(
            export.brand_id, export.fields, shape, basis, entered=entered, exited=exited
        )
        total = await _count(session, entered) + await _count(session, exited)
    elif export.lawful_basis is not None:
        members = await segments.live_members(session, segment, consent=False, affinity=affinity)
        statement = formats.file_rows(export.brand_id, export.fields, shape, basis, members=members)
        total = await _count(session, members)
    else:
        members = segment_rows.version_members(export.segment_id, version)
        statement = formats.file_rows(export.brand_id, export.fields, shape, basis, members=members)
        total = made.size  # the version counted its members as it was made
    await progress.publish(rows_total=total)

    location = storage.join(await _folder(session, export, settings), _file_name(export, version))
    compress = export.gzip and export.format is not ExportFormat.PARQUET
    out = storage.FileWriter(location, settings, gzip=compress)
    try:
        if export.format is ExportFormat.CSV:
            rows = await writers.write_csv(session, statement, out, progress.rows)
        elif export.format is ExportFormat.NDJSON:
            rows = await writers.write_ndjson(session, statement, out, progress.rows)
        else:
            schema = formats.arrow_schema(
                export.fields,
                delta=delta,
                metadata={
                    formats.LAWFUL_BASIS: basis,
                    "kinfolk.segment_id": str(export.segment_id),
                    "kinfolk.segment_version": str(version),
                    "kinfolk.mode": export.mode.value,
                },
            )
            rows = await writers.write_parquet(
                session,
                statement,
                out,
                progress.rows,
                schema=schema,
                compression="gzip" if export.gzip else "snappy",
            )
        size = out.commit()
    except BaseException:
        out.abort()
        raise
    await progress.publish(rows_done=rows, rows_total=rows)
    return Outcome(
        version=version,
        rows=rows,
        bytes=size,
        location=location,
        materialise_seconds=materialised - started,
        write_seconds=time.perf_counter() - materialised,
    )


async def _count(session: AsyncSession, ids: Select[tuple[uuid.UUID]]) -> int:
    return await ExportRepository(session).count(ids)


async def _folder(session: AsyncSession, export: Export, settings: Settings) -> str:
    if export.schedule_id is not None:
        schedule = await ExportRepository(session).get_schedule_any(export.schedule_id)
        if schedule is not None:
            return schedule.destination
    return storage.join(storage.exports_base(settings), str(export.brand_id))


def _file_name(export: Export, version: int) -> str:
    extension = formats.EXTENSIONS[export.format]
    if export.gzip and export.format is not ExportFormat.PARQUET:
        extension += ".gz"
    return f"{export.segment_id}-v{version}-{export.mode.value}-{export.id}.{extension}"


# Abandoned exports ---------------------------------------------------------------------------

# An export whose job is gone this long after it was queued or started will never finish.
ABANDONED_AFTER = timedelta(minutes=10)
ABANDONED_PER_RUN = 500
ABANDONED_ERROR = (
    "The export did not finish: its job is gone (the worker stopped, or what it wrote could "
    "not be saved). Nothing was kept of it; create the export again."
)


async def fail_abandoned(
    session: AsyncSession,
    job_alive: Callable[[uuid.UUID], Awaitable[bool]],
    now: datetime | None = None,
) -> list[uuid.UUID]:
    """Marks failed the on-demand exports still queued or running whose job is gone (not
    queued, not running): its outcome was rolled back, or the queue lost it, and otherwise the
    export would show `running` forever. Progress is written outside the job's transaction
    (`progress.py`), so it survives the outcome's rollback; this is its end. Returns the ids."""
    at = now or utcnow()
    repository = ExportRepository(session)
    failed: list[uuid.UUID] = []
    for export in await repository.unfinished_on_demand(at - ABANDONED_AFTER, ABANDONED_PER_RUN):
        if await job_alive(export.id):
            continue
        await repository.finish(
            export.id, status=ExportStatus.FAILED, error=ABANDONED_ERROR, completed_at=at
        )
        log.warning("marketing.export_abandoned", export_id=str(export.id))
        failed.append(export.id)
    return failed


# Schedules ------------------------------------------------------------------------------------


async def create_schedule(
    session: AsyncSession, staff: StaffPrincipal, settings: Settings, payload: ScheduleCreate
) -> ExportSchedule:
    segment = await segments.get_segment(session, staff.brand_id, payload.segment_id)
    fields = file_fields(staff, payload.fields)
    check_mode(payload.mode, payload.lawful_basis)
    destination = check_destination(settings, payload.destination, staff.brand_id)
    return await ExportRepository(session).add_schedule(
        ExportSchedule(
            id=new_id(),
            brand_id=staff.brand_id,
            segment_id=segment.id,
            fields=fields,
            format=payload.format,
            gzip=payload.gzip,
            mode=payload.mode,
            lawful_basis=payload.lawful_basis,
            every=RefreshEvery(payload.every.value),
            destination=destination,
            last_version=None,
            # The first run comes with the scheduler's next round.
            next_run_at=utcnow(),
            enabled=payload.enabled,
            created_at=utcnow(),
        )
    )


async def get_schedule(
    session: AsyncSession, brand_id: uuid.UUID, schedule_id: uuid.UUID
) -> ExportSchedule:
    schedule = await ExportRepository(session).get_schedule(brand_id, schedule_id)
    if schedule is None:
        raise ScheduleNotFound(schedule_id)
    return schedule


async def list_schedules(
    session: AsyncSession, brand_id: uuid.UUID, page: PageRequest
) -> list[ExportSchedule]:
    return list(await ExportRepository(session).schedules_page(brand_id, page))


async def update_schedule(
    session: AsyncSession,
    staff: StaffPrincipal,
    settings: Settings,
    schedule_id: uuid.UUID,
    payload: ScheduleUpdate,
) -> ExportSchedule:
    schedule = await get_schedule(session, staff.brand_id, schedule_id)
    # Only what was sent changes; a null clears `lawful_basis` and leaves the others as they are.
    changes: dict[str, Any] = {
        name: value
        for name, value in payload.model_dump(exclude_unset=True).items()
        if value is not None or name == "lawful_basis"
    }
    # Whoever changes a schedule must be able to read what it writes.
    changes["fields"] = file_fields(staff, changes.get("fields", schedule.fields))
    if "destination" in changes:
        changes["destination"] = check_destination(settings, changes["destination"], staff.brand_id)
    if "every" in changes:
        changes["every"] = RefreshEvery(changes["every"].value)
    mode = changes.get("mode", schedule.mode)
    basis = changes.get("lawful_basis", schedule.lawful_basis)
    check_mode(mode, basis)
    if mode is not schedule.mode:
        # A delta that starts again from nothing: its next file has everyone as entered.
        schedule.last_version = None
    for name, value in changes.items():
        setattr(schedule, name, value)
    await session.flush()
    return schedule


async def delete_schedule(
    session: AsyncSession, brand_id: uuid.UUID, schedule_id: uuid.UUID
) -> None:
    """Past exports of the schedule stay (with their files); only future runs stop."""
    schedule = await get_schedule(session, brand_id, schedule_id)
    await ExportRepository(session).delete_schedule(schedule)


async def run_due_schedules(
    session: AsyncSession,
    settings: Settings,
    now: datetime | None = None,
    affinity: AffinityFor | None = None,
) -> list[Export]:
    """Runs the schedules that are due, each as an export like an on-demand one (same files),
    into the schedule's destination. A delta exports since the version the last run reached
    (the first run: since 0, everyone in the segment as `entered`). A failed run leaves
    `last_version` where it was, so the next delta covers the gap; either way the next run is a
    period later (missed periods are skipped, not caught up one by one)."""
    at = now or utcnow()
    repository = ExportRepository(session)
    done: list[Export] = []
    for _ in range(SCHEDULES_PER_RUN):
        schedule = await repository.next_due(at)
        if schedule is None:
            break
        delta = schedule.mode is ExportMode.DELTA
        export = await repository.add(
            Export(
                id=new_id(),
                brand_id=schedule.brand_id,
                segment_id=schedule.segment_id,
                schedule_id=schedule.id,
                fields=schedule.fields,
                format=schedule.format,
                gzip=schedule.gzip,
                mode=schedule.mode,
                since_version=(schedule.last_version or 0) if delta else None,
                lawful_basis=schedule.lawful_basis,
                status=ExportStatus.QUEUED,
                rows_done=0,
                created_at=utcnow(),
            )
        )
        finished = await run_export(session, export.id, settings, affinity)
        assert finished is not None
        if finished.status is ExportStatus.COMPLETED:
            schedule.last_version = finished.version
        step = EVERY[schedule.every]
        following = schedule.next_run_at + step
        schedule.next_run_at = following if following > at else at + step
        await session.flush()
        done.append(finished)
    return done
