"""Reactions: each member gives each kind of `ReactionKind` at most once per post or comment.
Functions here never commit.

Adding a reaction the member already gave changes nothing and emits nothing (`created` is
False: the endpoint answers 200 instead of 201); a new one counts on its target and emits
`reaction.added`; taking one back uncounts it and emits `reaction.removed`. Reacting follows the
rules of commenting: the content is visible to the member and not removed, its author has not
blocked them (nor they the author), and in a group they are an active member of it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.models import OUTBOX, CommunityMember, ContentStatus, Post
from services.community.posts.errors import CommentNotFound, CommentRemoved
from services.community.posts.events import (
    ReactionAdded,
    ReactionData,
    ReactionKind,
    ReactionRemoved,
)
from services.community.posts.repository import (
    CommentRepository,
    PostRepository,
    ReactionRepository,
)
from services.community.posts.service import interactive_post
from services.community.social.service import ensure_not_blocked
from services.kernel.clock import utcnow


@dataclass(frozen=True, slots=True)
class Target:
    """What a reaction is to: a post, or a comment on it."""

    post: Post
    comment_id: uuid.UUID | None
    author_id: uuid.UUID

    @property
    def id(self) -> uuid.UUID:
        return self.comment_id or self.post.id


@dataclass(frozen=True, slots=True)
class Outcome:
    target: Target
    kind: ReactionKind
    created: bool
    reaction_count: int


async def post_target(session: AsyncSession, member: CommunityMember, post_id: uuid.UUID) -> Target:
    post = await interactive_post(session, member, post_id)
    return Target(post=post, comment_id=None, author_id=post.author_id)


async def comment_target(
    session: AsyncSession, member: CommunityMember, comment_id: uuid.UUID
) -> Target:
    comment = await CommentRepository(session).get(member.brand_id, comment_id)
    if comment is None or (
        comment.status == ContentStatus.HELD and comment.author_id != member.member_id
    ):
        raise CommentNotFound()
    if comment.status == ContentStatus.REMOVED:
        raise CommentRemoved()
    post = await interactive_post(session, member, comment.post_id)
    await ensure_not_blocked(session, member.member_id, comment.author_id)
    return Target(post=post, comment_id=comment.id, author_id=comment.author_id)


async def _count(session: AsyncSession, target: Target, delta: int) -> int:
    if target.comment_id is not None:
        comments = CommentRepository(session)
        if delta:
            await comments.add_reactions(target.comment_id, delta)
        comment = await comments.get(target.post.brand_id, target.comment_id)
        assert comment is not None
        return comment.reaction_count
    posts = PostRepository(session)
    if delta:
        await posts.add_to_counts(target.post.id, reactions=delta)
    post = await posts.get(target.post.brand_id, target.post.id)
    assert post is not None
    return post.reaction_count


def reaction_event(
    cls: type[ReactionAdded] | type[ReactionRemoved],
    *,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    kind: ReactionKind,
    post_id: uuid.UUID,
    comment_id: uuid.UUID | None,
    target_author_id: uuid.UUID,
    at: datetime,
) -> ReactionAdded | ReactionRemoved:
    """`reaction.added` / `reaction.removed` at `at`: online and from the bulk history path."""
    return cls(
        brand_id=brand_id,
        subject_id=member_id,
        data=ReactionData(
            member_id=member_id,
            kind=kind,
            post_id=post_id,
            comment_id=comment_id,
            target_author_id=target_author_id,
        ),
        occurred_at=at,
    )


def _event(
    cls: type[ReactionAdded] | type[ReactionRemoved],
    member: CommunityMember,
    target: Target,
    kind: ReactionKind,
    at: datetime,
) -> ReactionAdded | ReactionRemoved:
    return reaction_event(
        cls,
        brand_id=member.brand_id,
        member_id=member.member_id,
        kind=kind,
        post_id=target.post.id,
        comment_id=target.comment_id,
        target_author_id=target.author_id,
        at=at,
    )


async def react(
    session: AsyncSession, member: CommunityMember, target: Target, kind: ReactionKind
) -> Outcome:
    # The application's clock dates the row and its event alike (history loads date both).
    at = utcnow()
    created = await ReactionRepository(session).add(
        member.brand_id, member.member_id, kind, target.post.id, target.comment_id, at
    )
    count = await _count(session, target, 1 if created else 0)
    if created:
        await OUTBOX.add(session, _event(ReactionAdded, member, target, kind, at))
    return Outcome(target, kind, created, count)


async def unreact(
    session: AsyncSession, member: CommunityMember, target: Target, kind: ReactionKind
) -> None:
    """Takes the reaction back; a reaction the member never gave changes nothing."""
    if await ReactionRepository(session).remove(member.member_id, target.id, kind):
        await _count(session, target, -1)
        await OUTBOX.add(session, _event(ReactionRemoved, member, target, kind, utcnow()))
