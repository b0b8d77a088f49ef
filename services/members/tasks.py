"""The members service's scheduled job: erased members' dead letters. Run by hand with
`enqueue(redis, "members.forget_erased_dead_letters")`."""

from __future__ import annotations

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.dead_letters import forget_dead_letters
from services.kernel.jobs import JobSpec, Schedule
from services.members.repository import MemberRepository


async def forget_erased_dead_letters(session: AsyncSession, *, redis: Redis) -> int:
    """Deletes every dead letter, in any service's stream, that names an erased member."""
    return await forget_dead_letters(redis, MemberRepository(session).erased_among)


# Hourly: an erased member's data leaves the dead letters within the hour, including the events
# about them parked after the erasure.
FORGET_ERASED_DEAD_LETTERS = JobSpec(
    "members.forget_erased_dead_letters",
    forget_erased_dead_letters,
    cron=Schedule(minute=23),
    needs_redis=True,
)

MEMBER_JOBS = (FORGET_ERASED_DEAD_LETTERS,)
