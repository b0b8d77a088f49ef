"""Posts and comments: writing, editing, approving and removing them. Functions here never
commit; the caller's transaction holds the change and its events together.

**Writing.** A post is 1 to 10,000 characters of text (trimmed), up to 10 media items (http or
https URLs with alt text), up to 20 lower-cased tags and 20 skus, optionally in a group (the
author must be an active member of it: 403 `NotAGroupMember` / `RemovedFromGroup`). Links in the
text need trust level 1 (`Ability.POST_LINKS`, 403 `TrustLevelTooLow`); media URLs are always
allowed. A review (`kind: review`) names a sku and a 1-5 rating; a member has at most one live
(held or published) review per sku, enforced by the unique partial index `uq_posts_one_review`
(409 `ReviewExists`, nothing written). Every post and comment goes through the automatic first
pass (`moderation.screening.screen`): published at once, or held for review, visible to its
author only. `post.created` is emitted for every post, and `post.approved` in the same
transaction when it is published at once.

**Editing.** Authors may change the text, tags and media of their own live posts; the new text
is screened again, so an edit can hold a published post (no event: it stays approved for points)
or publish a held one (`post.approved`).

**Approving and removing** are conditional updates (`held -> published`, `* -> removed`), so a
repeated or racing decision changes the content and emits its event once. Removing a review frees
its sku for a new review. A comment counts in its post's `comment_count` while it is published.

**Who sees what.** Published content is public within the brand; held content is visible to its
author only (404 `PostNotFound` to anyone else); removed content to no one. Commenting on or
reacting to a removed post is 409 `PostRemoved`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.errors import MemberSuspended
from services.community.groups.membership import require_active_membership
from services.community.members.abilities import Ability
from services.community.members.service import is_suspended, require_ability
from services.community.models import (
    OUTBOX,
    Comment,
    CommunityMember,
    ContentStatus,
    Post,
    PostKind,
)
from services.community.moderation.screening import Screening, screen
from services.community.posts import events
from services.community.posts.errors import (
    CommentNotFound,
    CommentRemoved,
    InvalidParent,
    NotTheAuthor,
    PostNotFound,
    PostRemoved,
    ReviewExists,
)
from services.community.posts.events import (
    CommentApproved,
    CommentCreated,
    CommentData,
    CommentRemovedData,
    PostApproved,
    PostCreated,
    PostData,
    PostRemovedData,
)
from services.community.posts.repository import CommentRepository, PostRepository
from services.community.posts.schemas import CommentCreate, Media, PostCreate, PostUpdate
from services.community.posts.text import body_hash, has_link
from services.community.social.service import ensure_not_blocked
from services.kernel.clock import utcnow
from services.kernel.ids import new_id

RemovedBy = Literal["author", "moderator"]


# --- Rules shared by posts and comments --------------------------------------------------------


def _require_free(member: CommunityMember) -> None:
    if is_suspended(member):
        raise MemberSuspended()


def _check_links(author: CommunityMember, text: str) -> None:
    if has_link(text):
        require_ability(author, Ability.POST_LINKS)


def _screened_text(body: str, media: list[Media]) -> str:
    """What the first pass reads: the text and every alt text (media URLs are not text)."""
    return "\n".join([body, *(item.alt for item in media if item.alt)])


async def _screen(
    session: AsyncSession,
    author: CommunityMember,
    text: str,
    digest: str,
    *,
    editing: uuid.UUID | None = None,
) -> Screening:
    """The moderation first pass; `editing` names the content an edit changes, so that it is
    not taken for a duplicate of itself."""
    return await screen(
        session,
        brand_id=author.brand_id,
        author=author,
        text=text,
        body_hash=digest,
        content_id=editing,
    )


def visible_to(status: ContentStatus, author_id: uuid.UUID, viewer_id: uuid.UUID | None) -> bool:
    """Published content to everyone in the brand; held content to its author only."""
    if status == ContentStatus.PUBLISHED:
        return True
    return status == ContentStatus.HELD and author_id == viewer_id


async def display_name(
    session: AsyncSession, brand_id: uuid.UUID, member_id: uuid.UUID
) -> str | None:
    """The name shown with an author's content."""
    return await PostRepository(session).author_name(brand_id, member_id)


# --- Posts --------------------------------------------------------------------------------------


class PostFields(Protocol):
    """What a post's events carry: a `Post`, or a row a bulk loader is about to write."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def brand_id(self) -> uuid.UUID: ...
    @property
    def author_id(self) -> uuid.UUID: ...
    @property
    def kind(self) -> PostKind: ...
    @property
    def status(self) -> ContentStatus: ...
    @property
    def group_id(self) -> uuid.UUID | None: ...
    @property
    def prompt_id(self) -> uuid.UUID | None: ...
    @property
    def review_sku(self) -> str | None: ...
    @property
    def rating(self) -> int | None: ...
    @property
    def tags(self) -> list[str]: ...
    @property
    def skus(self) -> list[str]: ...
    @property
    def incentivised(self) -> bool: ...
    @property
    def created_at(self) -> datetime: ...


def post_data(post: PostFields) -> PostData:
    return PostData(
        post_id=post.id,
        author_id=post.author_id,
        kind=post.kind,
        status=post.status,
        group_id=post.group_id,
        prompt_id=post.prompt_id,
        review_sku=post.review_sku,
        rating=post.rating,
        tags=list(post.tags),
        skus=list(post.skus),
        incentivised=post.incentivised,
    )


def written_post_events(post: PostFields) -> list[PostCreated | PostApproved]:
    """What writing a post announces, at its creation: `post.created`, and `post.approved`
    too when the first pass published it at once. The bulk history path announces the same."""
    data = post_data(post)
    brand_id, author_id, at = post.brand_id, post.author_id, post.created_at
    written: list[PostCreated | PostApproved] = [
        PostCreated(brand_id=brand_id, subject_id=author_id, data=data, occurred_at=at)
    ]
    if post.status == ContentStatus.PUBLISHED:
        written.append(
            PostApproved(brand_id=brand_id, subject_id=author_id, data=data, occurred_at=at)
        )
    return written


async def create_post(
    session: AsyncSession,
    author: CommunityMember,
    payload: PostCreate,
    *,
    prompt_id: uuid.UUID | None = None,
    incentivised: bool = False,
) -> Post:
    """Writes `author`'s post (the caller has checked `prompt_id`, if any) and its events."""
    _require_free(author)
    brand_id = author.brand_id
    if payload.group_id is not None:
        await require_active_membership(session, brand_id, payload.group_id, author.member_id)
    _check_links(author, payload.body)
    posts = PostRepository(session)
    is_review = payload.kind == PostKind.REVIEW
    if is_review:
        assert payload.review_sku is not None
        await _no_live_review(posts, author.member_id, payload.review_sku)
    digest = body_hash(payload.body)
    screening = await _screen(session, author, _screened_text(payload.body, payload.media), digest)
    published = screening.status == ContentStatus.PUBLISHED
    now = utcnow()
    post = await posts.insert(
        {
            "brand_id": brand_id,
            "author_id": author.member_id,
            "kind": payload.kind,
            "body": payload.body,
            "media": [item.model_dump() for item in payload.media],
            "tags": payload.tags,
            "skus": payload.skus,
            "group_id": payload.group_id,
            "prompt_id": prompt_id,
            "review_sku": payload.review_sku,
            "rating": payload.rating,
            "incentivised": incentivised,
            "status": screening.status,
            "held_reasons": list(screening.reasons),
            "body_hash": digest,
            "created_at": now,
            "updated_at": now,
            "approved_at": now if published else None,
        }
    )
    if post is None:  # a review of the same sku landed first, from a concurrent request
        assert payload.review_sku is not None
        raise _review_exists(payload.review_sku)
    for event in written_post_events(post):
        await OUTBOX.add(session, event)
    return post


def _review_exists(sku: str) -> ReviewExists:
    return ReviewExists(
        f"You already have a review of {sku!r}: edit it (PATCH) or delete it to write another."
    )


async def _no_live_review(posts: PostRepository, author_id: uuid.UUID, sku: str) -> None:
    if await posts.live_review(author_id, sku) is not None:
        raise _review_exists(sku)


async def readable_post(
    session: AsyncSession, brand_id: uuid.UUID, post_id: uuid.UUID, viewer_id: uuid.UUID | None
) -> Post:
    """The post if `viewer_id` may see it: 404 `PostNotFound` when held (and not theirs),
    removed, unknown or of another brand."""
    post = await PostRepository(session).get(brand_id, post_id)
    if post is None or not visible_to(post.status, post.author_id, viewer_id):
        raise PostNotFound()
    return post


async def live_post(
    session: AsyncSession, member: CommunityMember, post_id: uuid.UUID, *, lock: bool = False
) -> Post:
    """A post `member` can see that still takes comments, reactions and bookmarks: 404
    `PostNotFound` if they cannot see it, 409 `PostRemoved` once it is removed. `lock` holds the
    row until the transaction ends."""
    post = await PostRepository(session).get(member.brand_id, post_id, for_update=lock)
    if post is None or (post.status == ContentStatus.HELD and post.author_id != member.member_id):
        raise PostNotFound()
    if post.status == ContentStatus.REMOVED:
        raise PostRemoved()
    return post


async def interactive_post(
    session: AsyncSession, member: CommunityMember, post_id: uuid.UUID, *, lock: bool = False
) -> Post:
    """A post `member` may comment on or react to: live (see `live_post`), its author not
    blocked either way (403 `MemberBlocked`), and if it is in a group, `member` is an active
    member of the group (403 `NotAGroupMember` / `RemovedFromGroup`)."""
    post = await live_post(session, member, post_id, lock=lock)
    await ensure_not_blocked(session, member.member_id, post.author_id)
    if post.group_id is not None:
        await require_active_membership(session, member.brand_id, post.group_id, member.member_id)
    return post


async def _own_post(session: AsyncSession, member: CommunityMember, post_id: uuid.UUID) -> Post:
    """The member's own post, locked for a change (403 `NotTheAuthor` for someone else's)."""
    post = await PostRepository(session).get(member.brand_id, post_id, for_update=True)
    if post is None or not visible_to(post.status, post.author_id, member.member_id):
        if post is not None and post.author_id == member.member_id:
            return post  # removed: the caller decides (a repeated delete is a no-op)
        raise PostNotFound()
    if post.author_id != member.member_id:
        raise NotTheAuthor("Only the author may change or delete this post.")
    return post


async def update_post(
    session: AsyncSession, member: CommunityMember, post_id: uuid.UUID, payload: PostUpdate
) -> Post:
    """The author's edit of their live post, screened again."""
    _require_free(member)
    post = await _own_post(session, member, post_id)
    if post.status == ContentStatus.REMOVED:
        raise PostNotFound()
    if post.group_id is not None:
        await require_active_membership(session, member.brand_id, post.group_id, member.member_id)
    body = payload.body if payload.body is not None else post.body
    media = payload.media if payload.media is not None else [Media(**m) for m in post.media]
    if payload.body is not None:
        _check_links(member, body)
    digest = body_hash(body)
    screening = await _screen(session, member, _screened_text(body, media), digest, editing=post.id)
    was_held = post.status == ContentStatus.HELD
    now = utcnow()
    post.body = body
    post.media = [item.model_dump() for item in media]
    if payload.tags is not None:
        post.tags = payload.tags
    post.body_hash = digest
    post.status = screening.status
    post.held_reasons = list(screening.reasons)
    post.updated_at = now
    published_now = was_held and screening.status == ContentStatus.PUBLISHED
    if published_now:
        post.approved_at = now
    await PostRepository(session).flush()
    if published_now:
        await OUTBOX.add(
            session,
            PostApproved(brand_id=post.brand_id, subject_id=post.author_id, data=post_data(post)),
        )
    return post


async def delete_own_post(
    session: AsyncSession, member: CommunityMember, post_id: uuid.UUID
) -> None:
    """The author removes their post (a repeated delete changes nothing)."""
    post = await _own_post(session, member, post_id)
    await remove_post(session, post, removed_by="author", reason=None)


async def approve_post(session: AsyncSession, post: Post) -> None:
    """Held -> published, with `post.approved`; already published or removed: nothing."""
    approved = await PostRepository(session).transition(
        post.id,
        from_=[ContentStatus.HELD],
        values={"status": ContentStatus.PUBLISHED, "approved_at": utcnow()},
    )
    if approved is not None:
        await OUTBOX.add(
            session,
            PostApproved(
                brand_id=approved.brand_id, subject_id=approved.author_id, data=post_data(approved)
            ),
        )


async def remove_post(
    session: AsyncSession, post: Post, *, removed_by: RemovedBy, reason: str | None
) -> None:
    """Held or published -> removed, with `post.removed`; already removed: nothing."""
    removed = await PostRepository(session).transition(
        post.id,
        from_=[ContentStatus.HELD, ContentStatus.PUBLISHED],
        values={"status": ContentStatus.REMOVED, "removed_at": utcnow()},
    )
    if removed is not None:
        data = PostRemovedData(
            **post_data(removed).model_dump(), removed_by=removed_by, reason=reason
        )
        await OUTBOX.add(
            session,
            events.PostRemoved(brand_id=removed.brand_id, subject_id=removed.author_id, data=data),
        )


# --- Comments -----------------------------------------------------------------------------------


class CommentFields(Protocol):
    """What a comment's events carry: a `Comment`, or a row a bulk loader is about to write."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def brand_id(self) -> uuid.UUID: ...
    @property
    def post_id(self) -> uuid.UUID: ...
    @property
    def parent_id(self) -> uuid.UUID | None: ...
    @property
    def author_id(self) -> uuid.UUID: ...
    @property
    def status(self) -> ContentStatus: ...
    @property
    def created_at(self) -> datetime: ...


def _comment_data(comment: CommentFields, post_author_id: uuid.UUID) -> CommentData:
    return CommentData(
        comment_id=comment.id,
        post_id=comment.post_id,
        post_author_id=post_author_id,
        parent_id=comment.parent_id,
        author_id=comment.author_id,
        status=comment.status,
    )


def comment_created(comment: CommentFields, post_author_id: uuid.UUID) -> CommentCreated:
    """What writing a comment announces, at its creation (held or published: `status` says),
    online and from the bulk history path alike."""
    return CommentCreated(
        brand_id=comment.brand_id,
        subject_id=comment.author_id,
        data=_comment_data(comment, post_author_id),
        occurred_at=comment.created_at,
    )


async def _parent(
    session: AsyncSession, member: CommunityMember, post: Post, parent_id: uuid.UUID
) -> Comment:
    parent = await CommentRepository(session).get(member.brand_id, parent_id)
    if (
        parent is None
        or parent.post_id != post.id
        or (parent.status == ContentStatus.HELD and parent.author_id != member.member_id)
    ):
        raise InvalidParent(f"No comment {parent_id} on post {post.id} to reply to.")
    if parent.status == ContentStatus.REMOVED:
        raise CommentRemoved("The comment you reply to was removed.")
    await ensure_not_blocked(session, member.member_id, parent.author_id)
    return parent


async def create_comment(
    session: AsyncSession, member: CommunityMember, post_id: uuid.UUID, payload: CommentCreate
) -> Comment:
    """`member`'s comment on a post (or reply to a comment on it), screened like posts."""
    _require_free(member)
    # Locked so a removal cannot slip between the check and the counter.
    post = await interactive_post(session, member, post_id, lock=True)
    if payload.parent_id is not None:
        await _parent(session, member, post, payload.parent_id)
    _check_links(member, payload.body)
    digest = body_hash(payload.body)
    screening = await _screen(session, member, payload.body, digest)
    published = screening.status == ContentStatus.PUBLISHED
    now = utcnow()
    comment = Comment(
        id=new_id(),
        brand_id=member.brand_id,
        post_id=post.id,
        parent_id=payload.parent_id,
        author_id=member.member_id,
        body=payload.body,
        status=screening.status,
        held_reasons=list(screening.reasons),
        body_hash=digest,
        created_at=now,
        approved_at=now if published else None,
    )
    await CommentRepository(session).add(comment)
    if published:
        await PostRepository(session).add_to_counts(post.id, comments=1)
    await OUTBOX.add(session, comment_created(comment, post.author_id))
    return comment


async def readable_comment(
    session: AsyncSession, brand_id: uuid.UUID, comment_id: uuid.UUID, viewer_id: uuid.UUID
) -> Comment:
    comment = await CommentRepository(session).get(brand_id, comment_id)
    if comment is None or not visible_to(comment.status, comment.author_id, viewer_id):
        raise CommentNotFound()
    await readable_post(session, brand_id, comment.post_id, viewer_id)
    return comment


async def delete_own_comment(
    session: AsyncSession, member: CommunityMember, comment_id: uuid.UUID
) -> None:
    comment = await CommentRepository(session).get(member.brand_id, comment_id)
    if comment is None or (
        comment.author_id != member.member_id and comment.status != ContentStatus.PUBLISHED
    ):
        raise CommentNotFound()
    if comment.author_id != member.member_id:
        raise NotTheAuthor("Only the author may delete this comment.")
    await remove_comment(session, comment, removed_by="author", reason=None)


async def approve_comment(session: AsyncSession, comment: Comment) -> None:
    """Held -> published, counted on its post, with `comment.approved`; otherwise nothing."""
    approved = await CommentRepository(session).transition(
        comment.id,
        from_=[ContentStatus.HELD],
        values={"status": ContentStatus.PUBLISHED, "approved_at": utcnow()},
    )
    if approved is None:
        return
    posts = PostRepository(session)
    await posts.add_to_counts(approved.post_id, comments=1)
    post = await posts.get(approved.brand_id, approved.post_id)
    assert post is not None
    await OUTBOX.add(
        session,
        CommentApproved(
            brand_id=approved.brand_id,
            subject_id=approved.author_id,
            data=_comment_data(approved, post.author_id),
        ),
    )


async def remove_comment(
    session: AsyncSession, comment: Comment, *, removed_by: RemovedBy, reason: str | None
) -> None:
    """Held or published -> removed, uncounted from its post, with `comment.removed`; already
    removed: nothing."""
    comments = CommentRepository(session)
    current = await comments.get(comment.brand_id, comment.id, for_update=True)
    if current is None or current.status == ContentStatus.REMOVED:
        return
    was_published = current.status == ContentStatus.PUBLISHED
    removed = await comments.transition(
        comment.id,
        from_=[ContentStatus.HELD, ContentStatus.PUBLISHED],
        values={"status": ContentStatus.REMOVED, "removed_at": utcnow()},
    )
    assert removed is not None  # the row is locked and was live
    posts = PostRepository(session)
    if was_published:
        await posts.add_to_counts(removed.post_id, comments=-1)
    post = await posts.get(removed.brand_id, removed.post_id)
    assert post is not None
    data = CommentRemovedData(
        **_comment_data(removed, post.author_id).model_dump(), removed_by=removed_by, reason=reason
    )
    await OUTBOX.add(
        session,
        events.CommentRemoved(brand_id=removed.brand_id, subject_id=removed.author_id, data=data),
    )
