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


async def _signed_up(
    client: httpx.AsyncClient, brand: BrandFixture, base_settings: Settings, name: str
) -> tuple[uuid.UUID, dict[str, str]]:
    made = await client.post(
        "/members/v1/members",
        json={"external_id": name.lower(), "display_name": name},
        headers=brand.headers,
    )
    assert made.status_code == 201, made.text
    member_id = uuid.UUID(made.json()["id"])
    token = MemberTokenCodec(base_settings).issue(brand.id, member_id, timedelta(hours=1))
    return member_id, bearer(token)


async def test_a_member_who_joined_a_moment_ago_can_be_followed_and_their_pages_read(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
    base_settings: Settings,
) -> None:
    # Both are new to the community: the follower is looked up (and kept) first, then the one
    # they follow, in the same request.
    ada, ada_headers = await _signed_up(client, brand, base_settings, "Ada")
    bo, _ = await _signed_up(client, brand, base_settings, "Bo")
    assert await _rows(session, CommunityMember) == 0

    followed = await client.put(f"/community/v1/me/following/{bo}", headers=ada_headers)
    assert followed.status_code == 201, followed.text
    followers = await client.get(f"/community/v1/members/{bo}/followers", headers=ada_headers)
    assert followers.status_code == 200, followers.text
    assert [(f["member_id"], f["display_name"]) for f in followers.json()["items"]] == [
        (str(ada), "Ada")
    ]

    cy, _ = await _signed_up(client, brand, base_settings, "Cy")
    posts = await client.get(f"/community/v1/members/{cy}/posts", headers=ada_headers)
    assert (posts.status_code, posts.json()["items"]) == (200, [])
    following = await client.get(f"/community/v1/members/{cy}/following", headers=ada_headers)
    assert (following.status_code, following.json()["items"]) == (200, [])
    kept = {m.member_id: m.display_name for m in await session.scalars(select(CommunityMember))}
    assert kept == {ada: "Ada", bo: "Bo", cy: "Cy"}

    # Nobody, and a member of another brand, are still not found; nothing is kept for them.
    theirs, _ = await _signed_up(client, other_brand, base_settings, "Theirs")
    for stranger in (uuid.uuid4(), theirs):
        for method, path in (
            ("PUT", f"/community/v1/me/following/{stranger}"),
            ("PUT", f"/community/v1/me/blocks/{stranger}"),
            ("GET", f"/community/v1/members/{stranger}/posts"),
            ("GET", f"/community/v1/members/{stranger}/followers"),
        ):
            refused = await client.request(method, path, headers=ada_headers)
            assert (refused.status_code, refused.json()["error"]) == (404, "MemberNotFound")
    assert await _rows(session, CommunityMember) == 3
