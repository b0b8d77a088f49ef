"""Members rewards has not heard of yet: asked of the members service, on requests only.

Rewards knows members from `member.*` events (`projection.py`), which arrive a moment after the
member is created. A CRM that creates a member and posts their first purchase at once, or an app
that opens its home screen just after sign-up, must not be told the member does not exist (a
CRM may drop a purchase it was answered 404 for). So when a request names a member rewards has
no account for, it asks the members service (with a service token of the brand that reads
members and nothing else) and, if the member is there, opens the account the projection would
have opened. The event still arrives later and is applied as usual; an account already there is
left as it is.

Consumers and jobs do not ask: a consumer's event that names an unknown member is retried until
the projection has caught up, and jobs only work on accounts that exist.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.auth import Scope
from services.kernel.clients import Peers, ServiceClient
from services.kernel.errors import ServiceUnavailable
from services.rewards.ledger.repository import LedgerRepository, MemberProfile

_SCOPES = frozenset({Scope.MEMBERS_READ})


class MemberSource(Protocol):
    async def open_account(
        self,
        session: AsyncSession,
        brand_id: uuid.UUID,
        *,
        member_id: uuid.UUID | None = None,
        external_id: str | None = None,
    ) -> bool:
        """Opens the account of a member of the brand that rewards has none for yet; False
        when the members service has no such member either."""
        ...


class MembersService:
    """The members service, asked over HTTP (in process when this app hosts it)."""

    def __init__(self, peers: Peers) -> None:
        self._peers = peers

    async def open_account(
        self,
        session: AsyncSession,
        brand_id: uuid.UUID,
        *,
        member_id: uuid.UUID | None = None,
        external_id: str | None = None,
    ) -> bool:
        profile = await self._profile(brand_id, member_id, external_id)
        if profile is None:
            return False
        await LedgerRepository(session).add_missing_accounts([profile])
        return True

    async def _profile(
        self, brand_id: uuid.UUID, member_id: uuid.UUID | None, external_id: str | None
    ) -> MemberProfile | None:
        headers = self._peers.acting_for(brand_id, _SCOPES, caller="rewards")
        async with ServiceClient.open("members", self._peers, headers=headers) as members:
            if member_id is not None:
                found = await members.get_json(f"/members/v1/members/{member_id}")
            else:
                page = await members.get_json(
                    "/members/v1/members", params={"external_id": external_id or "", "limit": 1}
                )
                items = page.get("items") if isinstance(page, dict) else None
                if not isinstance(items, list):
                    raise ServiceUnavailable("The members service's list of members is not a page.")
                found = items[0] if items else None
        if found is None:
            return None
        return _profile_of(brand_id, found)


def _profile_of(brand_id: uuid.UUID, member: Any) -> MemberProfile:
    """The account's columns from a `MemberRead`, as `projection._profile` takes them from a
    `member.created` event."""
    try:
        return MemberProfile(
            brand_id=brand_id,
            member_id=uuid.UUID(member["id"]),
            external_id=member["external_id"],
            birthday=date.fromisoformat(member["birthday"]) if member["birthday"] else None,
            member_status=member["status"],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ServiceUnavailable(
            f"The members service answered a member rewards cannot read: {exc!r}."
        ) from exc


async def members_source(request: Request) -> MemberSource:
    """The app's one `MembersService` (it holds nothing of a request's)."""
    source: MemberSource | None = getattr(request.app.state, "rewards_members", None)
    if source is None:
        source = request.app.state.rewards_members = MembersService(Peers.of(request.app))
    return source


MembersDep = Annotated[MemberSource, Depends(members_source)]
