"""Minting a member's token from the command line (`kinfolk token`), importing only what that
needs: the members service and the kernel's database and token codec, not every service."""

from __future__ import annotations

import uuid
from datetime import timedelta

from services.kernel.auth import MemberTokenCodec
from services.kernel.db import Database
from services.kernel.settings import Settings
from services.members import service as members_service


async def member_token(
    settings: Settings, database_url: str, brand_id: uuid.UUID, member: str, ttl: timedelta
) -> str | None:
    """A JWT for a member given by id or external id, or None when the brand has no such member."""
    database = Database(database_url)
    try:
        async with database.unit_of_work() as session:
            found = await members_service.find_member(session, brand_id, member)
    finally:
        await database.dispose()
    if found is None:
        return None
    return MemberTokenCodec(settings).issue(brand_id, found.id, ttl)
