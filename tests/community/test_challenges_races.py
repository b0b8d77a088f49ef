"""Challenge completion under parallel consumers, on committed data: many actions that each
complete the challenge, handled at once, complete it exactly once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select

from services.community.challenges.consumer import CHALLENGES_CONSUMER
from services.community.challenges.models import Challenge, ChallengeActionRecord
from services.community.experiences.events import CheckedInData, ExperienceCheckedIn
from services.community.experiences.models import CheckInMethod
from services.community.models import OUTBOX
from services.community.reputation.models import MemberBadge
from services.kernel.db import Database
from services.kernel.settings import Settings
from tests.community.engagement_helpers import Committed, committed_brand

RACERS = 8


@pytest.fixture
async def committed(
    base_settings: Settings, engine_database: Database, redis: Redis
) -> AsyncIterator[Committed]:
    async with committed_brand(base_settings, engine_database, redis) as brand:
        yield brand


async def test_parallel_actions_complete_a_challenge_exactly_once(committed: Committed) -> None:
    client, staff = committed.client, committed.staff
    member = await committed.member("Ada")
    badge = await client.post("/community/v1/badges", json={"name": "Regular"}, headers=staff)
    assert badge.status_code == 201, badge.text
    created = await client.post(
        "/community/v1/challenges",
        json={
            "title": "Come to one event",
            "starts_at": "2020-01-01T00:00:00Z",
            "ends_at": "2099-01-01T00:00:00Z",
            "points": 100,
            "badge_id": badge.json()["id"],
            "steps": [{"action": "experience", "target": 1}],
        },
        headers=staff,
    )
    assert created.status_code == 201, created.text
    challenge_id = uuid.UUID(created.json()["id"])
    joined = await client.post(
        f"/community/v1/challenges/{challenge_id}/participants", headers=member.headers
    )
    assert joined.status_code == 201, joined.text

    events = [
        ExperienceCheckedIn(
            brand_id=committed.brand_id,
            subject_id=member.id,
            data=CheckedInData(
                booking_id=uuid.uuid4(),
                member_id=member.id,
                session_id=uuid.uuid4(),
                experience_id=uuid.uuid4(),
                method=CheckInMethod.HOST,
            ),
        )
        for _ in range(RACERS)
    ]
    # Every event twice: the inbox lets each take effect once, even delivered in parallel.
    await committed.deliver_all(CHALLENGES_CONSUMER, events + events)

    async with committed.database.unit_of_work() as session:
        table = OUTBOX.table
        types = list(
            await session.scalars(
                select(table.c.type).where(
                    table.c.brand_id == committed.brand_id,
                    table.c.type.in_(["challenge.completed", "badge.awarded"]),
                )
            )
        )
        assert sorted(types) == ["badge.awarded", "challenge.completed"]
        assert (
            await session.scalar(
                select(func.count())
                .select_from(MemberBadge)
                .where(MemberBadge.member_id == member.id)
            )
            == 1
        )
        assert (
            await session.scalar(
                select(func.count())
                .select_from(ChallengeActionRecord)
                .where(ChallengeActionRecord.member_id == member.id)
            )
            == RACERS
        )
        challenge = await session.get(Challenge, challenge_id)
        assert challenge is not None
        assert (challenge.participant_count, challenge.completed_count) == (1, 1)
