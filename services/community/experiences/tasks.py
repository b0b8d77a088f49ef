"""Scheduled work of experiences."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.experiences import bookings
from services.kernel.jobs import JobSpec, Schedule


async def expire_payments(session: AsyncSession) -> int:
    """Bookings whose payment rewards has not answered in time give their seats back."""
    return await bookings.expire_overdue_payments(session)


EXPIRE_PAYMENTS = JobSpec(
    name="community.expire_experience_payments",
    function=expire_payments,
    cron=Schedule(second=0),  # every minute
)
