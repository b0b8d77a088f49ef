"""REST for posts, comments, reactions and bookmarks (members acting as themselves); the feeds
and staff reads are mounted from `feed_endpoints` and `staff_endpoints`."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Request, Response

from services.community.access import CurrentMember, ReadingMember, principal_of
from services.community.models import IDEMPOTENCY
from services.community.posts import bookmarks, reactions, service
from services.community.posts.events import ReactionKind
from services.community.posts.feed_endpoints import router as feed_router
from services.community.posts.reactions import Outcome
from services.community.posts.schemas import (
    BookmarkRead,
    CommentCreate,
    CommentRead,
    PostCreate,
    PostRead,
    PostUpdate,
    ReactionCreate,
    ReactionRead,
)
from services.community.posts.staff_endpoints import router as staff_router
from services.kernel.db import SessionDep
from services.kernel.idempotency import IdempotencyKeyHeader, request_hash
from services.kernel.routing import Router

router = Router(prefix="/community/v1", tags=["community: posts"])

_WRITE_ERRORS: dict[int | str, dict[str, str]] = {
    403: {
        "description": "MemberSuspended, TrustLevelTooLow (links need trust level 1), "
        "NotAGroupMember, RemovedFromGroup, MemberBlocked"
    },
    404: {"description": "PostNotFound, GroupNotFound, MemberNotFound"},
    409: {"description": "PostRemoved, ReviewExists, IdempotencyKeyReused"},
    422: {"description": "ValidationError"},
}


# --- Posts --------------------------------------------------------------------------------------


@router.post(
    "/posts",
    status_code=201,
    response_model=PostRead,
    summary="Write a post or a review (held for review if the first pass doubts it)",
    responses=_WRITE_ERRORS,
)
async def create_post(
    payload: PostCreate,
    request: Request,
    session: SessionDep,
    me: CurrentMember,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    async def work() -> PostRead:
        post = await service.create_post(session, me, payload)
        return PostRead.of(post, me.display_name)

    return await IDEMPOTENCY.run(
        session,
        caller=principal_of(me),
        key=idempotency_key,
        fingerprint=request_hash(request.method, request.url.path, payload),
        status_code=201,
        work=work,
    )


@router.get(
    "/posts/{post_id}",
    response_model=PostRead,
    summary="Read a post (held: its author only; removed: no one)",
    responses={404: {"description": "PostNotFound"}},
)
async def read_post(post_id: uuid.UUID, session: SessionDep, me: ReadingMember) -> PostRead:
    post = await service.readable_post(session, me.brand_id, post_id, me.member_id)
    return PostRead.of(post, await service.display_name(session, me.brand_id, post.author_id))


@router.patch(
    "/posts/{post_id}",
    response_model=PostRead,
    summary="Edit my post's text, tags or media (screened again)",
    responses={**_WRITE_ERRORS, 403: {"description": "NotTheAuthor, TrustLevelTooLow, ..."}},
)
async def update_post(
    post_id: uuid.UUID, payload: PostUpdate, session: SessionDep, me: CurrentMember
) -> PostRead:
    post = await service.update_post(session, me, post_id, payload)
    return PostRead.of(post, me.display_name)


@router.delete(
    "/posts/{post_id}",
    status_code=204,
    summary="Delete my post",
    responses={403: {"description": "NotTheAuthor"}, 404: {"description": "PostNotFound"}},
)
async def delete_post(post_id: uuid.UUID, session: SessionDep, me: CurrentMember) -> Response:
    await service.delete_own_post(session, me, post_id)
    return Response(status_code=204)


# --- Comments -----------------------------------------------------------------------------------


@router.post(
    "/posts/{post_id}/comments",
    status_code=201,
    response_model=CommentRead,
    summary="Comment on a post, or reply to a comment on it (`parent_id`)",
    responses={
        **_WRITE_ERRORS,
        404: {"description": "PostNotFound, InvalidParent"},
        409: {"description": "PostRemoved, CommentRemoved, IdempotencyKeyReused"},
    },
)
async def create_comment(
    post_id: uuid.UUID,
    payload: CommentCreate,
    request: Request,
    session: SessionDep,
    me: CurrentMember,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    async def work() -> CommentRead:
        comment = await service.create_comment(session, me, post_id, payload)
        return CommentRead.of(comment, me.display_name)

    return await IDEMPOTENCY.run(
        session,
        caller=principal_of(me),
        key=idempotency_key,
        fingerprint=request_hash(request.method, request.url.path, payload),
        status_code=201,
        work=work,
    )


@router.get(
    "/comments/{comment_id}",
    response_model=CommentRead,
    summary="Read a comment",
    responses={404: {"description": "CommentNotFound, PostNotFound"}},
)
async def read_comment(
    comment_id: uuid.UUID, session: SessionDep, me: ReadingMember
) -> CommentRead:
    comment = await service.readable_comment(session, me.brand_id, comment_id, me.member_id)
    name = await service.display_name(session, me.brand_id, comment.author_id)
    return CommentRead.of(comment, name)


@router.delete(
    "/comments/{comment_id}",
    status_code=204,
    summary="Delete my comment",
    responses={403: {"description": "NotTheAuthor"}, 404: {"description": "CommentNotFound"}},
)
async def delete_comment(comment_id: uuid.UUID, session: SessionDep, me: CurrentMember) -> Response:
    await service.delete_own_comment(session, me, comment_id)
    return Response(status_code=204)


# --- Reactions ----------------------------------------------------------------------------------

_REACT_ERRORS: dict[int | str, dict[str, str]] = {
    403: {"description": "MemberSuspended, MemberBlocked, NotAGroupMember, RemovedFromGroup"},
    404: {"description": "PostNotFound, CommentNotFound"},
    409: {"description": "PostRemoved, CommentRemoved"},
    422: {"description": "ValidationError (an unknown kind)"},
}

# Reacting again with the same kind answers 200 with the reaction as it stands.
_REACT_AGAIN: dict[int | str, dict[str, Any]] = {
    200: {"description": "Already given: nothing changed", "model": ReactionRead},
    **_REACT_ERRORS,
}


def _reaction(outcome: Outcome, response: Response) -> ReactionRead:
    if not outcome.created:
        response.status_code = 200
    return ReactionRead(
        post_id=outcome.target.post.id,
        comment_id=outcome.target.comment_id,
        kind=outcome.kind,
        reaction_count=outcome.reaction_count,
    )


@router.post(
    "/posts/{post_id}/reactions",
    status_code=201,
    response_model=ReactionRead,
    summary="React to a post (201 new, 200 if I already gave this kind)",
    responses=_REACT_AGAIN,
)
async def react_to_post(
    post_id: uuid.UUID,
    payload: ReactionCreate,
    response: Response,
    session: SessionDep,
    me: CurrentMember,
) -> ReactionRead:
    target = await reactions.post_target(session, me, post_id)
    return _reaction(await reactions.react(session, me, target, payload.kind), response)


@router.delete(
    "/posts/{post_id}/reactions/{kind}",
    status_code=204,
    summary="Take back my reaction to a post",
    responses=_REACT_ERRORS,
)
async def unreact_to_post(
    post_id: uuid.UUID, kind: ReactionKind, session: SessionDep, me: CurrentMember
) -> Response:
    target = await reactions.post_target(session, me, post_id)
    await reactions.unreact(session, me, target, kind)
    return Response(status_code=204)


@router.post(
    "/comments/{comment_id}/reactions",
    status_code=201,
    response_model=ReactionRead,
    summary="React to a comment (201 new, 200 if I already gave this kind)",
    responses=_REACT_AGAIN,
)
async def react_to_comment(
    comment_id: uuid.UUID,
    payload: ReactionCreate,
    response: Response,
    session: SessionDep,
    me: CurrentMember,
) -> ReactionRead:
    target = await reactions.comment_target(session, me, comment_id)
    return _reaction(await reactions.react(session, me, target, payload.kind), response)


@router.delete(
    "/comments/{comment_id}/reactions/{kind}",
    status_code=204,
    summary="Take back my reaction to a comment",
    responses=_REACT_ERRORS,
)
async def unreact_to_comment(
    comment_id: uuid.UUID, kind: ReactionKind, session: SessionDep, me: CurrentMember
) -> Response:
    target = await reactions.comment_target(session, me, comment_id)
    await reactions.unreact(session, me, target, kind)
    return Response(status_code=204)


# --- Bookmarks ----------------------------------------------------------------------------------


@router.put(
    "/posts/{post_id}/bookmark",
    status_code=201,
    response_model=BookmarkRead,
    summary="Save a post to my bookmarks (201 new, 200 if already saved)",
    responses={
        200: {"description": "Already saved: nothing changed", "model": BookmarkRead},
        404: {"description": "PostNotFound"},
        409: {"description": "PostRemoved"},
    },
)
async def bookmark(
    post_id: uuid.UUID, response: Response, session: SessionDep, me: CurrentMember
) -> BookmarkRead:
    created, at = await bookmarks.save(session, me, post_id)
    if not created:
        response.status_code = 200
    return BookmarkRead(post_id=post_id, bookmarked_at=at)


@router.delete(
    "/posts/{post_id}/bookmark", status_code=204, summary="Remove a post from my bookmarks"
)
async def unbookmark(post_id: uuid.UUID, session: SessionDep, me: CurrentMember) -> Response:
    await bookmarks.unsave(session, me, post_id)
    return Response(status_code=204)


router.include_router(feed_router)
router.include_router(staff_router)
