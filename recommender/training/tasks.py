"""The recommender's scheduled work: nightly training, models for young brands every few
minutes while their data grows, fold-ins every minute and the weekly lists."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from recommender.training import repository
from services.kernel.clock import utcnow
from services.kernel.jobs import Continue, JobSpec, Schedule

TRAIN_JOB_NAME = "recommender.train"

# Each job imports the training service when it runs: it pulls in scikit-learn and SciPy
# (seconds of imports), which the HTTP processes that only name these jobs never need.


async def train(
    session: AsyncSession,
    brand_id: str | None = None,
    now: datetime | None = None,
    after: str | None = None,
) -> int | Continue:
    """Train one brand: the one named (on demand), or, nightly, every brand with members in
    turn, one a run: each run is one transaction (a brand's training can take minutes) and
    queues the next brand's (`Continue`), all at the first run's time. Returns the versions
    this run trained."""
    if brand_id is not None:
        return await train_one(session, uuid.UUID(brand_id), now)
    now = now or utcnow()
    brands = await repository.brands_with_members(
        session, uuid.UUID(after) if after is not None else None
    )
    if not brands:
        return 0
    trained = await train_one(session, brands[0], now)
    if len(brands) == 1:
        return trained
    return Continue({"now": now, "after": str(brands[0])}, trained)


async def train_one(session: AsyncSession, brand_id: uuid.UUID, now: datetime | None = None) -> int:
    """Train the brand; returns the versions trained (0 when it has too little data)."""
    from recommender.training import service

    return int(await service.train_brand(session, brand_id, now) is not None)


async def train_young_brands(
    session: AsyncSession, now: datetime | None = None, after: str | None = None
) -> int | Continue:
    """New brands get a model, and better ones as their data grows, without waiting for the
    night (see `service.is_young`): one young brand a run, as `train` takes them."""
    from recommender.training import service

    now = now or utcnow()
    start = uuid.UUID(after) if after is not None else None
    for brand_id in await repository.brands_with_members(session, start):
        if await service.is_young(session, brand_id):
            trained = await train_one(session, brand_id, now)
            return Continue({"now": now, "after": str(brand_id)}, trained)
    return 0


async def fold_in(session: AsyncSession, now: datetime | None = None) -> int:
    from recommender.training import service

    return await service.fold_in(session, now)


async def refresh_weekly(session: AsyncSession, now: datetime | None = None) -> int:
    """Monday: every member with lists gets new Discover and New-for-you lists at the next
    fold-ins (the fold-in keeps a weekly list made since the week began)."""
    now = now or utcnow()
    return await repository.mark_listed_members_stale(session, now)


TRAINING_JOBS: tuple[JobSpec, ...] = (
    JobSpec(TRAIN_JOB_NAME, train, cron=Schedule(hour=2, minute=30), timeout_seconds=3_600),
    JobSpec(
        "recommender.train_young_brands",
        train_young_brands,
        cron=Schedule(minute=frozenset(range(0, 60, 5))),
        timeout_seconds=3_600,
    ),
    JobSpec("recommender.fold_in", fold_in, cron=Schedule(second=0), timeout_seconds=120),
    JobSpec(
        "recommender.refresh_weekly",
        refresh_weekly,
        cron=Schedule(weekday=0, hour=0, minute=5),
        timeout_seconds=600,
    ),
)
