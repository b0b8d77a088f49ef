"""The scores' jobs: daily scoring, weekly re-training, and either on demand for one brand.

Each job imports the scores service when it runs: it pulls in scikit-learn (seconds of
imports), which the HTTP processes that only name these jobs never need. Brands are worked one
after another, each from start to end (refresh, RFM, churn), so a brand's rows are consistent
whichever brand the job is on.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.jobs import JobSpec, Schedule

log = structlog.get_logger(__name__)

SCORE_JOB_NAME = "marketing.score_members"
TRAIN_JOB_NAME = "marketing.train_churn_model"


async def score_members(
    session: AsyncSession, brand_id: str | None = None, now: datetime | None = None
) -> int:
    """Score one brand (on demand) or every brand with members (daily); returns the brands."""
    from services.marketing.scores import service

    brands = (
        [uuid.UUID(brand_id)]
        if brand_id is not None
        else await service.brands_with_members(session)
    )
    for brand in brands:
        scored = await service.score_brand(session, brand, now)
        log.info(
            "marketing.scored",
            brand_id=str(brand),
            members=scored.members,
            churn_scored=scored.churn_scored,
        )
    return len(brands)


async def train_churn_model(
    session: AsyncSession, brand_id: str | None = None, now: datetime | None = None
) -> int:
    """Train one brand (on demand) or every brand with members (weekly); returns the models
    trained (refusals are stored and listed, not counted)."""
    from services.marketing.models import TrainingStatus
    from services.marketing.scores import service

    brands = (
        [uuid.UUID(brand_id)]
        if brand_id is not None
        else await service.brands_with_members(session)
    )
    trained = 0
    for brand in brands:
        row = await service.train_and_score(session, brand, now)
        log.info(
            "marketing.churn_model",
            brand_id=str(brand),
            status=row.status.value,
            reason=row.reason.value if row.reason else None,
            roc_auc=row.metrics.get("roc_auc"),
        )
        trained += row.status is TrainingStatus.TRAINED
    return trained


SCORE_JOBS: tuple[JobSpec, ...] = (
    # Daily, after the night's quiet hours: the windows move on at the start of the UTC day.
    JobSpec(SCORE_JOB_NAME, score_members, cron=Schedule(hour=4, minute=20), timeout_seconds=3_600),
    # Sundays, before that day's scoring.
    JobSpec(
        TRAIN_JOB_NAME,
        train_churn_model,
        cron=Schedule(weekday=6, hour=3, minute=20),
        timeout_seconds=3_600,
    ),
)
