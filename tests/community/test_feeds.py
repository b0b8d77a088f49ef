"""The following, group and tag feeds and a member's posts: newest first, keyset-paginated,
published only (plus the author's own held posts in their own list), never removed content,
nothing from another brand."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.models import MembershipStatus
from tests.community.conftest import MakeMember
from tests.community.posts_helpers import (
    POSTS,
    FirstPass,
    error,
    first_pass,
    make_group,
    write_post,
)
from tests.conftest import BrandFixture, MemberFixture

__all__ = ["first_pass"]

FEEDS = "/community/v1/feeds"


async def ids(client: httpx.AsyncClient, url: str, who: MemberFixture, **params: Any) -> list[str]:
    response = await client.get(url, params=params, headers=who.headers)
    assert response.status_code == 200, response.text
    return [p["id"] for p in response.json()["items"]]


async def test_the_following_feed_pages_newest_first_through_followed_members_posts(
    client: httpx.AsyncClient,
    member: MemberFixture,
    other_member: MemberFixture,
    make_member: MakeMember,
) -> None:
    cy = await make_member("cy", display_name="Cy")
    stranger = await make_member("dee")
    for whom in (other_member, cy):
        response = await client.put(f"/community/v1/me/following/{whom.id}", headers=member.headers)
        assert response.status_code == 201
    written = []
    for n in range(5):
        written.append(await write_post(client, other_member if n % 2 else cy, f"post {n}"))
    await write_post(client, stranger, "not followed")
    await write_post(client, member, "my own")
    newest_first = [p["id"] for p in reversed(written)]

    first = await client.get(f"{FEEDS}/following", params={"limit": 2}, headers=member.headers)
    page = first.json()
    assert [p["id"] for p in page["items"]] == newest_first[:2]
    assert page["items"][0]["author"] == {"member_id": str(cy.id), "display_name": "Cy"}
    seen = [p["id"] for p in page["items"]]
    while page["next"] is not None:
        page = (
            await client.get(
                f"{FEEDS}/following",
                params={"limit": 2, "after": page["next"]},
                headers=member.headers,
            )
        ).json()
        seen += [p["id"] for p in page["items"]]
    assert seen == newest_first

    too_big = await client.get(f"{FEEDS}/following", params={"limit": 101}, headers=member.headers)
    assert error(too_big) == (422, "ValidationError")
    bad_cursor = await client.get(
        f"{FEEDS}/following", params={"after": "!!"}, headers=member.headers
    )
    assert error(bad_cursor) == (400, "InvalidCursor")


async def test_group_and_tag_feeds(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    group_id = await make_group(session, brand.id, {member.id: MembershipStatus.ACTIVE})
    in_group = await write_post(client, member, "in group", group_id=str(group_id), tags=["Curls"])
    tagged = await write_post(client, other_member, "tagged", tags=["curls", "tips"])
    await write_post(client, other_member, "plain")

    assert await ids(client, f"{FEEDS}/groups/{group_id}", other_member) == [in_group["id"]]
    assert await ids(client, f"{FEEDS}/tags/curls", other_member) == [tagged["id"], in_group["id"]]
    assert await ids(client, f"{FEEDS}/tags/%23CURLS", other_member) == [
        tagged["id"],
        in_group["id"],
    ]
    assert await ids(client, f"{FEEDS}/tags/tips", member) == [tagged["id"]]
    assert await ids(client, f"{FEEDS}/tags/none", member) == []
    unknown = await client.get(f"{FEEDS}/groups/{uuid.uuid4()}", headers=member.headers)
    assert error(unknown) == (404, "GroupNotFound")


async def test_removed_content_disappears_from_every_feed(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    group_id = await make_group(session, brand.id, {other_member.id: MembershipStatus.ACTIVE})
    assert (
        await client.put(f"/community/v1/me/following/{other_member.id}", headers=member.headers)
    ).status_code == 201
    kept = await write_post(client, other_member, "kept", group_id=str(group_id), tags=["t"])
    gone = await write_post(client, other_member, "gone", group_id=str(group_id), tags=["t"])
    assert (
        await client.put(f"{POSTS}/{gone['id']}/bookmark", headers=member.headers)
    ).status_code == 201
    feeds = [
        (f"{FEEDS}/following", member),
        (f"{FEEDS}/groups/{group_id}", member),
        (f"{FEEDS}/tags/t", member),
        (f"/community/v1/members/{other_member.id}/posts", member),
        ("/community/v1/me/posts", other_member),
    ]
    for url, who in feeds:
        assert await ids(client, url, who) == [gone["id"], kept["id"]], url

    assert (
        await client.delete(f"{POSTS}/{gone['id']}", headers=other_member.headers)
    ).status_code == 204
    for url, who in feeds:
        assert await ids(client, url, who) == [kept["id"]], url
    saved = await client.get("/community/v1/me/bookmarks", headers=member.headers)
    assert saved.json()["items"] == []


async def test_held_posts_show_only_in_their_authors_own_list(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
    first_pass: FirstPass,
) -> None:
    group_id = await make_group(session, brand.id, {other_member.id: MembershipStatus.ACTIVE})
    assert (
        await client.put(f"/community/v1/me/following/{other_member.id}", headers=member.headers)
    ).status_code == 201
    first_pass.hold = True
    held = await write_post(client, other_member, "held", group_id=str(group_id), tags=["t"])
    for url in (
        f"{FEEDS}/following",
        f"{FEEDS}/groups/{group_id}",
        f"{FEEDS}/tags/t",
        f"/community/v1/members/{other_member.id}/posts",
    ):
        assert await ids(client, url, member) == [], url
        assert await ids(client, url, other_member) == ([held["id"]] if "members" in url else []), (
            url
        )
    own = (await client.get("/community/v1/me/posts", headers=other_member.headers)).json()
    assert [(p["id"], p["status"], p["held_reasons"]) for p in own["items"]] == [
        (held["id"], "held", ["classifier:spam"])
    ]


async def test_a_member_of_another_brand_sees_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
    member: MemberFixture,
    make_member: MakeMember,
) -> None:
    group_id = await make_group(session, brand.id, {member.id: MembershipStatus.ACTIVE})
    await write_post(client, member, "ours", group_id=str(group_id), tags=["t"])
    stranger = await make_member("zed", other_brand)
    assert await ids(client, f"{FEEDS}/tags/t", stranger) == []
    assert await ids(client, f"{FEEDS}/following", stranger) == []
    assert await ids(client, "/community/v1/me/posts", stranger) == []
    group = await client.get(f"{FEEDS}/groups/{group_id}", headers=stranger.headers)
    assert error(group) == (404, "GroupNotFound")
    follow = await client.put(f"/community/v1/me/following/{member.id}", headers=stranger.headers)
    assert error(follow) == (404, "MemberNotFound")
