"""An erasure and a member's interaction handled at the same time, by two consumers in two
transactions: whichever takes the member's row first, no interaction of the member survives."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from recommender.intake.interactions import apply_interaction_events
from recommender.intake.members import apply_member_events
from recommender.store.models import Interaction, MemberFacts
from services.community.posts.events import ReactionAdded, ReactionData, ReactionKind
from services.kernel.clock import utcnow
from services.kernel.db import Database
from services.kernel.events import Event
from services.kernel.ids import new_id
from services.members import service as members_service
from services.members.events import MemberErased, MemberErasedData
from tests.conftest import purge_brand

# Long enough for the second transaction to reach the lock and wait on it.
WAIT = 0.3


@pytest.fixture
async def brand_id(engine_database: Database) -> AsyncIterator[uuid.UUID]:
    async with engine_database.unit_of_work() as session:
        brand, _ = await members_service.create_brand(session, f"Race {uuid.uuid4().hex[:6]}")
    yield brand.id
    await purge_brand(engine_database, brand.id)


def reaction(brand_id: uuid.UUID, member_id: uuid.UUID) -> Event:
    return ReactionAdded(
        brand_id=brand_id,
        subject_id=member_id,
        data=ReactionData(
            member_id=member_id,
            kind=ReactionKind.LOVE,
            post_id=new_id(),
            comment_id=None,
            target_author_id=new_id(),
        ),
    )


def erasure(brand_id: uuid.UUID, member_id: uuid.UUID) -> Event:
    return MemberErased(
        brand_id=brand_id,
        subject_id=member_id,
        data=MemberErasedData(member_id=member_id, erased_at=utcnow()),
    )


async def left_behind(database: Database, member_id: uuid.UUID) -> tuple[int, bool, bool]:
    """The member's interactions, whether their row is erased and marked for a fold-in."""
    async with database.unit_of_work() as session:
        count = await session.scalar(
            select(func.count()).select_from(Interaction).where(Interaction.member_id == member_id)
        )
        facts = await session.get(MemberFacts, member_id)
        assert facts is not None
        return int(count or 0), facts.erased, facts.stale_since is not None


async def test_an_erasure_waits_for_an_interaction_in_flight_then_deletes_it(
    engine_database: Database, brand_id: uuid.UUID
) -> None:
    member_id = new_id()
    async with engine_database.unit_of_work() as interacting:
        await apply_interaction_events(interacting, [reaction(brand_id, member_id)])

        async def erase() -> None:
            async with engine_database.unit_of_work() as erasing:
                await apply_member_events(erasing, [erasure(brand_id, member_id)])

        erasing = asyncio.create_task(erase())
        await asyncio.sleep(WAIT)
        assert not erasing.done()  # waiting for the member's row
    await erasing
    assert await left_behind(engine_database, member_id) == (0, True, False)


async def test_an_interaction_arriving_during_an_erasure_is_not_written(
    engine_database: Database, brand_id: uuid.UUID
) -> None:
    member_id = new_id()
    async with engine_database.unit_of_work() as session:
        await apply_interaction_events(session, [reaction(brand_id, member_id)])
    async with engine_database.unit_of_work() as erasing:
        await apply_member_events(erasing, [erasure(brand_id, member_id)])

        async def interact() -> None:
            async with engine_database.unit_of_work() as interacting:
                await apply_interaction_events(interacting, [reaction(brand_id, member_id)])

        interacting = asyncio.create_task(interact())
        await asyncio.sleep(WAIT)
        assert not interacting.done()  # waiting for the member's row
    await interacting
    assert await left_behind(engine_database, member_id) == (0, True, False)
