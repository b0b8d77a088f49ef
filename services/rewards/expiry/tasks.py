"""The expiry jobs: daily, in UTC, the reminders after the expiry (so nothing due is announced).

A run takes at most MEMBERS_PER_RUN members (`service.RunLimit`) and, with work left, queues the
next run from where it stopped, at the same `now`: every entry and reminder is dated as if one
run had done them all, and no run keeps a large brand's members locked for long. Should the next
run fail to be queued (Redis away just then), the next day's run does what was left.

Run one by hand with `enqueue(redis, "rewards.expire_points", now=<aware datetime>)`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.kernel.jobs import Continue, JobSpec, Schedule
from services.rewards.expiry import service
from services.rewards.expiry.service import Resume, RunLimit

# Members one run locks until it commits: a few seconds of work.
MEMBERS_PER_RUN = 5_000


def _limit(resume: dict[str, Any] | None) -> RunLimit:
    return RunLimit(MEMBERS_PER_RUN, Resume.from_json(resume) if resume is not None else None)


def _batch() -> int:
    return min(service.BATCH_SIZE, MEMBERS_PER_RUN)


def _then(now: datetime, limit: RunLimit, done: int) -> int | Continue:
    if limit.resume is None:
        return done
    return Continue({"now": now, "resume": limit.resume.to_json()}, done)


async def expire_points(
    session: AsyncSession, now: datetime | None = None, resume: dict[str, Any] | None = None
) -> int | Continue:
    """Ledger entries written by this run."""
    moment = now or utcnow()
    limit = _limit(resume)
    run = await service.expire_points(session, now=moment, batch_size=_batch(), limit=limit)
    return _then(moment, limit, run.entries)


async def remind_expiring_points(
    session: AsyncSession, now: datetime | None = None, resume: dict[str, Any] | None = None
) -> int | Continue:
    """Reminders sent by this run."""
    moment = now or utcnow()
    limit = _limit(resume)
    sent = await service.remind_expiring_points(
        session, now=moment, batch_size=_batch(), limit=limit
    )
    return _then(moment, limit, sent)


EXPIRE_POINTS = JobSpec(
    "rewards.expire_points", expire_points, cron=Schedule(hour=2, minute=5), timeout_seconds=3600
)
REMIND_EXPIRING_POINTS = JobSpec(
    "rewards.remind_expiring_points",
    remind_expiring_points,
    cron=Schedule(hour=2, minute=35),
    timeout_seconds=3600,
)

EXPIRY_JOBS = (EXPIRE_POINTS, REMIND_EXPIRING_POINTS)
