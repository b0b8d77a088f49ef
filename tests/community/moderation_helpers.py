"""Helpers shared by the moderation and screening tests: posts and comments written through the
posts API, groups, blocklist terms, and the moderation events."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.community.conftest import community_events
from tests.conftest import BrandFixture, MemberFixture


async def write_post(
    client: httpx.AsyncClient, author: MemberFixture, body: str, **fields: Any
) -> dict[str, Any]:
    response = await client.post(
        "/community/v1/posts", json={"body": body, **fields}, headers=author.headers
    )
    assert response.status_code == 201, response.text
    post: dict[str, Any] = response.json()
    return post


async def write_comment(
    client: httpx.AsyncClient, author: MemberFixture, post_id: str, body: str
) -> dict[str, Any]:
    response = await client.post(
        f"/community/v1/posts/{post_id}/comments", json={"body": body}, headers=author.headers
    )
    assert response.status_code == 201, response.text
    comment: dict[str, Any] = response.json()
    return comment


async def block(client: httpx.AsyncClient, brand: BrandFixture, term: str) -> dict[str, Any]:
    response = await client.post(
        "/community/v1/moderation/blocklist", json={"term": term}, headers=brand.headers
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def member_group(
    client: httpx.AsyncClient, moderator: MemberFixture, name: str, *members: MemberFixture
) -> str:
    """A member-run group moderated by `moderator`, joined by `members`."""
    response = await client.post(
        "/community/v1/groups", json={"name": name}, headers=moderator.headers
    )
    assert response.status_code == 201, response.text
    group_id: str = response.json()["id"]
    for member in members:
        joined = await client.post(
            f"/community/v1/groups/{group_id}/members", headers=member.headers
        )
        assert joined.status_code == 201, joined.text
    return group_id


async def report(
    client: httpx.AsyncClient, reporter: MemberFixture, kind: str, target_id: str, **body: Any
) -> httpx.Response:
    return await client.post(
        "/community/v1/reports",
        json={"target_kind": kind, "target_id": target_id, "reason": "spam", **body},
        headers=reporter.headers,
    )


async def moderation_events(session: AsyncSession) -> list[tuple[str, dict[str, Any]]]:
    return [(t, d) for t, d in await community_events(session) if t.startswith("moderation.")]


async def count(session: AsyncSession, model: type[Any]) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def error(response: httpx.Response) -> str:
    code: str = response.json()["error"]
    return code
