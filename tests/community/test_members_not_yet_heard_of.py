"""A member who signed up a moment ago, before their `member.created` reached the community:
acting or reading as themselves, they are looked up in the members service and kept as the
projection would keep them, not told they do not exist. A token naming someone the members
service does not have is still refused, and nothing is kept."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.models import CommunityMember, Post
from services.kernel.auth import MemberTokenCodec
from services.kernel.settings import Settings
from tests.community.conftest import sync_members
from tests.conftest import BrandFixture, bearer

POSTS = "/community/v1/posts"


async def _rows(session: AsyncSession, model: type[CommunityMember] | type[Post]) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_a_member_just_signed_up_posts_and_reads_as_themselves(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, base_settings: Settings
) -> None:
    made = await client.post(
        "/members/v1/members",
        json={"external_id": "new-1", "display_name": "Newt"},
        headers=brand.headers,
    )
    assert made.status_code == 201, made.text
    member_id = uuid.UUID(made.json()["id"])
    created_at = made.json()["created_at"]
    headers = bearer(MemberTokenCodec(base_settings).issue(brand.id, member_id, timedelta(hours=1)))
    assert await _rows(session, CommunityMember) == 0

    mine = await client.get("/community/v1/me/posts", headers=headers)
    assert (mine.status_code, mine.json()["items"]) == (200, [])
    posted = await client.post(POSTS, json={"body": "Hello, all"}, headers=headers)
    assert posted.status_code == 201, posted.text
    assert posted.json()["author"] == {"member_id": str(member_id), "display_name": "Newt"}
    row = await session.get(CommunityMember, member_id)
    assert row is not None
    assert (row.brand_id, row.display_name, row.member_status) == (brand.id, "Newt", "active")
    assert row.joined_at.isoformat().replace("+00:00", "Z") == created_at

    # The event arrives later: the row is the member's, as it would have been.
    await sync_members(session)
    await session.refresh(row)
    assert (row.display_name, row.member_status) == ("Newt", "active")
    assert await _rows(session, CommunityMember) == 1


async def test_a_token_for_someone_the_members_service_lacks_is_refused_and_nothing_kept(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
    base_settings: Settings,
) -> None:
    theirs = await client.post(
        "/members/v1/members", json={"external_id": "theirs"}, headers=other_brand.headers
    )
    assert theirs.status_code == 201, theirs.text
    tokens = MemberTokenCodec(base_settings)
    for member_id in (uuid.uuid4(), uuid.UUID(theirs.json()["id"])):
        headers = bearer(tokens.issue(brand.id, member_id, timedelta(hours=1)))
        refused = await client.post(POSTS, json={"body": "Hello"}, headers=headers)
        assert (refused.status_code, refused.json()["error"]) == (404, "MemberNotFound")
        read = await client.get("/community/v1/me/posts", headers=headers)
        assert (read.status_code, read.json()["error"]) == (404, "MemberNotFound")
    assert await _rows(session, CommunityMember) == 0
    assert await _rows(session, Post) == 0
