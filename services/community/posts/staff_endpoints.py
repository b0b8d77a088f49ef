"""REST for staff reads of posts and comments in every status (e.g. `?status=held`)."""

from __future__ import annotations

import uuid

from services.community.access import StaffRead
from services.community.models import ContentStatus
from services.community.posts import staff
from services.community.posts.schemas import StaffCommentRead, StaffPostRead
from services.kernel.db import SessionDep
from services.kernel.pagination import Page, PageDep
from services.kernel.routing import Router

router = Router()


@router.get(
    "/staff/posts",
    response_model=Page[StaffPostRead],
    summary="Posts of the brand, newest first, optionally of one status",
)
async def list_posts(
    session: SessionDep, principal: StaffRead, page: PageDep, status: ContentStatus | None = None
) -> Page[StaffPostRead]:
    rows = await staff.posts(session, principal.brand_id, status, page)
    return Page[StaffPostRead].of(rows, page, key=lambda p: p.id, item=StaffPostRead.model_validate)


@router.get(
    "/staff/posts/{post_id}",
    response_model=StaffPostRead,
    summary="A post in any status",
    responses={404: {"description": "PostNotFound"}},
)
async def get_post(post_id: uuid.UUID, session: SessionDep, principal: StaffRead) -> StaffPostRead:
    return StaffPostRead.model_validate(await staff.post(session, principal.brand_id, post_id))


@router.get(
    "/staff/comments",
    response_model=Page[StaffCommentRead],
    summary="Comments of the brand, newest first, optionally of one status",
)
async def list_comments(
    session: SessionDep, principal: StaffRead, page: PageDep, status: ContentStatus | None = None
) -> Page[StaffCommentRead]:
    rows = await staff.comments(session, principal.brand_id, status, page)
    return Page[StaffCommentRead].of(
        rows, page, key=lambda c: c.id, item=StaffCommentRead.model_validate
    )


@router.get(
    "/staff/comments/{comment_id}",
    response_model=StaffCommentRead,
    summary="A comment in any status",
    responses={404: {"description": "CommentNotFound"}},
)
async def get_comment(
    comment_id: uuid.UUID, session: SessionDep, principal: StaffRead
) -> StaffCommentRead:
    return StaffCommentRead.model_validate(
        await staff.comment(session, principal.brand_id, comment_id)
    )
