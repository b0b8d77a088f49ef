"""All SQL of posts, comments, reactions, bookmarks and the feeds. Every query filters by brand
(or by a post, comment or member id already resolved within the brand).

Feed queries compare `status` with a literal `'published'`, not a bound parameter, so the
planner can always match the partial feed indexes (`ix_posts_author_feed`, `ix_posts_group_feed`),
even under a generic prepared-statement plan.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnClause,
    ColumnElement,
    CursorResult,
    Select,
    any_,
    bindparam,
    delete,
    exists,
    func,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID, aggregate_order_by, insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.models import Comment, CommunityMember, ContentStatus, Post, PostKind
from services.community.posts.events import ReactionKind
from services.community.posts.models import Bookmark, Reaction
from services.community.social.repository import (
    followees_of,
    not_blocked_between,
    not_muted_by,
)
from services.kernel.ids import new_id
from services.kernel.pagination import PageRequest, keyset

_PUBLISHED: ColumnClause[Any] = literal_column("'published'")
_REMOVED: ColumnClause[Any] = literal_column("'removed'")
# One array parameter for a batch of ids, however many.
_IDS = bindparam("ids", type_=ARRAY(UUID(as_uuid=True)))
# The brand and the viewer, for statements built once and bound when run.
_BRAND = bindparam("brand_id", type_=UUID(as_uuid=True))
_VIEWER = bindparam("viewer", type_=UUID(as_uuid=True))


def _published(column: Any) -> ColumnElement[bool]:
    return cast(ColumnElement[bool], column == _PUBLISHED)


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is reading, for the rules of what they may see."""

    member_id: uuid.UUID
    hide_muted: bool = False  # feeds leave out muted members; threads and profiles do not


@dataclass(frozen=True, slots=True)
class PostRow:
    post: Post
    author_name: str | None


@dataclass(frozen=True, slots=True)
class ViewedPostRow:
    """A post with what the viewer did to it: their reactions (by kind) and their bookmark."""

    post: Post
    author_name: str | None
    my_reactions: list[ReactionKind]
    bookmarked: bool


@dataclass(frozen=True, slots=True)
class CommentRow:
    comment: Comment
    author_name: str | None


@dataclass(frozen=True, slots=True)
class BookmarkRow:
    bookmark_id: uuid.UUID
    bookmarked_at: datetime
    post: Post
    author_name: str | None


def _hidden_from(viewer: Viewer, author: Any) -> list[ColumnElement[bool]]:
    return _hidden(viewer.member_id, viewer.hide_muted, author)


def _hidden(
    viewer_id: uuid.UUID | ColumnElement[uuid.UUID], hide_muted: bool, author: Any
) -> list[ColumnElement[bool]]:
    """What a viewer (an id, or the parameter of a statement built once) is not shown: the
    work of members blocked either way, and of those they muted when `hide_muted`."""
    clauses = [not_blocked_between(viewer_id, author)]
    if hide_muted:
        clauses.append(not_muted_by(viewer_id, author))
    return clauses


def _with_author(statement: Select[Post]) -> Select[Post, str | None]:
    return statement.join(CommunityMember, CommunityMember.member_id == Post.author_id).add_columns(
        CommunityMember.display_name
    )


def _many_seen_by(hide_muted: bool) -> Select[Any]:
    mine = (
        select(func.array_agg(aggregate_order_by(Reaction.kind, Reaction.kind)))
        .where(Reaction.member_id == _VIEWER, Reaction.target_id == Post.id)
        .scalar_subquery()
    )
    saved = exists().where(Bookmark.member_id == _VIEWER, Bookmark.post_id == Post.id)
    return (
        _with_author(select(Post))
        .add_columns(mine, saved)
        .where(
            Post.brand_id == _BRAND,
            Post.id == any_(_IDS),
            or_(
                _published(Post.status),
                (Post.author_id == _VIEWER) & (Post.status == ContentStatus.HELD),
            ),
            *_hidden(_VIEWER, hide_muted, Post.author_id),
        )
        .order_by(Post.id.desc())
    )


# The batch read behind every list of posts the apps show (the gateway's `by_id`), built once
# for each kind of viewer: building it for every call cost about a tenth of the call's CPU.
_MANY_SEEN_BY = {hide_muted: _many_seen_by(hide_muted) for hide_muted in (False, True)}


class PostRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(
        self, brand_id: uuid.UUID, post_id: uuid.UUID, *, for_update: bool = False
    ) -> Post | None:
        """The post as the database has it now (a copy already in the session is refreshed)."""
        statement = (
            select(Post)
            .where(Post.brand_id == brand_id, Post.id == post_id)
            .execution_options(populate_existing=True)
        )
        if for_update:
            statement = statement.with_for_update()
        return (await self.session.scalars(statement)).one_or_none()

    async def insert(self, values: dict[str, Any]) -> Post | None:
        """Writes a post; None (nothing written) when it is a second live review of a sku by the
        same member. The unique partial index decides, so two racing reviews cannot both land."""
        return cast(
            Post | None,
            await self.session.scalar(
                insert(Post)
                .values(id=new_id(), **values)
                .on_conflict_do_nothing(
                    index_elements=[Post.author_id, Post.review_sku],
                    index_where=(Post.kind == literal_column("'review'"))
                    & (Post.status != _REMOVED),
                )
                .returning(Post)
            ),
        )

    async def live_review(self, author_id: uuid.UUID, sku: str) -> uuid.UUID | None:
        return await self.session.scalar(
            select(Post.id).where(
                Post.author_id == author_id,
                Post.kind == PostKind.REVIEW,
                Post.review_sku == sku,
                Post.status != ContentStatus.REMOVED,
            )
        )

    async def transition(
        self, post_id: uuid.UUID, *, from_: Sequence[ContentStatus], values: dict[str, Any]
    ) -> Post | None:
        """Moves the post on only if it is in one of `from_` (None otherwise): a conditional
        UPDATE, so two racing approvals or removals change it, and emit, once."""
        return cast(
            Post | None,
            await self.session.scalar(
                update(Post)
                .where(Post.id == post_id, Post.status.in_(from_))
                .values(**values)
                .returning(Post)
                .execution_options(populate_existing=True)
            ),
        )

    async def flush(self) -> None:
        await self.session.flush()

    async def add_to_counts(
        self, post_id: uuid.UUID, *, comments: int = 0, reactions: int = 0
    ) -> None:
        await self.session.execute(
            update(Post)
            .where(Post.id == post_id)
            .values(
                comment_count=Post.comment_count + comments,
                reaction_count=Post.reaction_count + reactions,
            )
        )

    async def author_name(self, brand_id: uuid.UUID, member_id: uuid.UUID) -> str | None:
        return await self.session.scalar(
            select(CommunityMember.display_name).where(
                CommunityMember.brand_id == brand_id, CommunityMember.member_id == member_id
            )
        )

    async def many_seen_by(
        self, brand_id: uuid.UUID, post_ids: Sequence[uuid.UUID], viewer: Viewer
    ) -> list[ViewedPostRow]:
        """The posts among `post_ids` the viewer may see (published, or their own held ones;
        nothing by a member blocked either way), newest first, in one statement."""
        rows = await self.session.execute(
            _MANY_SEEN_BY[viewer.hide_muted],
            {"ids": list(post_ids), "viewer": viewer.member_id, "brand_id": brand_id},
        )
        return [
            ViewedPostRow(
                post, name, [ReactionKind(kind) for kind in kinds or ()], bool(bookmarked)
            )
            for post, name, kinds, bookmarked in rows
        ]

    # --- feeds ---

    async def _page(self, statement: Select[Post], page: PageRequest) -> list[PostRow]:
        rows = await self.session.execute(
            keyset(_with_author(statement), Post.id, page, newest_first=True)
        )
        return [PostRow(row[0], row[1]) for row in rows]

    async def following_feed(
        self, brand_id: uuid.UUID, viewer: Viewer, page: PageRequest
    ) -> list[PostRow]:
        statement = select(Post).where(
            Post.brand_id == brand_id,
            _published(Post.status),
            Post.author_id.in_(followees_of(viewer.member_id)),
            *_hidden_from(viewer, Post.author_id),
        )
        return await self._page(statement, page)

    async def group_feed(
        self, brand_id: uuid.UUID, group_id: uuid.UUID, viewer: Viewer, page: PageRequest
    ) -> list[PostRow]:
        statement = select(Post).where(
            Post.brand_id == brand_id,
            Post.group_id == group_id,
            _published(Post.status),
            *_hidden_from(viewer, Post.author_id),
        )
        return await self._page(statement, page)

    async def tag_feed(
        self, brand_id: uuid.UUID, tag: str, viewer: Viewer, page: PageRequest
    ) -> list[PostRow]:
        statement = select(Post).where(
            Post.brand_id == brand_id,
            Post.tags.contains([tag]),
            _published(Post.status),
            *_hidden_from(viewer, Post.author_id),
        )
        return await self._page(statement, page)

    async def author_posts(
        self,
        brand_id: uuid.UUID,
        author_id: uuid.UUID,
        viewer: Viewer,
        page: PageRequest,
    ) -> list[PostRow]:
        """An author's posts: published and held ones to the author, published to others."""
        statement = select(Post).where(Post.brand_id == brand_id, Post.author_id == author_id)
        if viewer.member_id == author_id:
            statement = statement.where(Post.status != _REMOVED)
        else:
            statement = statement.where(
                _published(Post.status), *_hidden_from(viewer, Post.author_id)
            )
        return await self._page(statement, page)

    async def by_status(
        self, brand_id: uuid.UUID, status: ContentStatus | None, page: PageRequest
    ) -> Sequence[Post]:
        statement = select(Post).where(Post.brand_id == brand_id)
        if status is not None:
            statement = statement.where(Post.status == status)
        return (
            await self.session.scalars(keyset(statement, Post.id, page, newest_first=True))
        ).all()


class CommentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(
        self, brand_id: uuid.UUID, comment_id: uuid.UUID, *, for_update: bool = False
    ) -> Comment | None:
        statement = (
            select(Comment)
            .where(Comment.brand_id == brand_id, Comment.id == comment_id)
            .execution_options(populate_existing=True)
        )
        if for_update:
            statement = statement.with_for_update()
        return (await self.session.scalars(statement)).one_or_none()

    async def add(self, comment: Comment) -> None:
        self.session.add(comment)
        await self.session.flush()
        await self.session.refresh(comment)

    async def transition(
        self, comment_id: uuid.UUID, *, from_: Sequence[ContentStatus], values: dict[str, Any]
    ) -> Comment | None:
        """Like `PostRepository.transition`: changes the comment only from one of `from_`."""
        return cast(
            Comment | None,
            await self.session.scalar(
                update(Comment)
                .where(Comment.id == comment_id, Comment.status.in_(from_))
                .values(**values)
                .returning(Comment)
                .execution_options(populate_existing=True)
            ),
        )

    async def add_reactions(self, comment_id: uuid.UUID, delta: int) -> None:
        await self.session.execute(
            update(Comment)
            .where(Comment.id == comment_id)
            .values(reaction_count=Comment.reaction_count + delta)
        )

    async def thread(
        self, post_id: uuid.UUID, viewer: Viewer, page: PageRequest
    ) -> list[CommentRow]:
        """A post's comments, oldest first: the published ones plus the viewer's own held ones,
        leaving out members blocked either way."""
        statement = (
            select(Comment, CommunityMember.display_name)
            .join(CommunityMember, CommunityMember.member_id == Comment.author_id)
            .where(
                Comment.post_id == post_id,
                or_(
                    _published(Comment.status),
                    (Comment.author_id == viewer.member_id)
                    & (Comment.status == ContentStatus.HELD),
                ),
                *_hidden_from(viewer, Comment.author_id),
            )
        )
        rows = await self.session.execute(keyset(statement, Comment.id, page))
        return [CommentRow(row[0], row[1]) for row in rows]

    async def by_status(
        self, brand_id: uuid.UUID, status: ContentStatus | None, page: PageRequest
    ) -> Sequence[Comment]:
        statement = select(Comment).where(Comment.brand_id == brand_id)
        if status is not None:
            statement = statement.where(Comment.status == status)
        return (
            await self.session.scalars(keyset(statement, Comment.id, page, newest_first=True))
        ).all()


class ReactionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self,
        brand_id: uuid.UUID,
        member_id: uuid.UUID,
        kind: ReactionKind,
        post_id: uuid.UUID,
        comment_id: uuid.UUID | None,
        created_at: datetime,
    ) -> bool:
        """Records the reaction; False (nothing written) if the member already gave it."""
        inserted = await self.session.scalar(
            insert(Reaction)
            .values(
                id=new_id(),
                brand_id=brand_id,
                member_id=member_id,
                target_id=comment_id or post_id,
                post_id=post_id,
                comment_id=comment_id,
                kind=kind,
                created_at=created_at,
            )
            .on_conflict_do_nothing(
                index_elements=[Reaction.member_id, Reaction.target_id, Reaction.kind]
            )
            .returning(Reaction.id)
        )
        return inserted is not None

    async def remove(self, member_id: uuid.UUID, target_id: uuid.UUID, kind: ReactionKind) -> bool:
        result = cast(
            CursorResult[Any],
            await self.session.execute(
                delete(Reaction).where(
                    Reaction.member_id == member_id,
                    Reaction.target_id == target_id,
                    Reaction.kind == kind,
                )
            ),
        )
        return result.rowcount > 0

    async def mine(self, member_id: uuid.UUID, target_id: uuid.UUID) -> list[ReactionKind]:
        rows = await self.session.scalars(
            select(Reaction.kind)
            .where(Reaction.member_id == member_id, Reaction.target_id == target_id)
            .order_by(Reaction.kind)
        )
        return list(rows)


class BookmarkRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self, brand_id: uuid.UUID, member_id: uuid.UUID, post_id: uuid.UUID
    ) -> tuple[bool, datetime]:
        """Saves the post; (created, when it was first saved)."""
        created = await self.session.scalar(
            insert(Bookmark)
            .values(id=new_id(), brand_id=brand_id, member_id=member_id, post_id=post_id)
            .on_conflict_do_nothing(index_elements=[Bookmark.member_id, Bookmark.post_id])
            .returning(Bookmark.created_at)
        )
        if created is not None:
            return True, created
        existing = await self.session.scalar(
            select(Bookmark.created_at).where(
                Bookmark.member_id == member_id, Bookmark.post_id == post_id
            )
        )
        assert existing is not None
        return False, existing

    async def remove(self, member_id: uuid.UUID, post_id: uuid.UUID) -> bool:
        result = cast(
            CursorResult[Any],
            await self.session.execute(
                delete(Bookmark).where(Bookmark.member_id == member_id, Bookmark.post_id == post_id)
            ),
        )
        return result.rowcount > 0

    async def page(
        self, brand_id: uuid.UUID, viewer: Viewer, page: PageRequest
    ) -> list[BookmarkRow]:
        """The member's saved posts, newest saved first, that they can still see."""
        statement = (
            select(Bookmark.id, Bookmark.created_at, Post, CommunityMember.display_name)
            .join(Post, Post.id == Bookmark.post_id)
            .join(CommunityMember, CommunityMember.member_id == Post.author_id)
            .where(
                Bookmark.brand_id == brand_id,
                Bookmark.member_id == viewer.member_id,
                or_(
                    _published(Post.status),
                    (Post.author_id == viewer.member_id) & (Post.status == ContentStatus.HELD),
                ),
                *_hidden_from(viewer, Post.author_id),
            )
        )
        rows = await self.session.execute(keyset(statement, Bookmark.id, page, newest_first=True))
        return [BookmarkRow(row[0], row[1], row[2], row[3]) for row in rows]
