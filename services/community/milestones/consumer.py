"""The consumer that turns other parts' events into milestones: `post.approved` (first post),
`reaction.added` / `reaction.removed` (reactions received) from the community's own stream, and
rewards' `tier.changed` going up. Through the kernel's inbox each event takes effect once."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.milestones import keys, service
from services.community.milestones.repository import Reached
from services.community.models import INBOX
from services.community.posts.events import PostApproved, ReactionAdded, ReactionRemoved
from services.kernel.consumer import ConsumerSpec
from services.kernel.events import Event
from services.rewards.events import TierChanged


async def apply_milestone_events(session: AsyncSession, events: Sequence[Event]) -> None:
    """A batch in stream order, with the outcome of its events one by one: reaction tallies move
    one event at a time (the hundredth is met exactly), and the first event of a member and
    milestone wins."""
    moves: list[service.ReactionMove] = []
    reached: list[Reached] = []
    for event in events:
        if isinstance(event, PostApproved):
            reached.append(
                Reached(event.brand_id, event.data.author_id, keys.FIRST_POST, event.occurred_at)
            )
        elif isinstance(event, ReactionAdded | ReactionRemoved):
            reaction = event.data
            if reaction.member_id == reaction.target_author_id:
                continue  # reacting to your own content is not a reaction received
            delta = 1 if isinstance(event, ReactionAdded) else -1
            moves.append(
                service.ReactionMove(
                    event.brand_id, reaction.target_author_id, delta, event.occurred_at
                )
            )
        elif isinstance(event, TierChanged):
            change = event.data
            if change.direction == "up" and change.to_tier is not None:
                reached.append(
                    Reached(
                        event.brand_id,
                        change.member_id,
                        keys.tier(change.to_tier),
                        event.occurred_at,
                    )
                )
    met = await service.reactions_received(session, moves) if moves else []
    await service.reach(session, met + reached)


async def apply_milestone_event(session: AsyncSession, event: Event) -> None:
    await apply_milestone_events(session, [event])


MILESTONES_CONSUMER = ConsumerSpec(
    name="community.milestones",
    services=["community", "rewards"],
    handler=apply_milestone_event,
    inbox=INBOX,
    event_types=frozenset({"post.approved", "reaction.added", "reaction.removed", "tier.changed"}),
    handle_many=apply_milestone_events,
)
