"""REST for follows, blocks and mutes (members acting as themselves). Adding one is a PUT on
`/me/<relation>/{member_id}`: 201 when new, 200 when it was already there; DELETE removes it
(204, also when there was nothing to remove)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import Response
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.access import CurrentMember, DirectoryDep, ReadingMember
from services.community.models import CommunityMember
from services.community.social import service
from services.community.social.models import Block, Follow, Mute
from services.community.social.repository import Relation
from services.community.social.schemas import RelatedMember, RelationState
from services.kernel.db import SessionDep
from services.kernel.member_directory import MemberDirectory
from services.kernel.pagination import Page, PageDep, PageRequest
from services.kernel.routing import Router

router = Router(prefix="/community/v1", tags=["community: social"])

_ERRORS: dict[int | str, dict[str, str]] = {
    403: {"description": "MemberSuspended, MemberBlocked (follows only)"},
    404: {"description": "MemberNotFound (unknown, or of another brand)"},
    422: {"description": "CannotFollowYourself, CannotBlockYourself, CannotMuteYourself"},
}

Adder = Callable[[AsyncSession, CommunityMember, uuid.UUID, MemberDirectory], Awaitable[bool]]
Remover = Callable[[AsyncSession, CommunityMember, uuid.UUID, MemberDirectory], Awaitable[None]]


def _page(
    rows: Sequence[tuple[uuid.UUID, uuid.UUID, str | None, Any]], page: PageRequest
) -> Page[RelatedMember]:
    return Page[RelatedMember].of(
        rows,
        page,
        key=lambda r: r[0],
        item=lambda r: RelatedMember(
            relation_id=r[0], member_id=r[1], display_name=r[2], since=r[3]
        ),
    )


def _relation_routes(path: str, noun: str, relation: Relation, add: Adder, remove: Remover) -> None:
    """PUT, DELETE and list routes for one of my relations (following, blocks, mutes)."""

    @router.put(
        f"/me/{path}/{{member_id}}",
        status_code=201,
        response_model=RelationState,
        summary=f"{noun.capitalize()} a member (201 new, 200 already)",
        responses={
            200: {"description": "Already there: nothing changed", "model": RelationState},
            **_ERRORS,
        },
        name=f"add_{path}",
    )
    async def add_route(
        member_id: uuid.UUID,
        response: Response,
        session: SessionDep,
        me: CurrentMember,
        directory: DirectoryDep,
    ) -> RelationState:
        created = await add(session, me, member_id, directory)
        if not created:
            response.status_code = 200
        return RelationState(member_id=member_id, created=created)

    @router.delete(
        f"/me/{path}/{{member_id}}",
        status_code=204,
        summary=f"Stop: un{noun} a member",
        responses={404: _ERRORS[404]},
        name=f"remove_{path}",
    )
    async def remove_route(
        member_id: uuid.UUID, session: SessionDep, me: CurrentMember, directory: DirectoryDep
    ) -> Response:
        await remove(session, me, member_id, directory)
        return Response(status_code=204)

    @router.get(
        f"/me/{path}",
        response_model=Page[RelatedMember],
        summary=f"Members I {noun}, newest first",
        name=f"list_{path}",
    )
    async def list_route(
        session: SessionDep, me: ReadingMember, page: PageDep
    ) -> Page[RelatedMember]:
        rows = await service.related(session, me.brand_id, me.member_id, relation, page)
        return _page(rows, page)


_relation_routes("following", "follow", Follow, service.follow, service.unfollow)
_relation_routes("blocks", "block", Block, service.block, service.unblock)
_relation_routes("mutes", "mute", Mute, service.mute, service.unmute)


@router.get(
    "/me/followers", response_model=Page[RelatedMember], summary="My followers, newest first"
)
async def my_followers(
    session: SessionDep, me: ReadingMember, page: PageDep
) -> Page[RelatedMember]:
    rows = await service.related(session, me.brand_id, me.member_id, Follow, page, reverse=True)
    return _page(rows, page)


@router.get(
    "/members/{member_id}/followers",
    response_model=Page[RelatedMember],
    summary="A member's followers, newest first",
    responses={404: _ERRORS[404]},
)
async def followers(
    member_id: uuid.UUID,
    session: SessionDep,
    me: ReadingMember,
    page: PageDep,
    directory: DirectoryDep,
) -> Page[RelatedMember]:
    other = await service.visible_member(session, me, member_id, directory)
    rows = await service.related(session, me.brand_id, other.member_id, Follow, page, reverse=True)
    return _page(rows, page)


@router.get(
    "/members/{member_id}/following",
    response_model=Page[RelatedMember],
    summary="Members a member follows, newest first",
    responses={404: _ERRORS[404]},
)
async def following(
    member_id: uuid.UUID,
    session: SessionDep,
    me: ReadingMember,
    page: PageDep,
    directory: DirectoryDep,
) -> Page[RelatedMember]:
    other = await service.visible_member(session, me, member_id, directory)
    rows = await service.related(session, me.brand_id, other.member_id, Follow, page)
    return _page(rows, page)
