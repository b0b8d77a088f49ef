"""Milestones: moments in a member's life in the community, each celebrated once. Never commits.

- **Join anniversary** ("anniversary:<years>"): a daily job finds active members whose anniversary
  of `joined_at` (whole years on the UTC calendar) fell within the last `ANNIVERSARY_CATCH_UP` and
  records it, so a missed day or two of the job is made up. In common years a 29 February joiner
  is celebrated from 1 March, dated 28 February.
- **Tier reached** ("tier:<tier name>"): rewards' `tier.changed` going up. Once per tier, ever:
  dropping and climbing back is not celebrated again.
- **First post** ("first_post"): the author's first `post.approved` (posts and reviews alike).
- **A hundredth reaction received** ("reactions:100"): reactions from others to the member's posts
  and comments, net of those taken back (`reaction.removed`), so adding and removing one reaction
  over and over cannot manufacture it; reacting to your own content does not count.

Each is recorded once per member and milestone (a unique key decides, whatever the order or
repetition of the events and jobs) and emits `milestone.reached`, which the apps show as a
celebration and rewards' activity rules may pay. The brand can make a prompt of a milestone: its
audience is then the members who reached it (`has_reached`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.milestones import keys
from services.community.milestones.errors import UnknownMilestone
from services.community.milestones.events import MilestoneData, MilestoneReached
from services.community.milestones.models import ReachedMilestone
from services.community.milestones.repository import MilestoneRepository, Reached
from services.community.milestones.schemas import MilestonePromptCreate
from services.community.models import OUTBOX, Prompt
from services.community.prompts import service as prompts
from services.kernel.clock import utcnow
from services.kernel.pagination import PageRequest

ANNIVERSARY_CATCH_UP = timedelta(days=30)


async def reach(session: AsyncSession, reached: Sequence[Reached]) -> int:
    """Records the milestones not reached before and emits `milestone.reached` for each of
    those; returns how many were new."""
    rows = await MilestoneRepository(session).record(reached)
    await OUTBOX.add_many(session, [_event(row) for row in rows])
    return len(rows)


def _event(row: ReachedMilestone) -> MilestoneReached:
    return MilestoneReached(
        brand_id=row.brand_id,
        subject_id=row.member_id,
        occurred_at=row.reached_at,
        data=MilestoneData(
            member_id=row.member_id, milestone=row.milestone, reached_at=row.reached_at
        ),
    )


async def has_reached(
    session: AsyncSession, brand_id: uuid.UUID, member_id: uuid.UUID, milestone: str
) -> bool:
    """Whether the member has reached `milestone` (the audience check of milestone prompts)."""
    return await MilestoneRepository(session).has(brand_id, member_id, milestone)


async def my_milestones(
    session: AsyncSession, brand_id: uuid.UUID, member_id: uuid.UUID, page: PageRequest
) -> Sequence[ReachedMilestone]:
    return await MilestoneRepository(session).page(brand_id, member_id, page)


# --- What reaches them --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReactionMove:
    """A reaction to the member's content from someone else: received (+1) or taken back
    (-1)."""

    brand_id: uuid.UUID
    member_id: uuid.UUID
    delta: int
    at: datetime


async def reactions_received(session: AsyncSession, moves: Sequence[ReactionMove]) -> list[Reached]:
    """Counts the moves in order, one at a time and never below zero, so the hundredth is met
    exactly at 100; returns the milestones met (for `reach`, whose unique key keeps a second
    pass at 100 a no-op)."""
    repository = MilestoneRepository(session)
    counts = await repository.lock_tallies({(move.brand_id, move.member_id) for move in moves})
    before = dict(counts)
    met: list[Reached] = []
    for move in moves:
        count = counts.get(move.member_id)
        if count is None:
            continue  # the member's count is another brand's
        count = counts[move.member_id] = max(count + move.delta, 0)
        if move.delta > 0 and count == keys.REACTIONS_MILESTONE:
            met.append(Reached(move.brand_id, move.member_id, keys.reactions(count), move.at))
    await repository.set_tallies(
        {member: count for member, count in counts.items() if count != before[member]}
    )
    return met


async def celebrate_anniversaries(session: AsyncSession, now: datetime | None = None) -> int:
    """Records every join anniversary due (see the module doc); returns how many."""
    due = await MilestoneRepository(session).due_anniversaries(
        now or utcnow(), ANNIVERSARY_CATCH_UP
    )
    return await reach(
        session,
        [Reached(d.brand_id, d.member_id, keys.anniversary(d.years), d.due_at) for d in due],
    )


# --- Prompts for a milestone --------------------------------------------------------------------


async def create_prompt(
    session: AsyncSession, brand_id: uuid.UUID, payload: MilestonePromptCreate
) -> Prompt:
    """A prompt whose audience is the members who reached `payload.milestone`, written by the
    prompts part (its window and audience rules apply)."""
    if not keys.is_known(payload.milestone):
        raise UnknownMilestone(
            [
                {
                    "loc": ["body", "milestone"],
                    "msg": f"unknown milestone {payload.milestone!r}: use anniversary:<years>, "
                    "tier:<tier name>, first_post or reactions:100",
                    "type": "unknown_milestone",
                }
            ]
        )
    return await prompts.create_prompt(session, brand_id, payload.as_prompt())
