"""The consumer that keeps reputation from the community's own content events.

It reads the community stream; the kernel's inbox makes each event take effect once, and the
grants' keys (see `service`) make a repeated or overlapping event harmless even without it.
Reputation goes to the content's author, on the event's brand.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.models import INBOX, ContentStatus
from services.community.posts.events import (
    CommentApproved,
    CommentCreated,
    CommentRemoved,
    PostApproved,
    PostRemoved,
    ReactionAdded,
    ReactionRemoved,
)
from services.community.reputation import service
from services.community.reputation.models import ReputationReason
from services.kernel.consumer import ConsumerSpec
from services.kernel.events import Event


def request_of(event: Event) -> service.Request | None:
    """What the event asks of its content author's reputation, if anything."""
    if isinstance(event, PostApproved):
        post = event.data
        return service.Request(
            action=service.Action.GRANT,
            member_id=post.author_id,
            key=service.post_key(post.post_id),
            content_id=post.post_id,
            reason=ReputationReason.POST_APPROVED,
            brand_id=event.brand_id,
            source_event_id=event.id,
            at=event.occurred_at,
        )
    if isinstance(event, CommentCreated | CommentApproved):
        comment = event.data
        # A held comment earns nothing until `comment.approved` says it is public.
        if comment.status != ContentStatus.PUBLISHED:
            return None
        return service.Request(
            action=service.Action.GRANT,
            member_id=comment.author_id,
            key=service.comment_key(comment.comment_id),
            content_id=comment.comment_id,
            reason=ReputationReason.COMMENT_APPROVED,
            brand_id=event.brand_id,
            source_event_id=event.id,
            at=event.occurred_at,
        )
    if isinstance(event, PostRemoved | CommentRemoved):
        data = event.data
        return service.Request(
            action=service.Action.TAKE_BACK,
            member_id=data.author_id,
            content_id=data.post_id if isinstance(event, PostRemoved) else event.data.comment_id,
            reason=ReputationReason.CONTENT_REMOVED,
            brand_id=event.brand_id,
            source_event_id=event.id,
            at=event.occurred_at,
        )
    if isinstance(event, ReactionAdded | ReactionRemoved):
        reaction = event.data
        if reaction.member_id == reaction.target_author_id:
            return None  # reacting to oneself earns nothing
        target = reaction.comment_id or reaction.post_id
        added = isinstance(event, ReactionAdded)
        return service.Request(
            action=service.Action.GRANT if added else service.Action.REVOKE,
            member_id=reaction.target_author_id,
            key=service.reaction_key(reaction.member_id, target, reaction.kind.value),
            content_id=target,
            reason=(
                ReputationReason.REACTION_RECEIVED if added else ReputationReason.REACTION_REMOVED
            ),
            brand_id=event.brand_id,
            source_event_id=event.id,
            at=event.occurred_at,
        )
    return None


async def apply_reputation_events(session: AsyncSession, events: Sequence[Event]) -> None:
    requests = [request for event in events if (request := request_of(event)) is not None]
    if requests:
        await service.apply(session, requests)


async def apply_reputation_event(session: AsyncSession, event: Event) -> None:
    await apply_reputation_events(session, [event])


REPUTATION_CONSUMER = ConsumerSpec(
    name="community.reputation",
    services=["community"],
    handler=apply_reputation_event,
    handle_many=apply_reputation_events,
    inbox=INBOX,
    event_types=frozenset(
        {
            PostApproved.event_type(),
            PostRemoved.event_type(),
            CommentCreated.event_type(),
            CommentApproved.event_type(),
            CommentRemoved.event_type(),
            ReactionAdded.event_type(),
            ReactionRemoved.event_type(),
        }
    ),
)
