"""The consumer that turns other parts' events into milestones: `post.approved` (first post),
`reaction.added` / `reaction.removed` (reactions received) from the community's own stream, and
rewards' `tier.changed` going up. Through the kernel's inbox each event takes effect once."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.milestones import service
from services.community.models import INBOX
from services.community.posts.events import PostApproved, ReactionAdded, ReactionRemoved
from services.kernel.consumer import ConsumerSpec
from services.kernel.events import Event
from services.rewards.events import TierChanged


async def apply_milestone_event(session: AsyncSession, event: Event) -> None:
    if isinstance(event, PostApproved):
        await service.first_post(session, event.brand_id, event.data.author_id, event.occurred_at)
    elif isinstance(event, ReactionAdded | ReactionRemoved):
        reaction = event.data
        if reaction.member_id == reaction.target_author_id:
            return  # reacting to your own content is not a reaction received
        delta = 1 if isinstance(event, ReactionAdded) else -1
        await service.reactions_received(
            session, event.brand_id, reaction.target_author_id, delta, event.occurred_at
        )
    elif isinstance(event, TierChanged):
        change = event.data
        if change.direction == "up" and change.to_tier is not None:
            await service.tier_reached(
                session, event.brand_id, change.member_id, change.to_tier, event.occurred_at
            )


MILESTONES_CONSUMER = ConsumerSpec(
    name="community.milestones",
    services=["community", "rewards"],
    handler=apply_milestone_event,
    inbox=INBOX,
    event_types=frozenset({"post.approved", "reaction.added", "reaction.removed", "tier.changed"}),
)
