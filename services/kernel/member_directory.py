"""One member as the members service has them, for a service that has not heard of them yet.

Services know members from `member.*` events, which arrive a moment after the member is made.
A request that names a member its service has no row for yet (a CRM's first purchase, an app's
first screen after sign-up) asks here instead of answering 404, and the service keeps what it
needs, as its projection would have. The call carries a service token of the brand that reads
members and nothing else (a member's own token could not read the member by external id).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from starlette.applications import Starlette

from services.kernel.auth import Scope
from services.kernel.clients import Peers, ServiceClient
from services.kernel.errors import ServiceUnavailable

_SCOPES = frozenset({Scope.MEMBERS_READ})


@dataclass(frozen=True, slots=True)
class DirectoryMember:
    """What `member.created` would have told a service."""

    member_id: uuid.UUID
    external_id: str | None
    display_name: str | None
    birthday: date | None
    status: str
    created_at: datetime


class MemberDirectory:
    """The members service, asked over HTTP (in process when this app hosts it) by `caller`."""

    def __init__(self, peers: Peers, *, caller: str) -> None:
        self._peers = peers
        self._caller = caller

    @classmethod
    def of(cls, app: Starlette, *, caller: str) -> MemberDirectory:
        """The app's directory for `caller` (it holds nothing of a request's)."""
        held: dict[str, MemberDirectory] | None = getattr(app.state, "member_directories", None)
        if held is None:
            held = app.state.member_directories = {}
        if caller not in held:
            held[caller] = cls(Peers.of(app), caller=caller)
        return held[caller]

    async def find(
        self,
        brand_id: uuid.UUID,
        *,
        member_id: uuid.UUID | None = None,
        external_id: str | None = None,
    ) -> DirectoryMember | None:
        """The brand's member by id or external id; None when the members service has no such
        member. `ServiceUnavailable` when it cannot be asked."""
        headers = self._peers.acting_for(brand_id, _SCOPES, caller=self._caller)
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
        return None if found is None else _member(found)


def _member(found: Any) -> DirectoryMember:
    try:
        return DirectoryMember(
            member_id=uuid.UUID(found["id"]),
            external_id=found["external_id"],
            display_name=found["display_name"],
            birthday=date.fromisoformat(found["birthday"]) if found["birthday"] else None,
            status=found["status"],
            created_at=datetime.fromisoformat(found["created_at"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ServiceUnavailable(
            f"The members service answered a member that cannot be read: {exc!r}."
        ) from exc
