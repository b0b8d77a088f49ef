"""The community's member projection as a batch leaves what the same events leave one by one,
join dates included."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.members.projection import apply_member_event, apply_member_events
from services.community.models import CommunityMember
from tests.conftest import BrandFixture
from tests.member_events import at, mixed_history


async def members(session: AsyncSession, member_ids: Sequence[uuid.UUID]) -> list[Any]:
    """Each member's projected columns, in the order of `member_ids`."""
    rows = {
        row.member_id: row
        for row in await session.scalars(
            select(CommunityMember).where(CommunityMember.member_id.in_(member_ids))
        )
    }
    return [
        None
        if (row := rows.get(m)) is None
        else (
            row.brand_id,
            row.display_name,
            row.member_status,
            row.joined_at,
            row.tier_id,
            row.tier_name,
        )
        for m in member_ids
    ]


async def test_a_batch_ends_where_the_same_events_one_by_one_end(
    session: AsyncSession, brand: BrandFixture
) -> None:
    singly, before, batch = mixed_history(brand.id, "single")
    for event in [*before, *batch]:
        await apply_member_event(session, event)

    together, before, batch = mixed_history(brand.id, "batch")
    await apply_member_events(session, before)
    await apply_member_events(session, batch)
    session.expire_all()

    expected = await members(session, singly)
    assert await members(session, together) == expected
    # Spot checks of the rules the comparison relies on: names and join dates.
    names = [row[1:4] for row in expected]
    assert names == [
        ("Ada L.", "suspended", at(0)),  # created then updated: the update, joined when created
        ("Bo", "active", at(0)),  # no member.created: joined at its first event, the tier change
        ("Di", "active", at(2)),  # member.created fixes the join date after a tier change
        (None, "erased", at(0)),
        ("Known Again", "active", at(-10)),  # known before: its join date stays
        ("Eve 2", "active", at(5)),  # created twice: the last creation counts
    ]
    assert [row[5] for row in expected] == [None, "Gold", "Silver", "Bronze", None, None]
