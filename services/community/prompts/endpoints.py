"""REST for the community's prompts: staff write them, members answer them with posts."""

from __future__ import annotations

import uuid

from fastapi import Request, Response

from services.community.access import (
    CurrentMember,
    ReadingActor,
    ReadingMember,
    StaffRead,
    StaffWrite,
    principal_of,
)
from services.community.models import IDEMPOTENCY, Post
from services.community.posts.schemas import PostCreate, PostRead
from services.community.prompts import service
from services.community.prompts.schemas import (
    OpenPromptRead,
    PromptCreate,
    PromptRead,
    PromptUpdate,
)
from services.kernel.db import SessionDep
from services.kernel.idempotency import IdempotencyKeyHeader, request_hash
from services.kernel.pagination import OptionalIds, Page, PageDep
from services.kernel.routing import Router

router = Router(prefix="/community/v1", tags=["community: prompts"])

_NOT_FOUND: dict[int | str, dict[str, str]] = {404: {"description": "PromptNotFound"}}


# --- Staff --------------------------------------------------------------------------------------


@router.post(
    "/prompts",
    status_code=201,
    response_model=PromptRead,
    summary="Write a prompt",
    responses={422: {"description": "ValidationError, InvalidAudience"}},
)
async def create_prompt(
    payload: PromptCreate, session: SessionDep, staff: StaffWrite
) -> PromptRead:
    return PromptRead.model_validate(await service.create_prompt(session, staff.brand_id, payload))


@router.get(
    "/prompts",
    response_model=Page[PromptRead] | Page[OpenPromptRead],
    summary="Prompts, newest first: every prompt of the brand to staff; to a member, those for "
    "them that have started (as `OpenPromptRead`). With `ids`, those among the ids, unpaged",
    responses={422: {"description": "ValidationError (more than 100 ids, not uuids)"}},
)
async def list_prompts(
    session: SessionDep, viewer: ReadingActor, page: PageDep, ids: OptionalIds = None
) -> Page[PromptRead] | Page[OpenPromptRead]:
    if viewer.member is not None:
        mine = await service.member_prompts(session, viewer.member, page, ids)
        if ids is not None:
            return Page[OpenPromptRead](items=[OpenPromptRead.model_validate(p) for p in mine])
        return Page[OpenPromptRead].of(
            mine, page, key=lambda p: p.id, item=OpenPromptRead.model_validate
        )
    if ids is not None:
        rows = await service.prompts_by_ids(session, viewer.brand_id, ids)
        return Page[PromptRead](items=[PromptRead.model_validate(p) for p in rows])
    rows = await service.list_prompts(session, viewer.brand_id, page)
    return Page[PromptRead].of(rows, page, key=lambda p: p.id, item=PromptRead.model_validate)


@router.get(
    "/prompts/{prompt_id}", response_model=PromptRead, summary="Get a prompt", responses=_NOT_FOUND
)
async def get_prompt(prompt_id: uuid.UUID, session: SessionDep, staff: StaffRead) -> PromptRead:
    return PromptRead.model_validate(await service.get_prompt(session, staff.brand_id, prompt_id))


@router.patch(
    "/prompts/{prompt_id}",
    response_model=PromptRead,
    summary="Change a prompt (its window, audience, points...)",
    responses={**_NOT_FOUND, 422: {"description": "ValidationError, InvalidAudience"}},
)
async def update_prompt(
    prompt_id: uuid.UUID, payload: PromptUpdate, session: SessionDep, staff: StaffWrite
) -> PromptRead:
    prompt = await service.update_prompt(session, staff.brand_id, prompt_id, payload)
    return PromptRead.model_validate(prompt)


@router.delete(
    "/prompts/{prompt_id}",
    status_code=204,
    summary="Delete a prompt nobody answered",
    responses={**_NOT_FOUND, 409: {"description": "PromptHasAnswers: close it instead"}},
)
async def delete_prompt(prompt_id: uuid.UUID, session: SessionDep, staff: StaffWrite) -> Response:
    await service.delete_prompt(session, staff.brand_id, prompt_id)
    return Response(status_code=204)


# --- Members ------------------------------------------------------------------------------------


@router.get(
    "/me/prompts",
    response_model=Page[OpenPromptRead],
    summary="Prompts I can answer now, newest first",
)
async def my_prompts(session: SessionDep, me: ReadingMember, page: PageDep) -> Page[OpenPromptRead]:
    rows = await service.open_prompts(session, me, page)
    return Page[OpenPromptRead].of(
        rows, page, key=lambda p: p.id, item=OpenPromptRead.model_validate
    )


@router.post(
    "/prompts/{prompt_id}/answers",
    status_code=201,
    response_model=PostRead,
    summary="Answer a prompt with a post (held for review if the first pass doubts it)",
    responses={
        403: {
            "description": "NotInAudience, MemberSuspended, TrustLevelTooLow, NotAGroupMember, "
            "RemovedFromGroup"
        },
        404: {"description": "PromptNotFound, GroupNotFound, MemberNotFound"},
        409: {"description": "PromptClosed (with the window), ReviewExists, IdempotencyKeyReused"},
        422: {"description": "ValidationError"},
    },
)
async def answer_prompt(
    prompt_id: uuid.UUID,
    payload: PostCreate,
    request: Request,
    session: SessionDep,
    me: CurrentMember,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    async def work() -> PostRead:
        post = await service.answer(session, me, prompt_id, payload)
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
    "/prompts/{prompt_id}/answers",
    response_model=Page[PostRead],
    summary="A prompt's published answers, newest first (members and staff)",
    responses=_NOT_FOUND,
)
async def prompt_answers(
    prompt_id: uuid.UUID, session: SessionDep, viewer: ReadingActor, page: PageDep
) -> Page[PostRead]:
    rows = await service.answers(session, viewer.brand_id, prompt_id, viewer.member_id, page)

    def item(row: tuple[Post, str | None]) -> PostRead:
        return PostRead.of(*row)

    return Page[PostRead].of(rows, page, key=lambda r: r[0].id, item=item)
