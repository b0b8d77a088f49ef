"""What members read: the feeds, an author's posts and a post's comment thread. Functions here
never commit.

Every list is newest first (threads: oldest first) and keyset-paginated. Only published content
appears, except that authors see their own held posts and comments (marked `held`). Nothing by a
member blocked either way appears; the feeds (following, group, tag) also leave out members the
reader muted. Removed content appears nowhere.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.groups.membership import require_group
from services.community.members.service import known_member
from services.community.models import CommunityMember
from services.community.posts.repository import (
    CommentRepository,
    CommentRow,
    PostRepository,
    PostRow,
    ViewedPostRow,
    Viewer,
)
from services.community.posts.schemas import normalise_tag
from services.community.posts.service import readable_post
from services.kernel.member_directory import MemberDirectory
from services.kernel.pagination import PageRequest


def _feed_reader(member: CommunityMember) -> Viewer:
    return Viewer(member.member_id, hide_muted=True)


async def following(
    session: AsyncSession, member: CommunityMember, page: PageRequest
) -> list[PostRow]:
    """Published posts by the members `member` follows."""
    return await PostRepository(session).following_feed(member.brand_id, _feed_reader(member), page)


async def group(
    session: AsyncSession, member: CommunityMember, group_id: uuid.UUID, page: PageRequest
) -> list[PostRow]:
    """A group's published posts (404 `GroupNotFound` for a group of another brand)."""
    await require_group(session, member.brand_id, group_id)
    return await PostRepository(session).group_feed(
        member.brand_id, group_id, _feed_reader(member), page
    )


async def tag(
    session: AsyncSession, member: CommunityMember, name: str, page: PageRequest
) -> list[PostRow]:
    """Published posts with the tag (compared as tags are stored: lower-cased)."""
    return await PostRepository(session).tag_feed(
        member.brand_id, normalise_tag(name), _feed_reader(member), page
    )


async def authored(
    session: AsyncSession,
    member: CommunityMember,
    author_id: uuid.UUID,
    page: PageRequest,
    directory: MemberDirectory | None = None,
) -> list[PostRow]:
    """An author's posts: with their held ones when `member` is the author. An author who joined
    a moment ago is asked of `directory`, when given (they have none yet: an empty page)."""
    if author_id != member.member_id:
        await known_member(session, member.brand_id, author_id, directory)
    return await PostRepository(session).author_posts(
        member.brand_id, author_id, Viewer(member.member_id), page
    )


async def by_ids(
    session: AsyncSession, member: CommunityMember, post_ids: list[uuid.UUID]
) -> list[ViewedPostRow]:
    """The posts among `post_ids` the member may read (as `readable_post` decides one, and
    leaving out members blocked either way), with the member's reactions and bookmark."""
    return await PostRepository(session).many_seen_by(
        member.brand_id, post_ids, Viewer(member.member_id)
    )


async def thread(
    session: AsyncSession, member: CommunityMember, post_id: uuid.UUID, page: PageRequest
) -> list[CommentRow]:
    """The comments on a post the member can see, oldest first."""
    post = await readable_post(session, member.brand_id, post_id, member.member_id)
    return await CommentRepository(session).thread(post.id, Viewer(member.member_id), page)
