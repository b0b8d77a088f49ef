"""Counting members' actions toward the challenges they joined. Functions here never commit.

An action counts toward each of the member's challenges that has a step for it, if it happened
(the event's `occurred_at`) inside the challenge's window and after the member joined. Each
subject counts once per challenge (a post, a comment, a reacted-to post or comment, an
experience session), however often an event reports it. Steps count side by side; when every
step has reached its target the participation is complete, exactly once: `challenge.completed`
is emitted and the challenge's badge awarded, in the same transaction.

When a post or comment is removed, the actions it gave are withdrawn from the member's
challenges that are not complete yet (a completed challenge stays complete). Streaks are
recomputed from the remaining active days after every change (see `streaks`).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.challenges.events import ChallengeCompleted, ChallengeCompletedData
from services.community.challenges.models import ChallengeAction, ChallengeParticipant
from services.community.challenges.repository import ChallengeRepository
from services.community.challenges.streaks import runs
from services.community.models import OUTBOX
from services.community.reputation import badges
from services.community.reputation.models import BadgeSource


async def taking_part(
    session: AsyncSession, members: Collection[tuple[uuid.UUID, uuid.UUID]]
) -> set[tuple[uuid.UUID, uuid.UUID]]:
    """Those of the (brand, member) pairs who joined a challenge: nobody else's actions count or
    are withdrawn."""
    return await ChallengeRepository(session).taking_part(members)


async def record_action(
    session: AsyncSession,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    action: ChallengeAction,
    subject_id: uuid.UUID,
    *,
    source_event_id: uuid.UUID,
    at: datetime,
) -> None:
    challenges = ChallengeRepository(session)
    day = at.astimezone(UTC).date()
    for participant in await challenges.counting_for(brand_id, member_id, action, at):
        counted = await challenges.add_action(
            participant, action, subject_id, source_event_id=source_event_id, at=at, day=day
        )
        if not counted:
            continue
        await _refresh_streaks(challenges, participant)
        if participant.completed_at is None:
            await _complete_if_done(session, challenges, participant, at)


async def withdraw(
    session: AsyncSession, brand_id: uuid.UUID, member_id: uuid.UUID, subject_id: uuid.UUID
) -> None:
    challenges = ChallengeRepository(session)
    for challenge_id in await challenges.withdraw_actions(brand_id, member_id, subject_id):
        participant = await challenges.lock_participant(challenge_id, member_id)
        if participant is not None:
            await _refresh_streaks(challenges, participant)


async def _refresh_streaks(
    challenges: ChallengeRepository, participant: ChallengeParticipant
) -> None:
    found = runs(await challenges.active_days(participant.challenge_id, participant.member_id))
    await challenges.set_streaks(
        participant, streak=found.last, longest=found.longest, last=found.last_day
    )


async def _complete_if_done(
    session: AsyncSession,
    challenges: ChallengeRepository,
    participant: ChallengeParticipant,
    at: datetime,
) -> None:
    key = (participant.challenge_id, participant.member_id)
    counts = (await challenges.counts([participant.challenge_id], [participant.member_id])).get(
        key, {}
    )
    steps = (await challenges.steps([participant.challenge_id]))[participant.challenge_id]
    if not all(counts.get(step.action, 0) >= step.target for step in steps):
        return
    if not await challenges.complete(participant, at):
        return
    challenge = await challenges.get(participant.brand_id, participant.challenge_id)
    assert challenge is not None  # the participant row refers to it
    await OUTBOX.add(
        session,
        ChallengeCompleted(
            brand_id=challenge.brand_id,
            subject_id=participant.member_id,
            occurred_at=at,
            data=ChallengeCompletedData(
                challenge_id=challenge.id,
                member_id=participant.member_id,
                points=challenge.points,
                badge_id=challenge.badge_id,
            ),
        ),
    )
    if challenge.badge_id is not None:
        await badges.award_by_id(
            session,
            challenge.brand_id,
            challenge.badge_id,
            participant.member_id,
            source=BadgeSource.CHALLENGE,
            challenge_id=challenge.id,
            at=at,
        )
