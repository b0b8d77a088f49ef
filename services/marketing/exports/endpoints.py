"""REST for exports: queue one, follow it, download its file with a signed link; and the
schedules that write the same files to a folder or a bucket on their own."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Query, Request, Response, status
from fastapi.responses import FileResponse, StreamingResponse

from services.kernel.auth import StaffPrincipal
from services.kernel.db import SessionDep
from services.kernel.errors import ServiceUnavailable
from services.kernel.idempotency import IdempotencyKeyHeader, request_hash
from services.kernel.jobs import enqueue, job_queue
from services.kernel.pagination import Page, PageDep
from services.kernel.routing import Router
from services.kernel.settings import Settings
from services.marketing.access import StaffRead, StaffWrite
from services.marketing.exports import formats, links, service, storage
from services.marketing.exports.errors import ExportNotReady
from services.marketing.exports.schemas import (
    ExportCreate,
    ExportLinks,
    ExportRead,
    ScheduleCreate,
    ScheduleRead,
    ScheduleUpdate,
)
from services.marketing.exports.tasks import EXPORT_JOB_NAME, export_job_id
from services.marketing.fields import unreadable
from services.marketing.models import IDEMPOTENCY, Export, ExportFormat, ExportStatus

router = Router(prefix="/marketing/v1", tags=["marketing: exports"])

_EXPORT_ERRORS: dict[int | str, dict[str, str]] = {
    403: {"description": "FieldNotReadable"},
    404: {"description": "SegmentNotFound"},
    422: {
        "description": "UnknownField, DuplicateField, SinceVersionRequired, "
        "SinceVersionNotForFull, UnknownVersion, LawfulBasisNotForDelta"
    },
}


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _read(request: Request, staff: StaffPrincipal, export: Export) -> ExportRead:
    url = str(request.url_for("read_export", export_id=export.id))
    download_url: str | None = None
    expires_at: datetime | None = None
    if export.status is ExportStatus.COMPLETED and not unreadable(staff, export.fields):
        expires, signature = links.sign(_settings(request), export.id)
        download = request.url_for("download_export", export_id=export.id)
        download_url = str(download.include_query_params(expires=expires, signature=signature))
        expires_at = datetime.fromtimestamp(expires, UTC)
    return ExportRead(
        id=export.id,
        segment_id=export.segment_id,
        schedule_id=export.schedule_id,
        fields=export.fields,
        format=export.format,
        gzip=export.gzip,
        mode=export.mode,
        since_version=export.since_version,
        version=export.version,
        lawful_basis=export.lawful_basis,
        status=export.status,
        rows_done=export.rows_done,
        rows_total=export.rows_total,
        bytes=export.bytes,
        error=export.error,
        location=export.location if export.schedule_id is not None else None,
        created_at=export.created_at,
        started_at=export.started_at,
        completed_at=export.completed_at,
        download_url=download_url,
        download_expires_at=expires_at,
        links=ExportLinks(self=url),
    )


@router.post(
    "/exports",
    response_model=ExportRead,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Export a segment to a file",
    responses=_EXPORT_ERRORS,
)
async def create_export(
    payload: ExportCreate,
    request: Request,
    staff: StaffWrite,
    session: SessionDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Queues the export and answers at once. The job materialises a fresh version of the
    segment and writes its members' fields as CSV, NDJSON or Parquet; follow it with
    `GET /exports/{id}` (rows done and total while it runs, a download link once completed).
    An `export.completed` event goes out when the file is ready."""

    async def work() -> ExportRead:
        export = await service.create_export(session, staff, payload)
        queue = job_queue(request.app.state.redis)
        await enqueue(
            queue, EXPORT_JOB_NAME, job_id=export_job_id(export.id), export_id=str(export.id)
        )
        return _read(request, staff, export)

    return await IDEMPOTENCY.run(
        session,
        caller=staff,
        key=idempotency_key,
        fingerprint=request_hash(request.method, request.url.path, payload),
        status_code=status.HTTP_202_ACCEPTED,
        work=work,
    )


@router.get("/exports", response_model=Page[ExportRead], summary="List exports, newest first")
async def list_exports(
    request: Request, staff: StaffRead, session: SessionDep, page: PageDep
) -> Page[ExportRead]:
    rows = await service.list_exports(session, staff.brand_id, page)
    return Page[ExportRead].of(
        rows, page, key=lambda e: e.id, item=lambda e: _read(request, staff, e)
    )


@router.get(
    "/exports/{export_id}",
    response_model=ExportRead,
    summary="An export's progress and, once completed, its download link",
    responses={404: {"description": "ExportNotFound"}},
)
async def read_export(
    export_id: uuid.UUID, request: Request, staff: StaffRead, session: SessionDep
) -> ExportRead:
    """While it runs: `rows_done` of `rows_total`. Once completed: `download_url`, a link that
    needs no API key and expires (ask again for a fresh one). A key that may not read every
    field of the file (personal fields need `members:read`) gets no link."""
    return _read(request, staff, await service.get_export(session, staff.brand_id, export_id))


@router.get(
    "/exports/{export_id}/download",
    summary="Download an export's file (signed link)",
    response_class=Response,
    responses={
        200: {"description": "The file.", "content": {"application/octet-stream": {}}},
        403: {"description": "ExportLinkInvalid, ExportLinkExpired"},
        404: {"description": "ExportNotReady"},
        503: {"description": "ServiceUnavailable: the S3 store holding the file did not answer"},
    },
)
async def download_export(
    export_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    expires: Annotated[int, Query(description="From the link.")],
    signature: Annotated[str, Query(max_length=128, description="From the link.")],
) -> Response:
    """The link from `GET /exports/{id}`: no API key, it is its own permission until it
    expires. S3 files stream through this server, so the bucket needs no public access."""
    settings = _settings(request)
    links.verify(settings, export_id, expires, signature)
    export = await service.get_ready_export(session, export_id)
    location = export.location
    assert location is not None
    name = location.rsplit("/", 1)[-1]
    media_type = (
        "application/gzip"
        if export.gzip and export.format is not ExportFormat.PARQUET
        else formats.MEDIA_TYPES[export.format]
    )
    path = storage.local_path(location)
    if path is not None:
        if not path.is_file():
            raise ExportNotReady("The export's file is no longer there.")
        return FileResponse(path, media_type=media_type, filename=name)
    try:
        # Off the event loop: opening an S3 object asks the store (HEAD) and may retry.
        stream = await asyncio.to_thread(storage.open_input, location, settings)
    except FileNotFoundError as exc:
        raise ExportNotReady("The export's file is no longer there.") from exc
    except OSError as exc:
        raise ServiceUnavailable(
            "The store holding the export's file did not answer; try the link again shortly."
        ) from exc

    def chunks() -> Iterator[bytes]:
        with stream:
            while chunk := stream.read(1 << 20):
                yield chunk

    return StreamingResponse(
        chunks(),
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# Schedules -----------------------------------------------------------------------------------


@router.post(
    "/export-schedules",
    response_model=ScheduleRead,
    status_code=status.HTTP_201_CREATED,
    summary="Export a segment every hour or day to a folder or a bucket",
    responses={
        **_EXPORT_ERRORS,
        422: {
            "description": "UnknownField, DuplicateField, LawfulBasisNotForDelta, "
            "DestinationNotAllowed"
        },
    },
)
async def create_schedule(
    payload: ScheduleCreate, request: Request, staff: StaffWrite, session: SessionDep
) -> ScheduleRead:
    """The first run comes within a minute; then every hour or day. Each run is an export like
    an on-demand one (listed in `GET /exports` with this `schedule_id`), written to the
    destination."""
    schedule = await service.create_schedule(session, staff, _settings(request), payload)
    return ScheduleRead.model_validate(schedule)


@router.get("/export-schedules", response_model=Page[ScheduleRead], summary="List export schedules")
async def list_schedules(
    staff: StaffRead, session: SessionDep, page: PageDep
) -> Page[ScheduleRead]:
    rows = await service.list_schedules(session, staff.brand_id, page)
    return Page[ScheduleRead].of(rows, page, key=lambda s: s.id, item=ScheduleRead.model_validate)


@router.get(
    "/export-schedules/{schedule_id}",
    response_model=ScheduleRead,
    summary="An export schedule",
    responses={404: {"description": "ExportScheduleNotFound"}},
)
async def read_schedule(
    schedule_id: uuid.UUID, staff: StaffRead, session: SessionDep
) -> ScheduleRead:
    schedule = await service.get_schedule(session, staff.brand_id, schedule_id)
    return ScheduleRead.model_validate(schedule)


@router.patch(
    "/export-schedules/{schedule_id}",
    response_model=ScheduleRead,
    summary="Change an export schedule",
    responses={
        403: {"description": "FieldNotReadable"},
        404: {"description": "ExportScheduleNotFound"},
        422: {
            "description": "UnknownField, DuplicateField, LawfulBasisNotForDelta, "
            "DestinationNotAllowed"
        },
    },
)
async def update_schedule(
    schedule_id: uuid.UUID,
    payload: ScheduleUpdate,
    request: Request,
    staff: StaffWrite,
    session: SessionDep,
) -> ScheduleRead:
    """Changing the mode starts a delta afresh (its next file has everyone as `entered`)."""
    schedule = await service.update_schedule(
        session, staff, _settings(request), schedule_id, payload
    )
    return ScheduleRead.model_validate(schedule)


@router.delete(
    "/export-schedules/{schedule_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Stop an export schedule",
    responses={404: {"description": "ExportScheduleNotFound"}},
)
async def delete_schedule(schedule_id: uuid.UUID, staff: StaffWrite, session: SessionDep) -> None:
    """Its past exports and their files stay."""
    await service.delete_schedule(session, staff.brand_id, schedule_id)
