"""REST for the community's ideas board: members propose, vote and comment; staff answer."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Request, Response

from services.community.access import CurrentMember, ReadingActor, StaffRead, StaffWrite
from services.community.ideas import service
from services.community.ideas.models import IdeaCategory, IdeaStatus
from services.community.ideas.paging import BoardPageDep
from services.community.ideas.repository import BoardFilters
from services.community.ideas.schemas import (
    CommentCreate,
    CommentRead,
    IdeaCreate,
    IdeaRead,
    IdeaSort,
    StatusUpdate,
    VoterRead,
)
from services.community.models import IDEMPOTENCY
from services.kernel.auth import MemberDep
from services.kernel.db import SessionDep
from services.kernel.idempotency import IdempotencyKeyHeader, request_hash
from services.kernel.pagination import Page, PageDep
from services.kernel.routing import Router

router = Router(prefix="/community/v1", tags=["community: ideas"])

_IDEA_404: dict[int | str, dict[str, Any]] = {404: {"description": "IdeaNotFound, MemberNotFound"}}


@router.post(
    "/ideas",
    status_code=201,
    response_model=IdeaRead,
    summary="Propose an idea (your own vote is counted with it)",
    responses={403: {"description": "MemberSuspended"}, 404: {"description": "MemberNotFound"}},
)
async def propose_idea(
    payload: IdeaCreate,
    request: Request,
    session: SessionDep,
    principal: MemberDep,
    member: CurrentMember,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    async def work() -> IdeaRead:
        return await service.propose(session, member, payload)

    return await IDEMPOTENCY.run(
        session,
        caller=principal,
        key=idempotency_key,
        fingerprint=request_hash(request.method, request.url.path, payload),
        status_code=201,
        work=work,
    )


@router.get(
    "/ideas",
    response_model=Page[IdeaRead],
    summary="The ideas board, most voted or newest first (members and staff)",
)
async def list_ideas(
    session: SessionDep,
    viewer: ReadingActor,
    page: BoardPageDep,
    sort: IdeaSort = IdeaSort.VOTES,
    status: IdeaStatus | None = None,
    category: IdeaCategory | None = None,
) -> Page[IdeaRead]:
    filters = BoardFilters(by_votes=sort == IdeaSort.VOTES, status=status, category=category)
    return await service.board(session, viewer, filters, page)


@router.get(
    "/ideas/{idea_id}",
    response_model=IdeaRead,
    summary="An idea, with its status and the brand's reply",
    responses=_IDEA_404,
)
async def get_idea(idea_id: uuid.UUID, session: SessionDep, viewer: ReadingActor) -> IdeaRead:
    return await service.get_idea(session, viewer, idea_id)


@router.post(
    "/ideas/{idea_id}/vote",
    response_model=IdeaRead,
    summary="Vote for an idea (once)",
    responses={
        **_IDEA_404,
        403: {"description": "MemberSuspended"},
        409: {"description": "AlreadyVoted, IdeaClosed (launched or declined)"},
    },
)
async def vote(idea_id: uuid.UUID, session: SessionDep, member: CurrentMember) -> IdeaRead:
    return await service.vote(session, member, idea_id)


@router.delete(
    "/ideas/{idea_id}/vote",
    response_model=IdeaRead,
    summary="Take my vote back",
    responses={404: {"description": "IdeaNotFound, VoteNotFound, MemberNotFound"}},
)
async def unvote(idea_id: uuid.UUID, session: SessionDep, member: CurrentMember) -> IdeaRead:
    return await service.unvote(session, member, idea_id)


@router.get(
    "/ideas/{idea_id}/voters",
    response_model=Page[VoterRead],
    summary="Who voted, in voting order (staff; the rest of an `idea.status_changed`'s voters)",
    responses={404: {"description": "IdeaNotFound"}},
)
async def list_voters(
    idea_id: uuid.UUID, session: SessionDep, staff: StaffRead, page: PageDep
) -> Page[VoterRead]:
    rows = await service.voters(session, staff.brand_id, idea_id, page)
    return Page[VoterRead].of(
        rows,
        page,
        key=lambda v: v.id,
        item=lambda v: VoterRead(member_id=v.member_id, voted_at=v.created_at),
    )


@router.post(
    "/ideas/{idea_id}/comments",
    status_code=201,
    response_model=CommentRead,
    summary="Comment on an idea",
    responses={**_IDEA_404, 403: {"description": "MemberSuspended"}},
)
async def comment(
    idea_id: uuid.UUID,
    payload: CommentCreate,
    request: Request,
    session: SessionDep,
    principal: MemberDep,
    member: CurrentMember,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    async def work() -> CommentRead:
        return await service.comment(session, member, idea_id, payload)

    return await IDEMPOTENCY.run(
        session,
        caller=principal,
        key=idempotency_key,
        fingerprint=request_hash(request.method, request.url.path, payload),
        status_code=201,
        work=work,
    )


@router.get(
    "/ideas/{idea_id}/comments",
    response_model=Page[CommentRead],
    summary="An idea's comments, oldest first",
    responses=_IDEA_404,
)
async def list_comments(
    idea_id: uuid.UUID, session: SessionDep, viewer: ReadingActor, page: PageDep
) -> Page[CommentRead]:
    return await service.comments(session, viewer.brand_id, idea_id, page)


@router.put(
    "/ideas/{idea_id}/status",
    response_model=IdeaRead,
    summary="Answer an idea with a status and a public reply (staff); voters are told",
    responses={404: {"description": "IdeaNotFound"}},
)
async def answer(
    idea_id: uuid.UUID, payload: StatusUpdate, session: SessionDep, staff: StaffWrite
) -> IdeaRead:
    return await service.answer(session, staff, idea_id, payload)
