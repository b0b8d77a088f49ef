"""All SQL of the community's members projection."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.models import CommunityMember
from services.kernel.db import STANDS_ALONE, table_of, unnest_rows

_MEMBERS = table_of(CommunityMember)


@dataclass(frozen=True, slots=True)
class MemberProfile:
    """A member as a members event describes them. `joined_at` is written only on a row the
    upsert creates, or by `member.created`."""

    brand_id: uuid.UUID
    member_id: uuid.UUID
    display_name: str | None
    member_status: str
    joined_at: datetime


@dataclass(frozen=True, slots=True)
class MemberTier:
    """A member's tier from `tier.changed`; `joined_at` is written only on a row it creates."""

    brand_id: uuid.UUID
    member_id: uuid.UUID
    tier_id: uuid.UUID | None
    tier_name: str | None
    joined_at: datetime


class CommunityMemberRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, brand_id: uuid.UUID, member_id: uuid.UUID) -> CommunityMember | None:
        return await self.session.scalar(
            select(CommunityMember).where(
                CommunityMember.brand_id == brand_id, CommunityMember.member_id == member_id
            )
        )

    async def many(
        self, brand_id: uuid.UUID, member_ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, CommunityMember]:
        rows = await self.session.scalars(
            select(CommunityMember).where(
                CommunityMember.brand_id == brand_id, CommunityMember.member_id.in_(member_ids)
            )
        )
        return {row.member_id: row for row in rows}

    async def upsert_profile(
        self,
        *,
        brand_id: uuid.UUID,
        member_id: uuid.UUID,
        display_name: str | None,
        member_status: str,
        seen_at: datetime,
        joined: bool,
    ) -> None:
        await self.upsert_profiles(
            [MemberProfile(brand_id, member_id, display_name, member_status, seen_at)],
            joined=joined,
        )

    async def add_missing_profiles(self, profiles: Sequence[MemberProfile]) -> None:
        """Rows for members that have none, from what the members service answers for a
        request; a row already there (the projection's) is left as it is."""
        if profiles:
            await self.session.execute(
                _insert_profiles(profiles).on_conflict_do_nothing(), execution_options=STANDS_ALONE
            )

    async def upsert_profiles(self, profiles: Sequence[MemberProfile], *, joined: bool) -> None:
        """Insert or refresh members from members events, in one statement. `member.created`
        (`joined`) fixes `joined_at`; other events only set it on a row they create.

        At most one profile per member: a statement cannot update a row twice. An event of
        another brand naming the same member id changes nothing (the `where`).
        """
        if not profiles:
            return
        statement = _insert_profiles(profiles)
        set_: dict[str, object] = {
            "display_name": statement.excluded.display_name,
            "member_status": statement.excluded.member_status,
        }
        if joined:
            set_["joined_at"] = statement.excluded.joined_at
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[_MEMBERS.c.member_id],
                set_=set_,
                where=_MEMBERS.c.brand_id == statement.excluded.brand_id,
            )
        )

    async def upsert_tier(
        self,
        *,
        brand_id: uuid.UUID,
        member_id: uuid.UUID,
        tier_id: uuid.UUID | None,
        tier_name: str | None,
        seen_at: datetime,
    ) -> None:
        await self.upsert_tiers([MemberTier(brand_id, member_id, tier_id, tier_name, seen_at)])

    async def upsert_tiers(self, tiers: Sequence[MemberTier]) -> None:
        """Record tier changes, one per member, in one statement; the rewards stream may deliver
        one before the member's `member.created` arrives on the members stream, so it may create
        the row."""
        if not tiers:
            return
        columns = [
            _MEMBERS.c.member_id,
            _MEMBERS.c.brand_id,
            _MEMBERS.c.joined_at,
            _MEMBERS.c.tier_id,
            _MEMBERS.c.tier_name,
        ]
        rows = [(t.member_id, t.brand_id, t.joined_at, t.tier_id, t.tier_name) for t in tiers]
        statement = insert(_MEMBERS).from_select(columns, unnest_rows(columns, rows))
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[_MEMBERS.c.member_id],
                set_={
                    "tier_id": statement.excluded.tier_id,
                    "tier_name": statement.excluded.tier_name,
                },
                where=_MEMBERS.c.brand_id == statement.excluded.brand_id,
            )
        )

    async def suspend(
        self, brand_id: uuid.UUID, member_id: uuid.UUID, until: datetime | None
    ) -> None:
        """Suspend from the community until `until`; None lifts a suspension."""
        await self.session.execute(
            update(CommunityMember)
            .where(CommunityMember.brand_id == brand_id, CommunityMember.member_id == member_id)
            .values(suspended_until=until)
        )


def _insert_profiles(profiles: Sequence[MemberProfile]) -> PgInsert:
    columns = [
        _MEMBERS.c.member_id,
        _MEMBERS.c.brand_id,
        _MEMBERS.c.display_name,
        _MEMBERS.c.member_status,
        _MEMBERS.c.joined_at,
    ]
    rows = [
        (p.member_id, p.brand_id, p.display_name, p.member_status, p.joined_at) for p in profiles
    ]
    return insert(_MEMBERS).from_select(columns, unnest_rows(columns, rows))
