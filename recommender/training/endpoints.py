"""Staff routes for the brand's model versions: list them with their offline figures, and train
a new one now rather than tonight."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, status

from recommender.training import repository
from recommender.training.schemas import TrainingQueued, VersionRead
from recommender.training.tasks import TRAIN_JOB_NAME
from services.kernel.auth import Scope, StaffPrincipal, require_staff
from services.kernel.db import SessionDep
from services.kernel.jobs import enqueue, job_queue
from services.kernel.routing import Router

router = Router(prefix="/recommender/v1", tags=["recommender"])

StaffRead = Annotated[StaffPrincipal, Depends(require_staff(Scope.RECOMMENDER_READ))]
StaffWrite = Annotated[StaffPrincipal, Depends(require_staff(Scope.RECOMMENDER_WRITE))]


@router.get("/models", response_model=list[VersionRead], summary="List the model versions")
async def list_models(staff: StaffRead, session: SessionDep) -> list[VersionRead]:
    """Newest first, each with its offline figures on the held-out members and, when it was
    judged against a serving version, that version's figures on the same members."""
    versions = await repository.list_versions(session, staff.brand_id)
    return [VersionRead.model_validate(v, from_attributes=True) for v in versions]


@router.post(
    "/models/train",
    response_model=TrainingQueued,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Train a new version now",
)
async def train_now(staff: StaffWrite, request: Request) -> TrainingQueued:
    """Queues a training run for the brand. One run per brand is queued at a time: asking again
    while one waits returns the same job. The outcome appears in `GET /models` and as a
    `recommendation.model_trained` event."""
    job_id = f"{TRAIN_JOB_NAME}:{staff.brand_id}"
    # arq's client over the app's own Redis connections.
    queue = job_queue(request.app.state.redis)
    await enqueue(queue, TRAIN_JOB_NAME, job_id=job_id, brand_id=str(staff.brand_id))
    return TrainingQueued(job_id=job_id, brand_id=staff.brand_id)
