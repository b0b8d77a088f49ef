"""The consumer that keeps reputation from the community's own content events.

It reads the community stream; the kernel's inbox makes each event take effect once, and the
grants' keys (see `service`) make a repeated or overlapping event harmless even without it.
Reputation goes to the content's author, on the event's brand.
"""

from __future__ import annotations

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


async def apply_reputation_event(session: AsyncSession, event: Event) -> None:
    brand_id, source, at = event.brand_id, event.id, event.occurred_at
    if isinstance(event, PostApproved):
        post = event.data
        await service.grant(
            session,
            brand_id,
            post.author_id,
            key=service.post_key(post.post_id),
            content_id=post.post_id,
            reason=ReputationReason.POST_APPROVED,
            source_event_id=source,
            at=at,
        )
    elif isinstance(event, CommentCreated | CommentApproved):
        comment = event.data
        # A held comment earns nothing until `comment.approved` says it is public.
        if comment.status != ContentStatus.PUBLISHED:
            return
        await service.grant(
            session,
            brand_id,
            comment.author_id,
            key=service.comment_key(comment.comment_id),
            content_id=comment.comment_id,
            reason=ReputationReason.COMMENT_APPROVED,
            source_event_id=source,
            at=at,
        )
    elif isinstance(event, PostRemoved | CommentRemoved):
        data = event.data
        content_id = data.post_id if isinstance(event, PostRemoved) else event.data.comment_id
        await service.take_back(
            session, brand_id, data.author_id, content_id, source_event_id=source, at=at
        )
    elif isinstance(event, ReactionAdded | ReactionRemoved):
        reaction = event.data
        if reaction.member_id == reaction.target_author_id:
            return  # reacting to oneself earns nothing
        target = reaction.comment_id or reaction.post_id
        key = service.reaction_key(reaction.member_id, target, reaction.kind.value)
        if isinstance(event, ReactionAdded):
            await service.grant(
                session,
                brand_id,
                reaction.target_author_id,
                key=key,
                content_id=target,
                reason=ReputationReason.REACTION_RECEIVED,
                source_event_id=source,
                at=at,
            )
        else:
            await service.revoke(
                session,
                brand_id,
                reaction.target_author_id,
                key=key,
                content_id=target,
                reason=ReputationReason.REACTION_REMOVED,
                source_event_id=source,
                at=at,
            )


REPUTATION_CONSUMER = ConsumerSpec(
    name="community.reputation",
    services=["community"],
    handler=apply_reputation_event,
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
