"""Challenges: staff define them, members join them and see their progress. Functions here never
commit. How actions are counted is in `progress`.

**Defining.** A challenge has a window (`starts_at` < `ends_at`), one to five steps (each a count
of one action: posts, prompt answers, experiences attended, reactions, comments; each action in
one step only), optional advertised points and an optional badge of the brand (`UnknownBadge`,
422). Once it has started its steps and start are fixed (`ChallengeStarted`, 409); the rest may
change (ending it early included). A challenge nobody joined may be deleted; one with
participants stays (`ChallengeHasParticipants`, 409).

**Joining.** Members opt in: a challenge is something one decides to take on, and its streaks
mean "days in a row while in it", so nothing is counted for a member who never chose it. A
member may join any time before the end (`ChallengeClosed`, 409 after it), before the start
included; joining twice is harmless (200 with the progress). Actions count from the later of the
join and the start, until the end. There is no audience: every member of the brand may join.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.challenges.errors import (
    ChallengeClosed,
    ChallengeHasParticipants,
    ChallengeNotFound,
    ChallengeStarted,
    UnknownBadge,
)
from services.community.challenges.models import Challenge, ChallengeParticipant, ChallengeStep
from services.community.challenges.repository import ChallengeRepository
from services.community.challenges.schemas import (
    ChallengeCreate,
    ChallengeRead,
    ChallengeUpdate,
    MyChallengeRead,
    ProgressRead,
    StepIn,
    StepProgress,
    StepRead,
    Streak,
)
from services.community.challenges.streaks import current
from services.community.models import CommunityMember
from services.kernel.clock import utcnow
from services.kernel.errors import ValidationFailed
from services.kernel.ids import new_id
from services.kernel.pagination import Page, PageRequest


def _invalid(field: str, message: str) -> list[dict[str, Any]]:
    return [{"loc": ["body", field], "msg": message, "type": "value_error"}]


def _not_found(challenge_id: uuid.UUID) -> ChallengeNotFound:
    return ChallengeNotFound(f"No challenge {challenge_id} in this brand.")


async def _check_badge(
    challenges: ChallengeRepository, brand_id: uuid.UUID, badge_id: uuid.UUID | None
) -> None:
    if badge_id is not None and not await challenges.badge_exists(brand_id, badge_id):
        raise UnknownBadge(
            _invalid("badge_id", f"no badge {badge_id} in this brand; use GET /community/v1/badges")
        )


def _step_pairs(steps: Sequence[StepIn]) -> list[tuple[Any, int]]:
    return [(step.action, step.target) for step in steps]


# --- Views --------------------------------------------------------------------------------------


def challenge_read(challenge: Challenge, steps: Sequence[ChallengeStep]) -> ChallengeRead:
    return ChallengeRead(
        id=challenge.id,
        title=challenge.title,
        description=challenge.description,
        starts_at=challenge.starts_at,
        ends_at=challenge.ends_at,
        points=challenge.points,
        badge_id=challenge.badge_id,
        steps=[StepRead.of(step) for step in steps],
        participant_count=challenge.participant_count,
        completed_count=challenge.completed_count,
        created_at=challenge.created_at,
    )


def progress_read(
    participant: ChallengeParticipant,
    steps: Sequence[ChallengeStep],
    counts: dict[Any, int],
    now: datetime,
) -> ProgressRead:
    return ProgressRead(
        member_id=participant.member_id,
        joined_at=participant.joined_at,
        completed_at=participant.completed_at,
        steps=[
            StepProgress(
                action=step.action,
                target=step.target,
                count=min(counts.get(step.action, 0), step.target),
                done=counts.get(step.action, 0) >= step.target,
            )
            for step in steps
        ],
        streak=Streak(
            current=current(participant.streak, participant.last_active_day, now.date()),
            longest=participant.longest_streak,
            last_active_day=participant.last_active_day,
        ),
    )


# --- Staff --------------------------------------------------------------------------------------


async def create_challenge(
    session: AsyncSession, brand_id: uuid.UUID, payload: ChallengeCreate
) -> ChallengeRead:
    challenges = ChallengeRepository(session)
    await _check_badge(challenges, brand_id, payload.badge_id)
    challenge = Challenge(
        id=new_id(),
        brand_id=brand_id,
        title=payload.title,
        description=payload.description,
        starts_at=payload.starts_at,
        ends_at=payload.ends_at,
        points=payload.points,
        badge_id=payload.badge_id,
        participant_count=0,
        completed_count=0,
        created_at=utcnow(),
    )
    await challenges.add(challenge)
    await challenges.replace_steps(challenge, _step_pairs(payload.steps))
    return await get_challenge(session, brand_id, challenge.id)


async def get_challenge(
    session: AsyncSession, brand_id: uuid.UUID, challenge_id: uuid.UUID
) -> ChallengeRead:
    challenges = ChallengeRepository(session)
    challenge = await challenges.get(brand_id, challenge_id)
    if challenge is None:
        raise _not_found(challenge_id)
    steps = await challenges.steps([challenge.id])
    return challenge_read(challenge, steps[challenge.id])


async def list_challenges(
    session: AsyncSession, brand_id: uuid.UUID, page: PageRequest
) -> Page[ChallengeRead]:
    challenges = ChallengeRepository(session)
    rows = await challenges.page(brand_id, page)
    steps = await challenges.steps([c.id for c in rows])
    return Page[ChallengeRead].of(
        rows, page, key=lambda c: c.id, item=lambda c: challenge_read(c, steps[c.id])
    )


async def update_challenge(
    session: AsyncSession,
    brand_id: uuid.UUID,
    challenge_id: uuid.UUID,
    payload: ChallengeUpdate,
    now: datetime | None = None,
) -> ChallengeRead:
    now = now or utcnow()
    challenges = ChallengeRepository(session)
    challenge = await challenges.get(brand_id, challenge_id, for_update=True)
    if challenge is None:
        raise _not_found(challenge_id)
    sent = payload.model_fields_set
    started = challenge.starts_at <= now
    if started and ("steps" in sent or "starts_at" in sent):
        raise ChallengeStarted(
            f"The challenge started at {challenge.starts_at.isoformat()}: its steps and start "
            "are fixed now."
        )
    starts_at = payload.starts_at if payload.starts_at is not None else challenge.starts_at
    ends_at = payload.ends_at if payload.ends_at is not None else challenge.ends_at
    if ends_at <= starts_at:
        raise ValidationFailed(_invalid("ends_at", "must be after starts_at"))
    if "badge_id" in sent:
        await _check_badge(challenges, brand_id, payload.badge_id)
    for field in sent - {"steps"}:
        setattr(challenge, field, getattr(payload, field))
    await session.flush()
    if payload.steps is not None:
        await challenges.replace_steps(challenge, _step_pairs(payload.steps))
    return await get_challenge(session, brand_id, challenge.id)


async def delete_challenge(
    session: AsyncSession, brand_id: uuid.UUID, challenge_id: uuid.UUID
) -> None:
    challenges = ChallengeRepository(session)
    challenge = await challenges.get(brand_id, challenge_id, for_update=True)
    if challenge is None:
        raise _not_found(challenge_id)
    if not await challenges.delete_if_unjoined(challenge):
        raise ChallengeHasParticipants()


async def participants(
    session: AsyncSession, brand_id: uuid.UUID, challenge_id: uuid.UUID, page: PageRequest
) -> Page[ProgressRead]:
    """Who joined, each with their progress, by member id (staff)."""
    challenges = ChallengeRepository(session)
    challenge = await challenges.get(brand_id, challenge_id)
    if challenge is None:
        raise _not_found(challenge_id)
    rows = await challenges.participant_page(challenge.id, page)
    steps = (await challenges.steps([challenge.id]))[challenge.id]
    counts = await challenges.counts([challenge.id], [p.member_id for p in rows])
    now = utcnow()
    return Page[ProgressRead].of(
        rows,
        page,
        key=lambda p: p.member_id,
        item=lambda p: progress_read(p, steps, counts.get((challenge.id, p.member_id), {}), now),
    )


# --- Members ------------------------------------------------------------------------------------


async def join(
    session: AsyncSession, member: CommunityMember, challenge_id: uuid.UUID
) -> tuple[MyChallengeRead, bool]:
    """Joins the member to the challenge; returns their view and whether they joined just now."""
    now = utcnow()
    challenges = ChallengeRepository(session)
    challenge = await challenges.get(member.brand_id, challenge_id, for_update=True)
    if challenge is None:
        raise _not_found(challenge_id)
    if challenge.ends_at <= now:
        raise ChallengeClosed(f"The challenge ended at {challenge.ends_at.isoformat()}.")
    joined = await challenges.join(challenge, member.member_id, now) is not None
    return await my_challenge(session, member, challenge_id), joined


async def my_challenge(
    session: AsyncSession, member: CommunityMember, challenge_id: uuid.UUID
) -> MyChallengeRead:
    challenges = ChallengeRepository(session)
    challenge = await challenges.get(member.brand_id, challenge_id)
    if challenge is None:
        raise _not_found(challenge_id)
    return (await _mine(challenges, member, [challenge]))[challenge.id]


async def my_challenges(
    session: AsyncSession, member: CommunityMember, page: PageRequest, *, joined_only: bool
) -> Page[MyChallengeRead]:
    """Challenges not ended yet, or (`joined_only`) every challenge I joined, ended or not."""
    challenges = ChallengeRepository(session)
    if joined_only:
        rows = await challenges.joined_page(member.brand_id, member.member_id, page)
    else:
        rows = await challenges.page(member.brand_id, page, ending_after=utcnow())
    views = await _mine(challenges, member, rows)
    return Page[MyChallengeRead].of(rows, page, key=lambda c: c.id, item=lambda c: views[c.id])


async def _mine(
    challenges: ChallengeRepository, member: CommunityMember, rows: Sequence[Challenge]
) -> dict[uuid.UUID, MyChallengeRead]:
    """Each challenge as the member sees it, with their progress if they joined."""
    ids = [c.id for c in rows]
    steps = await challenges.steps(ids)
    mine = await challenges.participants(ids, member.member_id)
    counts = await challenges.counts(list(mine), [member.member_id])
    now = utcnow()
    views: dict[uuid.UUID, MyChallengeRead] = {}
    for challenge in rows:
        participant = mine.get(challenge.id)
        progress = (
            progress_read(
                participant,
                steps[challenge.id],
                counts.get((challenge.id, member.member_id), {}),
                now,
            )
            if participant is not None
            else None
        )
        views[challenge.id] = MyChallengeRead(
            challenge=challenge_read(challenge, steps[challenge.id]), progress=progress
        )
    return views
