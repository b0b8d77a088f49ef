"""Members rewards has not heard of yet: asked of the members service, on requests only.

Rewards knows members from `member.*` events (`projection.py`), which arrive a moment after the
member is created. When a request names a member rewards has no account for (a CRM's first
purchase, an app's first screen after sign-up), rewards asks the members service
(`kernel.member_directory`) and, if the member is there, opens the account the projection would
have opened: a CRM answered 404 might drop the purchase. The event still arrives later and is
applied as usual; an account already there is left as it is.

Consumers and jobs do not ask: a consumer's event that names an unknown member is retried until
the projection has caught up, and jobs only work on accounts that exist.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Protocol

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.db import release_connection
from services.kernel.member_directory import DirectoryMember, MemberDirectory
from services.rewards.ledger.repository import LedgerRepository, MemberProfile


class MemberSource(Protocol):
    async def find(
        self,
        session: AsyncSession,
        brand_id: uuid.UUID,
        *,
        member_id: uuid.UUID | None = None,
        external_id: str | None = None,
    ) -> DirectoryMember | None:
        """The brand's member as the members service has them, writing nothing; None when it
        has no such member. The session gives its connection back meanwhile, as in
        `open_account`."""
        ...

    async def open_account(
        self,
        session: AsyncSession,
        brand_id: uuid.UUID,
        *,
        member_id: uuid.UUID | None = None,
        external_id: str | None = None,
    ) -> bool:
        """Opens the account of a member of the brand that rewards has none for yet; False
        when the members service has no such member either. A session that has neither written
        nor locked a row gives its connection back while the members service answers
        (`db.release_connection`): what it read must be read again."""
        ...


class MembersService:
    """Accounts opened from what the members service answers."""

    def __init__(self, directory: MemberDirectory) -> None:
        self._directory = directory

    async def find(
        self,
        session: AsyncSession,
        brand_id: uuid.UUID,
        *,
        member_id: uuid.UUID | None = None,
        external_id: str | None = None,
    ) -> DirectoryMember | None:
        # The members service may be in this process, on the same pool.
        await release_connection(session)
        return await self._directory.find(brand_id, member_id=member_id, external_id=external_id)

    async def open_account(
        self,
        session: AsyncSession,
        brand_id: uuid.UUID,
        *,
        member_id: uuid.UUID | None = None,
        external_id: str | None = None,
    ) -> bool:
        found = await self.find(session, brand_id, member_id=member_id, external_id=external_id)
        if found is None:
            return False
        # The columns `projection._profile` takes from a `member.created`.
        profile = MemberProfile(
            brand_id=brand_id,
            member_id=found.member_id,
            external_id=found.external_id,
            birthday=found.birthday,
            member_status=found.status,
        )
        await LedgerRepository(session).add_missing_accounts([profile])
        return True


async def members_source(request: Request) -> MemberSource:
    return MembersService(MemberDirectory.of(request.app, caller="rewards"))


MembersDep = Annotated[MemberSource, Depends(members_source)]
