"""What a report or a decision is about: a post, a comment or a member of the brand, with its
author and the group it is in (a comment is in its post's group)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.members.repository import CommunityMemberRepository
from services.community.models import Comment, ContentStatus, Post
from services.community.moderation.errors import TargetNotFound
from services.community.moderation.models import TargetKind
from services.community.posts.repository import CommentRepository, PostRepository


@dataclass(frozen=True, slots=True)
class Target:
    kind: TargetKind
    id: uuid.UUID
    author_id: uuid.UUID
    group_id: uuid.UUID | None
    content: Post | Comment | None  # None for a member
    status: ContentStatus | None  # the content's status; None for a member


async def find_target(
    session: AsyncSession, brand_id: uuid.UUID, kind: TargetKind, target_id: uuid.UUID
) -> Target:
    """The target in this brand (any status), or 404 `TargetNotFound`."""
    if kind == TargetKind.MEMBER:
        member = await CommunityMemberRepository(session).get(brand_id, target_id)
        if member is None or member.member_status == "erased":
            raise TargetNotFound(f"No member {target_id} in this brand.")
        return Target(kind, target_id, target_id, None, None, None)
    posts = PostRepository(session)
    if kind == TargetKind.POST:
        post = await posts.get(brand_id, target_id)
        if post is None:
            raise TargetNotFound(f"No post {target_id} in this brand.")
        return Target(kind, target_id, post.author_id, post.group_id, post, post.status)
    comment = await CommentRepository(session).get(brand_id, target_id)
    if comment is None:
        raise TargetNotFound(f"No comment {target_id} in this brand.")
    parent = await posts.get(brand_id, comment.post_id)
    assert parent is not None  # a comment's post is in its brand
    return Target(kind, target_id, comment.author_id, parent.group_id, comment, comment.status)
