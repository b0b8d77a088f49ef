"""REST for the scores: the brand's churn models with their quality, and running training or
scoring now rather than on schedule."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request, status

from services.kernel.db import SessionDep
from services.kernel.jobs import enqueue, job_queue
from services.kernel.routing import Router
from services.marketing.access import StaffRead, StaffWrite
from services.marketing.scores.repository import ScoresRepository
from services.marketing.scores.schemas import (
    ChurnModelRead,
    ScoringQueued,
    TrainingQueued,
)
from services.marketing.scores.tasks import SCORE_JOB_NAME, TRAIN_JOB_NAME

router = Router(prefix="/marketing/v1", tags=["marketing: scores"])


@router.get("/churn-models", response_model=list[ChurnModelRead], summary="List the churn models")
async def list_churn_models(
    staff: StaffRead,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100, description="How many, newest first.")] = 20,
) -> list[ChurnModelRead]:
    """Newest first: each training run, with its quality on held-out members (ROC AUC, Brier
    score, their churn rate) next to the same figures for recency alone, or the reason it was
    refused (too little history). Members are scored by the newest trained model."""
    models = await ScoresRepository(session).list_models(staff.brand_id, limit)
    return [
        ChurnModelRead(
            id=found.id,
            trained_at=found.trained_at,
            status=found.status,
            reason=found.reason,
            detail=found.detail,
            horizon_days=found.horizon_days,
            features=found.features,
            metrics=found.metrics,
            train_members=found.train_members,
            test_members=found.test_members,
            artifact_bytes=found.artifact_bytes,
        )
        for found in models
    ]


@router.post(
    "/churn-models/train",
    response_model=TrainingQueued,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Train a churn model now",
)
async def train_now(staff: StaffWrite, request: Request) -> TrainingQueued:
    """Queues a training run for the brand (they also run weekly); the members are scored with
    the new model when it is fitted. One run per brand is queued at a time: asking again while
    one waits returns the same job. The outcome, trained or refused, appears in
    `GET /churn-models`."""
    job_id = f"{TRAIN_JOB_NAME}:{staff.brand_id}"
    queue = job_queue(request.app.state.redis)
    await enqueue(queue, TRAIN_JOB_NAME, job_id=job_id, brand_id=str(staff.brand_id))
    return TrainingQueued(job_id=job_id, brand_id=staff.brand_id)


@router.post(
    "/scores/run",
    response_model=ScoringQueued,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Score the members now",
)
async def score_now(staff: StaffWrite, request: Request) -> ScoringQueued:
    """Queues the brand's scoring (it also runs daily): the spend windows move on to now, then
    every member's RFM quintiles and churn probability are computed. One run per brand is
    queued at a time."""
    job_id = f"{SCORE_JOB_NAME}:{staff.brand_id}"
    queue = job_queue(request.app.state.redis)
    await enqueue(queue, SCORE_JOB_NAME, job_id=job_id, brand_id=str(staff.brand_id))
    return ScoringQueued(job_id=job_id, brand_id=staff.brand_id)
