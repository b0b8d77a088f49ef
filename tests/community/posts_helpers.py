"""Helpers for the posts, comments, social and feed tests: writing through the API, groups set up
as the groups part would leave them, a first pass that holds everything, and counting rows."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.models import (
    Comment,
    CommunityMember,
    ContentStatus,
    Group,
    GroupKind,
    GroupMembership,
    GroupRole,
    MembershipStatus,
    Post,
)
from services.community.moderation.screening import Screening
from services.community.posts import service as posts_service
from services.kernel.ids import new_id
from tests.conftest import MemberFixture

POSTS = "/community/v1/posts"


async def write_post(
    client: httpx.AsyncClient, who: MemberFixture, body: str = "Hello", **fields: Any
) -> dict[str, Any]:
    response = await client.post(POSTS, json={"body": body, **fields}, headers=who.headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def write_comment(
    client: httpx.AsyncClient, who: MemberFixture, post_id: str, body: str = "Nice", **fields: Any
) -> dict[str, Any]:
    response = await client.post(
        f"{POSTS}/{post_id}/comments", json={"body": body, **fields}, headers=who.headers
    )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]


async def count(session: AsyncSession, model: type[Any]) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def post_count(session: AsyncSession) -> int:
    return await count(session, Post)


async def comment_count(session: AsyncSession) -> int:
    return await count(session, Comment)


async def make_group(
    session: AsyncSession,
    brand_id: uuid.UUID,
    members: dict[uuid.UUID, MembershipStatus],
    *,
    slug: str = "curly-hair",
) -> uuid.UUID:
    """A brand-run group with the given memberships, as the groups part stores them."""
    group = Group(
        id=new_id(), brand_id=brand_id, slug=slug, name=slug.title(), kind=GroupKind.BRAND
    )
    session.add(group)
    await session.flush()
    for member_id, status in members.items():
        session.add(
            GroupMembership(
                group_id=group.id,
                member_id=member_id,
                brand_id=brand_id,
                role=GroupRole.MEMBER,
                status=status,
            )
        )
    await session.flush()
    return group.id


@dataclass
class FirstPass:
    """Switches the automatic first pass to holding everything (`hold = True`), as moderation's
    rules would for suspicious content; otherwise the real first pass decides."""

    hold: bool = False
    reasons: list[str] = field(default_factory=lambda: ["classifier:spam"])


@pytest.fixture
def first_pass(monkeypatch: pytest.MonkeyPatch) -> FirstPass:
    decision = FirstPass()
    real = posts_service.screen

    async def screen(session: AsyncSession, **kwargs: Any) -> Screening:
        if decision.hold:
            return Screening(ContentStatus.HELD, list(decision.reasons))
        return await real(session, **kwargs)

    monkeypatch.setattr(posts_service, "screen", screen)
    return decision


async def set_trust(session: AsyncSession, member_id: uuid.UUID, level: int) -> None:
    member = await session.get(CommunityMember, member_id)
    assert member is not None
    member.trust_level = level
    await session.flush()
