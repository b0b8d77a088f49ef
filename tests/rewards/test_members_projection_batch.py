"""Rewards' member projection as a batch leaves what the same events leave one by one."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.events import Event
from services.rewards.ledger.projection import apply_member_event, apply_member_events
from services.rewards.models import Account
from tests.conftest import BrandFixture
from tests.member_events import created, mixed_history


async def accounts(session: AsyncSession, member_ids: Sequence[uuid.UUID]) -> list[Any]:
    """Each member's projected columns, in the order of `member_ids` (external ids untagged)."""
    rows = {
        row.member_id: row
        for row in await session.scalars(select(Account).where(Account.member_id.in_(member_ids)))
    }
    return [
        None
        if (row := rows.get(m)) is None
        else (
            row.brand_id,
            None if row.external_id is None else row.external_id.split("-", 1)[1],
            row.birthday,
            row.member_status,
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

    expected = await accounts(session, singly)
    assert await accounts(session, together) == expected
    # Spot checks of the rules the comparison relies on.
    assert expected[0] == (brand.id, "0", date(1990, 5, 17), "suspended")  # the update
    assert expected[3] == (brand.id, None, None, "erased")


async def test_another_brands_event_in_a_batch_changes_nothing(
    session: AsyncSession, brand: BrandFixture, other_brand: BrandFixture
) -> None:
    member_id = uuid.uuid4()
    await apply_member_events(session, [created(brand.id, member_id, 0, "Ada", "t-1")])
    events: list[Event] = [created(other_brand.id, member_id, 1, "Mallory", "t-2")]
    await apply_member_events(session, events)
    session.expire_all()
    assert await accounts(session, [member_id]) == [(brand.id, "1", None, "active")]
