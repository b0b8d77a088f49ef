"""Events the marketing service publishes: segment changes (which the webhooks service forwards
to CRMs) and finished exports."""

from __future__ import annotations

import uuid
from typing import Literal

from services.kernel.events import Event, EventData


class SegmentChangeData(EventData):
    segment_id: uuid.UUID
    segment_name: str
    member_id: uuid.UUID
    version: int


class SegmentEntered(Event):
    type: Literal["segment.entered"] = "segment.entered"
    version: Literal[1] = 1
    data: SegmentChangeData


class SegmentExited(Event):
    type: Literal["segment.exited"] = "segment.exited"
    version: Literal[1] = 1
    data: SegmentChangeData


class ExportCompletedData(EventData):
    export_id: uuid.UUID
    segment_id: uuid.UUID
    segment_version: int
    format: str
    gzip: bool
    mode: str
    rows: int
    bytes: int
    schedule_id: uuid.UUID | None


class ExportCompleted(Event):
    type: Literal["export.completed"] = "export.completed"
    version: Literal[1] = 1
    data: ExportCompletedData


MARKETING_EVENTS: tuple[type[Event], ...] = (SegmentEntered, SegmentExited, ExportCompleted)
