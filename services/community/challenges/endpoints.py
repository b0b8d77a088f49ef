"""REST for the community's challenges: staff define them, members join and follow progress."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Query, Response

from services.community.access import CurrentMember, ReadingMember, StaffRead, StaffWrite
from services.community.challenges import service
from services.community.challenges.schemas import (
    ChallengeCreate,
    ChallengeRead,
    ChallengeUpdate,
    MyChallengeRead,
    ProgressRead,
)
from services.kernel.db import SessionDep
from services.kernel.pagination import Page, PageDep
from services.kernel.routing import Router

router = Router(prefix="/community/v1", tags=["community: challenges"])

_NOT_FOUND: dict[int | str, dict[str, str]] = {404: {"description": "ChallengeNotFound"}}


# --- Staff --------------------------------------------------------------------------------------


@router.post(
    "/challenges",
    status_code=201,
    response_model=ChallengeRead,
    summary="Start a challenge",
    responses={422: {"description": "ValidationError, UnknownBadge"}},
)
async def create_challenge(
    payload: ChallengeCreate, session: SessionDep, staff: StaffWrite
) -> ChallengeRead:
    return await service.create_challenge(session, staff.brand_id, payload)


@router.get("/challenges", response_model=Page[ChallengeRead], summary="The brand's challenges")
async def list_challenges(
    session: SessionDep, staff: StaffRead, page: PageDep
) -> Page[ChallengeRead]:
    return await service.list_challenges(session, staff.brand_id, page)


@router.get(
    "/challenges/{challenge_id}",
    response_model=ChallengeRead,
    summary="Get a challenge",
    responses=_NOT_FOUND,
)
async def get_challenge(
    challenge_id: uuid.UUID, session: SessionDep, staff: StaffRead
) -> ChallengeRead:
    return await service.get_challenge(session, staff.brand_id, challenge_id)


@router.patch(
    "/challenges/{challenge_id}",
    response_model=ChallengeRead,
    summary="Change a challenge",
    responses={
        **_NOT_FOUND,
        409: {"description": "ChallengeStarted: steps and start are fixed once it started"},
        422: {"description": "ValidationError, UnknownBadge"},
    },
)
async def update_challenge(
    challenge_id: uuid.UUID, payload: ChallengeUpdate, session: SessionDep, staff: StaffWrite
) -> ChallengeRead:
    return await service.update_challenge(session, staff.brand_id, challenge_id, payload)


@router.delete(
    "/challenges/{challenge_id}",
    status_code=204,
    summary="Delete a challenge nobody joined",
    responses={**_NOT_FOUND, 409: {"description": "ChallengeHasParticipants"}},
)
async def delete_challenge(
    challenge_id: uuid.UUID, session: SessionDep, staff: StaffWrite
) -> Response:
    await service.delete_challenge(session, staff.brand_id, challenge_id)
    return Response(status_code=204)


@router.get(
    "/challenges/{challenge_id}/participants",
    response_model=Page[ProgressRead],
    summary="Who joined a challenge, with their progress (staff)",
    responses=_NOT_FOUND,
)
async def challenge_participants(
    challenge_id: uuid.UUID, session: SessionDep, staff: StaffRead, page: PageDep
) -> Page[ProgressRead]:
    return await service.participants(session, staff.brand_id, challenge_id, page)


# --- Members ------------------------------------------------------------------------------------


@router.post(
    "/challenges/{challenge_id}/participants",
    status_code=201,
    response_model=MyChallengeRead,
    summary="Join a challenge (201; 200 if I had joined already)",
    responses={
        200: {"description": "Already joined: my progress", "model": MyChallengeRead},
        **_NOT_FOUND,
        409: {"description": "ChallengeClosed: it has ended"},
    },
)
async def join_challenge(
    challenge_id: uuid.UUID, session: SessionDep, me: CurrentMember
) -> Response:
    view, joined = await service.join(session, me, challenge_id)
    return Response(
        content=view.model_dump_json(),
        status_code=201 if joined else 200,
        media_type="application/json",
    )


@router.get(
    "/me/challenges",
    response_model=Page[MyChallengeRead],
    summary="Challenges open to join or in progress, with my progress",
)
async def my_challenges(
    session: SessionDep,
    me: ReadingMember,
    page: PageDep,
    joined: Annotated[
        bool,
        Query(description="Only challenges I joined, ended ones included."),
    ] = False,
) -> Page[MyChallengeRead]:
    return await service.my_challenges(session, me, page, joined_only=joined)


@router.get(
    "/me/challenges/{challenge_id}",
    response_model=MyChallengeRead,
    summary="A challenge with my progress and streaks",
    responses=_NOT_FOUND,
)
async def my_challenge(
    challenge_id: uuid.UUID, session: SessionDep, me: ReadingMember
) -> MyChallengeRead:
    return await service.my_challenge(session, me, challenge_id)
