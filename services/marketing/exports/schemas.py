"""Exports and export schedules as the REST API reads and writes them."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from services.marketing.models import ExportFormat, ExportMode, ExportStatus

FieldNames = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=64)]],
    Field(
        max_length=64,
        description="Member-360 fields, in the file's order (`GET /marketing/v1/fields` lists "
        "them). `member_id` is always the first column, whether named or not; personal fields "
        "need the `members:read` scope.",
    ),
]
LawfulBasis = Annotated[
    str | None,
    Field(
        min_length=1,
        max_length=200,
        description="For a use other than the segment's marketing channel (e.g. `contract`, "
        "`legitimate_interest: fraud review`): the rule's members without the consent filter, "
        "and every row says this basis in its `lawful_basis` column. Full exports only.",
    ),
]
GZIP_DESCRIPTION = (
    "CSV and NDJSON: the file is gzip-compressed (`.gz`). Parquet compresses its own pages: "
    "gzip asks for gzip pages instead of snappy, and the file stays a plain `.parquet`."
)


class ExportFile(BaseModel):
    """What a file holds and how it is written: the same for an export and a schedule."""

    model_config = ConfigDict(extra="forbid")

    segment_id: uuid.UUID
    fields: FieldNames = Field(default_factory=list)
    format: ExportFormat = ExportFormat.CSV
    gzip: bool = Field(default=False, description=GZIP_DESCRIPTION)
    lawful_basis: LawfulBasis = None


class ExportCreate(ExportFile):
    mode: ExportMode = Field(
        default=ExportMode.FULL,
        description="`full`: every member of a fresh version of the segment. `delta`: who "
        "entered and who exited since `since_version` (a `change` column says which; members "
        "erased since keep only their id).",
    )
    since_version: int | None = Field(
        default=None,
        ge=0,
        description="Delta only: a version the segment has had (0: before its first, so "
        "everyone in it has entered).",
    )


class ExportLinks(BaseModel):
    self: str


class ExportRead(BaseModel):
    id: uuid.UUID
    segment_id: uuid.UUID
    schedule_id: uuid.UUID | None
    fields: list[str]
    format: ExportFormat
    gzip: bool
    mode: ExportMode
    since_version: int | None
    version: int | None = Field(description="The segment version the file holds.")
    lawful_basis: str | None
    status: ExportStatus
    rows_done: int
    rows_total: int | None
    bytes: int | None
    error: str | None
    location: str | None = Field(
        description="Scheduled exports: where the file was written. On-demand exports are "
        "downloaded with `download_url`."
    )
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    download_url: str | None = Field(
        description="When completed and the key may read every field: a link that works "
        "without an API key until `download_expires_at`."
    )
    download_expires_at: datetime | None
    links: ExportLinks


class Every(StrEnum):
    HOURLY = "hourly"
    DAILY = "daily"


DESTINATION_DESCRIPTION = (
    "`file:///absolute/folder` (under the folder this server allows, `export_folders_root`) "
    "or `s3://bucket/prefix` at or under a location this server allows the brand "
    "(`export_s3_destinations`, else its own exports location in S3; the server's S3 "
    "credentials)."
)


class ScheduleCreate(ExportFile):
    mode: ExportMode = Field(
        default=ExportMode.FULL,
        description="`delta`: each run exports who entered and exited since the last run's "
        "version; the first run has everyone in the segment as `entered`.",
    )
    every: Every
    destination: str = Field(min_length=1, max_length=1_000, description=DESTINATION_DESCRIPTION)
    enabled: bool = True


class ScheduleUpdate(BaseModel):
    """Only the fields sent change."""

    model_config = ConfigDict(extra="forbid")

    fields: FieldNames | None = None
    format: ExportFormat | None = None
    gzip: bool | None = None
    mode: ExportMode | None = None
    lawful_basis: LawfulBasis = None
    every: Every | None = None
    destination: str | None = Field(
        default=None, min_length=1, max_length=1_000, description=DESTINATION_DESCRIPTION
    )
    enabled: bool | None = None


class ScheduleRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    segment_id: uuid.UUID
    fields: list[str]
    format: ExportFormat
    gzip: bool
    mode: ExportMode
    lawful_basis: str | None
    every: Every
    destination: str
    enabled: bool
    last_version: int | None = Field(description="The segment version the last run reached.")
    next_run_at: datetime
    created_at: datetime
