"""The scores' REST JSON, and the outcome of a training run."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from services.marketing.models import RefusalReason, TrainingStatus


class ChurnModelRead(BaseModel):
    id: uuid.UUID
    trained_at: datetime
    status: TrainingStatus
    reason: RefusalReason | None = Field(description="Why a run was refused; null when trained.")
    detail: str | None
    horizon_days: int = Field(description="Churn means no purchase within this many days.")
    features: list[str]
    metrics: dict[str, Any] = Field(
        description=(
            "On held-out members: roc_auc, brier, base_rate (their churn rate); `baseline`: the "
            "same learner on recency alone; brier_base_rate: answering the churn rate for all."
        )
    )
    train_members: int
    test_members: int
    artifact_bytes: int = Field(description="0 once an older model's artifact was dropped.")


class TrainingQueued(BaseModel):
    job_id: str
    brand_id: uuid.UUID


class ScoringQueued(BaseModel):
    job_id: str
    brand_id: uuid.UUID
