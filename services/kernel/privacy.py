"""A service's part of a member's privacy export: `GET /<service>/v1/privacy/members/{id}`.

The members service answers a member's (or staff's) export request with its own data and each
other service's part, asked of them with the caller's `Authorization` (the privacy contract in
`kernel.clients`). A service declares what it keeps on a member as `PrivacySection`s, each a
query for rows of its own tables, and `privacy_router` serves them: every row the service keeps
on the member, as stored, so the export is whole by construction rather than by remembering to
add each new table to a hand-written summary.

A section holds what is the member's: what they did (their posts, purchases, votes), what the
service keeps about them (their account, their lists), never what others did about them that
they are not told of (who blocked or muted them, who reported them).

Who may ask: the member, for themselves, and staff of the brand with `members:read`. Another
member is answered 404, as for a member that does not exist; the answer to staff of another
brand is as for a member the service holds nothing on: `{}`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic_core import to_jsonable_python
from sqlalchemy import Select, Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.auth import MemberPrincipal, PrincipalDep, Scope, StaffPrincipal
from services.kernel.db import SessionDep
from services.kernel.errors import Forbidden, NotFound
from services.kernel.routing import Router

# (brand id, member id) -> the section's rows, in a stable order.
RowsQuery = Callable[[uuid.UUID, uuid.UUID], Select[Any]]


@dataclass(frozen=True, slots=True)
class PrivacySection:
    """One kind of thing a service keeps on a member: `name` in the export, and its rows."""

    name: str
    rows: RowsQuery


def owned(
    name: str, table: Table, member_column: str = "member_id", *order_by: str
) -> PrivacySection:
    """The common section: the rows of `table` of the brand whose `member_column` is the
    member, ordered by `order_by` (default: the primary key)."""
    member = table.c[member_column]
    order = [table.c[column] for column in order_by] or list(table.primary_key.columns)

    def rows(brand_id: uuid.UUID, member_id: uuid.UUID) -> Select[Any]:
        mine = select(table).where(table.c.brand_id == brand_id, member == member_id)
        return mine.order_by(*order)

    return PrivacySection(name, rows)


class PrivacyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def export(
        self, brand_id: uuid.UUID, member_id: uuid.UUID, sections: Sequence[PrivacySection]
    ) -> dict[str, list[dict[str, Any]]]:
        """Each section with rows, its rows as JSON objects (column: value); none without."""
        export: dict[str, list[dict[str, Any]]] = {}
        for section in sections:
            result = await self.session.execute(section.rows(brand_id, member_id))
            rows = [to_jsonable_python(dict(row)) for row in result.mappings()]
            if rows:
                export[section.name] = rows
        return export


def _admitted(principal: StaffPrincipal | MemberPrincipal, member_id: uuid.UUID) -> None:
    if isinstance(principal, MemberPrincipal):
        if principal.member_id != member_id:
            raise NotFound(f"No member {member_id} here: a member may export only their own data.")
        return
    if not principal.has(Scope.MEMBERS_READ):
        raise Forbidden(f"This API key lacks the `{Scope.MEMBERS_READ.value}` scope.")


def privacy_router(service: str, sections: Sequence[PrivacySection]) -> Router:
    """The service's privacy route, serving `sections` (set `privacy_export=True` on its
    module so that the members service asks it)."""
    names = [section.name for section in sections]
    if len(set(names)) != len(names):
        raise ValueError(f"{service}: privacy sections share a name: {names}")
    router = Router(prefix=f"/{service}/v1", tags=[f"{service}: privacy"])

    @router.get(
        "/privacy/members/{member_id}",
        response_model=dict[str, list[dict[str, Any]]],
        summary="Everything this service keeps on a member, for their privacy export",
        description=(
            f"Sections (each only when it holds rows): {', '.join(names)}. Rows are as stored. "
            "For the member themselves, or staff with `members:read`; the members service's "
            "export (`/members/v1/me/export`) gathers every service's answer."
        ),
        responses={
            403: {"description": "Forbidden: a key without `members:read`"},
            404: {"description": "NotFound: another member's data"},
        },
        name=f"{service}_privacy_export",
    )
    async def privacy_export(
        member_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
    ) -> dict[str, list[dict[str, Any]]]:
        _admitted(principal, member_id)
        return await PrivacyRepository(session).export(principal.brand_id, member_id, sections)

    return router
