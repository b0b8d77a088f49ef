"""Reputation under parallel consumers, on committed data: many reactions to one member's post,
handled at once, add up exactly, and each pays once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select

from services.community.models import CommunityMember
from services.community.posts.events import ReactionAdded, ReactionData, ReactionKind
from services.community.reputation.consumer import REPUTATION_CONSUMER
from services.community.reputation.models import ReputationEvent
from services.kernel.db import Database
from services.kernel.settings import Settings
from tests.community.engagement_helpers import Committed, committed_brand

RACERS = 12


@pytest.fixture
async def committed(
    base_settings: Settings, engine_database: Database, redis: Redis
) -> AsyncIterator[Committed]:
    async with committed_brand(base_settings, engine_database, redis) as brand:
        yield brand


async def test_parallel_reactions_add_up_exactly(committed: Committed) -> None:
    author = await committed.member("Ada")
    fans = [await committed.member(f"Fan {n}") for n in range(RACERS)]
    post_id = uuid.uuid4()
    events = [
        ReactionAdded(
            brand_id=committed.brand_id,
            subject_id=fan.id,
            data=ReactionData(
                member_id=fan.id,
                kind=ReactionKind.LOVE,
                post_id=post_id,
                comment_id=None,
                target_author_id=author.id,
            ),
        )
        for fan in fans
    ]
    # Each event twice, all at once: the member's row lock and the inbox keep the sum exact.
    await committed.deliver_all(REPUTATION_CONSUMER, events + events)

    async with committed.database.unit_of_work() as session:
        reputation = await session.scalar(
            select(CommunityMember.reputation).where(CommunityMember.member_id == author.id)
        )
        rows = await session.scalar(
            select(func.count())
            .select_from(ReputationEvent)
            .where(ReputationEvent.member_id == author.id)
        )
        assert (reputation, rows) == (RACERS, RACERS)
