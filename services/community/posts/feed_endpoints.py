"""REST for what members read: the following, group and tag feeds, an author's posts, a post's
comments and my bookmarks. Every list is keyset-paginated (`limit` at most 100, `after`)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Path

from services.community.access import DirectoryDep, ReadingMember
from services.community.posts import bookmarks, feeds
from services.community.posts.repository import BookmarkRow, PostRow, ViewedPostRow
from services.community.posts.schemas import (
    MAX_TAG,
    BookmarkedPost,
    CommentRead,
    PostRead,
    PostView,
    PostViews,
)
from services.kernel.db import SessionDep
from services.kernel.pagination import Ids, Page, PageDep
from services.kernel.routing import Router

router = Router()


def _posts(rows: list[PostRow], page: PageDep) -> Page[PostRead]:
    return Page[PostRead].of(
        rows, page, key=lambda r: r.post.id, item=lambda r: PostRead.of(r.post, r.author_name)
    )


def _view(row: ViewedPostRow) -> PostView:
    return PostView(
        **PostRead.of(row.post, row.author_name).model_dump(),
        my_reactions=row.my_reactions,
        bookmarked=row.bookmarked,
    )


@router.get(
    "/posts",
    response_model=PostViews,
    summary="Posts by id, each with my reactions and bookmark (those I may see; newest first)",
    responses={422: {"description": "ValidationError (no ids, more than 100, not uuids)"}},
)
async def posts_by_ids(ids: Ids, session: SessionDep, me: ReadingMember) -> PostViews:
    return PostViews(items=[_view(row) for row in await feeds.by_ids(session, me, ids)])


@router.get(
    "/feeds/following",
    response_model=Page[PostRead],
    summary="Posts by the members I follow, newest first",
)
async def following_feed(session: SessionDep, me: ReadingMember, page: PageDep) -> Page[PostRead]:
    return _posts(await feeds.following(session, me, page), page)


@router.get(
    "/feeds/groups/{group_id}",
    response_model=Page[PostRead],
    summary="A group's posts, newest first",
    responses={404: {"description": "GroupNotFound"}},
)
async def group_feed(
    group_id: uuid.UUID, session: SessionDep, me: ReadingMember, page: PageDep
) -> Page[PostRead]:
    return _posts(await feeds.group(session, me, group_id, page), page)


@router.get(
    "/feeds/tags/{tag}",
    response_model=Page[PostRead],
    summary="Posts with a tag, newest first",
)
async def tag_feed(
    tag: Annotated[str, Path(min_length=1, max_length=MAX_TAG + 1)],
    session: SessionDep,
    me: ReadingMember,
    page: PageDep,
) -> Page[PostRead]:
    return _posts(await feeds.tag(session, me, tag, page), page)


@router.get(
    "/me/posts",
    response_model=Page[PostRead],
    summary="My posts, newest first, the held ones included (status `held`)",
)
async def my_posts(session: SessionDep, me: ReadingMember, page: PageDep) -> Page[PostRead]:
    return _posts(await feeds.authored(session, me, me.member_id, page), page)


@router.get(
    "/members/{member_id}/posts",
    response_model=Page[PostRead],
    summary="A member's published posts, newest first",
    responses={404: {"description": "MemberNotFound"}},
)
async def member_posts(
    member_id: uuid.UUID,
    session: SessionDep,
    me: ReadingMember,
    page: PageDep,
    directory: DirectoryDep,
) -> Page[PostRead]:
    return _posts(await feeds.authored(session, me, member_id, page, directory), page)


@router.get(
    "/posts/{post_id}/comments",
    response_model=Page[CommentRead],
    summary="A post's comments, oldest first (replies name their `parent_id`)",
    responses={404: {"description": "PostNotFound"}},
)
async def comments(
    post_id: uuid.UUID, session: SessionDep, me: ReadingMember, page: PageDep
) -> Page[CommentRead]:
    rows = await feeds.thread(session, me, post_id, page)
    return Page[CommentRead].of(
        rows,
        page,
        key=lambda r: r.comment.id,
        item=lambda r: CommentRead.of(r.comment, r.author_name),
    )


def _bookmark(row: BookmarkRow) -> BookmarkedPost:
    return BookmarkedPost(
        bookmark_id=row.bookmark_id,
        bookmarked_at=row.bookmarked_at,
        post=PostRead.of(row.post, row.author_name),
    )


@router.get(
    "/me/bookmarks",
    response_model=Page[BookmarkedPost],
    summary="My saved posts, newest saved first",
)
async def my_bookmarks(
    session: SessionDep, me: ReadingMember, page: PageDep
) -> Page[BookmarkedPost]:
    rows = await bookmarks.saved(session, me, page)
    return Page[BookmarkedPost].of(rows, page, key=lambda r: r.bookmark_id, item=_bookmark)
