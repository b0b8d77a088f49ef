"""Staff reads of posts and comments in every status (moderation decides through
`services.community.posts.service.approve_*` / `remove_*`). Functions here never commit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.models import Comment, ContentStatus, Post
from services.community.posts.errors import CommentNotFound, PostNotFound
from services.community.posts.repository import CommentRepository, PostRepository
from services.kernel.pagination import PageRequest


async def posts(
    session: AsyncSession, brand_id: uuid.UUID, status: ContentStatus | None, page: PageRequest
) -> Sequence[Post]:
    return await PostRepository(session).by_status(brand_id, status, page)


async def post(session: AsyncSession, brand_id: uuid.UUID, post_id: uuid.UUID) -> Post:
    found = await PostRepository(session).get(brand_id, post_id)
    if found is None:
        raise PostNotFound(f"No post {post_id} in this brand.")
    return found


async def comments(
    session: AsyncSession, brand_id: uuid.UUID, status: ContentStatus | None, page: PageRequest
) -> Sequence[Comment]:
    return await CommentRepository(session).by_status(brand_id, status, page)


async def comment(session: AsyncSession, brand_id: uuid.UUID, comment_id: uuid.UUID) -> Comment:
    found = await CommentRepository(session).get(brand_id, comment_id)
    if found is None:
        raise CommentNotFound(f"No comment {comment_id} in this brand.")
    return found
