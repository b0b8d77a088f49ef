"""The training routes' JSON."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from recommender.store.models import VersionStatus


class VersionRead(BaseModel):
    id: uuid.UUID
    number: int
    status: VersionStatus
    metrics: dict[str, Any]
    compared_to: dict[str, Any] | None
    artifact_bytes: int
    trained_at: datetime


class TrainingQueued(BaseModel):
    job_id: str
    brand_id: uuid.UUID
