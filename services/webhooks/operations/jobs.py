"""The retention job: payloads (personal data, often) are kept
`settings.webhooks_retention_days` (90 by default), then dropped with their delivery log."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.jobs import JobSpec, Schedule
from services.kernel.settings import get_settings
from services.webhooks.operations import service

RETENTION_JOB_NAME = "webhooks.purge_messages"


async def purge_messages(session: AsyncSession) -> int:
    # The worker's own settings (`KINFOLK_*`), as it was started with.
    retention = timedelta(days=get_settings().webhooks_retention_days)
    return await service.purge_messages(session, retention)


# Daily, at a quiet time (UTC) apart from the kernel's outbox and inbox cleanups (3:17, 3:47).
# A first purge after a long pause may take a while: it gets an hour.
RETENTION_JOB = JobSpec(
    RETENTION_JOB_NAME, purge_messages, cron=Schedule(hour=3, minute=40), timeout_seconds=3_600
)
