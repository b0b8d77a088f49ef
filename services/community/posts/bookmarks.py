"""Bookmarks: a member's private list of saved posts. Functions here never commit.

Saving is idempotent (`created` is False the second time); a post can be saved while the member
can see it and it is not removed. The list leaves out posts removed since, or whose author is
now blocked either way, and pages newest saved first.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.models import CommunityMember
from services.community.posts.repository import BookmarkRepository, BookmarkRow, Viewer
from services.community.posts.service import live_post
from services.kernel.pagination import PageRequest


async def save(
    session: AsyncSession, member: CommunityMember, post_id: uuid.UUID
) -> tuple[bool, datetime]:
    """Saves the post: (created, when it was first saved)."""
    await live_post(session, member, post_id)
    return await BookmarkRepository(session).add(member.brand_id, member.member_id, post_id)


async def unsave(session: AsyncSession, member: CommunityMember, post_id: uuid.UUID) -> None:
    """Drops the post from the list (even if it was removed since); not saved: nothing."""
    await BookmarkRepository(session).remove(member.member_id, post_id)


async def saved(
    session: AsyncSession, member: CommunityMember, page: PageRequest
) -> list[BookmarkRow]:
    return await BookmarkRepository(session).page(member.brand_id, Viewer(member.member_id), page)
