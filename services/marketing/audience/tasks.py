"""Jobs of the member 360."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.jobs import JobSpec
from services.marketing.audience import service

REBUILD_JOB_NAME = "marketing.rebuild_members"


async def rebuild_members(session: AsyncSession, brand_id: str) -> int:
    return await service.refresh_brand(session, uuid.UUID(brand_id))


REBUILD_JOB = JobSpec(name=REBUILD_JOB_NAME, function=rebuild_members)
