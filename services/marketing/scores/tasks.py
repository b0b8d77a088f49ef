"""The scores' jobs: daily scoring, weekly re-training, and either on demand for one brand.

Each job imports the scores service when it runs: it pulls in scikit-learn (seconds of
imports), which the HTTP processes that only name these jobs never need. Brands are worked one
after another, each from start to end (refresh, RFM, churn) in a run of its own (one
transaction), so a brand's rows are consistent and no run holds every brand's rows at once.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.kernel.jobs import Continue, JobSpec, Schedule

log = structlog.get_logger(__name__)

SCORE_JOB_NAME = "marketing.score_members"
TRAIN_JOB_NAME = "marketing.train_churn_model"


async def score_members(
    session: AsyncSession,
    brand_id: str | None = None,
    now: datetime | None = None,
    after: str | None = None,
) -> int | Continue:
    """Score one brand: the one named (on demand), or, daily, every brand with members in
    turn, one a run: each run is one transaction and queues the next brand's (`Continue`),
    all at the first run's time. Returns the brands this run scored."""
    from services.marketing.scores import service

    brand, then = await _this_run(session, brand_id, after)
    if brand is None:
        return 0
    now = now or utcnow()
    scored = await service.score_brand(session, brand, now)
    log.info(
        "marketing.scored",
        brand_id=str(brand),
        members=scored.members,
        churn_scored=scored.churn_scored,
    )
    return _next(then, brand, now, 1)


async def train_churn_model(
    session: AsyncSession,
    brand_id: str | None = None,
    now: datetime | None = None,
    after: str | None = None,
) -> int | Continue:
    """Train one brand: the one named (on demand), or, weekly, every brand with members in
    turn, one a run, as `score_members` does. Returns the models this run trained (refusals
    are stored and listed, not counted)."""
    from services.marketing.models import TrainingStatus
    from services.marketing.scores import service

    brand, then = await _this_run(session, brand_id, after)
    if brand is None:
        return 0
    now = now or utcnow()
    row = await service.train_and_score(session, brand, now)
    log.info(
        "marketing.churn_model",
        brand_id=str(brand),
        status=row.status.value,
        reason=row.reason.value if row.reason else None,
        roc_auc=row.metrics.get("roc_auc"),
    )
    return _next(then, brand, now, int(row.status is TrainingStatus.TRAINED))


async def _this_run(
    session: AsyncSession, brand_id: str | None, after: str | None
) -> tuple[uuid.UUID | None, bool]:
    """The brand this run works on, and whether another brand's run follows."""
    from services.marketing.scores import service

    if brand_id is not None:
        return uuid.UUID(brand_id), False
    start = uuid.UUID(after) if after is not None else None
    left = [b for b in await service.brands_with_members(session) if start is None or b > start]
    return (left[0], len(left) > 1) if left else (None, False)


def _next(then: bool, brand: uuid.UUID, now: datetime, done: int) -> int | Continue:
    return Continue({"now": now, "after": str(brand)}, done) if then else done


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
