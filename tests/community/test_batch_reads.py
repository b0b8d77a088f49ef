"""Batch reads by id (what the gateway's DataLoaders call): posts with my reactions and bookmark,
prompts (staff: all of the brand's; members: those for them that have started), public profiles;
each leaves out what the caller may not see, and refuses more than 100 ids."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.pagination import encode_cursor
from tests.community.conftest import MakeMember
from tests.community.engagement_helpers import create_badge
from tests.community.posts_helpers import POSTS, FirstPass, error, first_pass, write_post
from tests.community.test_prompts import create_prompt, iso
from tests.conftest import BrandFixture, MemberFixture

__all__ = ["first_pass"]  # the fixture, used by name

ME = "/community/v1/me"


async def read(
    client: httpx.AsyncClient, path: str, ids: list[str], who: MemberFixture | BrandFixture
) -> list[dict[str, Any]]:
    response = await client.get(path, params={"ids": ids}, headers=who.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_posts_by_id_are_those_i_may_see_with_my_reactions_and_bookmark(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
    make_member: MakeMember,
    first_pass: FirstPass,
) -> None:
    cy = await make_member("cy", display_name="Cy")
    stranger = await make_member("zed", other_brand)
    mine = await write_post(client, member, "Mine")
    hers = await write_post(client, other_member, "Hers")
    gone = await write_post(client, member, "Gone")
    foreign = await write_post(client, stranger, "Elsewhere")
    first_pass.hold = True
    held = await write_post(client, other_member, "Held")
    first_pass.hold = False
    assert (await client.delete(f"{POSTS}/{gone['id']}", headers=member.headers)).status_code == 204
    for kind in ("wow", "love"):
        reacted = await client.post(
            f"{POSTS}/{hers['id']}/reactions", json={"kind": kind}, headers=member.headers
        )
        assert reacted.status_code == 201, reacted.text
    saved = await client.put(f"{POSTS}/{hers['id']}/bookmark", headers=member.headers)
    assert saved.status_code == 201
    blocked = await client.put(f"{ME}/blocks/{other_member.id}", headers=cy.headers)
    assert blocked.status_code == 201
    every = [p["id"] for p in (mine, hers, gone, foreign, held)] + [str(uuid.uuid4())]

    async def single(post_id: str, who: MemberFixture) -> dict[str, Any]:
        response = await client.get(f"{POSTS}/{post_id}", headers=who.headers)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    # Newest first, each exactly as the single read shows it, plus what I did to it.
    assert await read(client, POSTS, every, member) == [
        {**await single(hers["id"], member), "my_reactions": ["love", "wow"], "bookmarked": True},
        {**await single(mine["id"], member), "my_reactions": [], "bookmarked": False},
    ]
    # The author sees her held post; cy, who blocked her, sees none of hers.
    assert [p["id"] for p in await read(client, POSTS, every, other_member)] == [
        held["id"],
        hers["id"],
        mine["id"],
    ]
    assert [p["id"] for p in await read(client, POSTS, every, cy)] == [mine["id"]]
    assert [p["id"] for p in await read(client, POSTS, every, stranger)] == [foreign["id"]]


async def test_batch_reads_refuse_no_ids_too_many_and_bad_ones(
    client: httpx.AsyncClient, brand: BrandFixture, member: MemberFixture
) -> None:
    too_many = [str(uuid.uuid4()) for _ in range(101)]
    for path in (POSTS, "/community/v1/members", "/community/v1/prompts"):
        response = await client.get(path, params={"ids": too_many}, headers=member.headers)
        assert error(response) == (422, "ValidationError"), path
        bad = await client.get(path, params={"ids": ["nope"]}, headers=member.headers)
        assert error(bad) == (422, "ValidationError"), path
    for path in (POSTS, "/community/v1/members"):
        none = await client.get(path, headers=member.headers)
        assert error(none) == (422, "ValidationError"), path
    hundred = [str(uuid.uuid4()) for _ in range(100)]
    assert await read(client, POSTS, hundred, member) == []


async def test_prompts_by_id_staff_see_all_members_those_for_them_that_started(
    client: httpx.AsyncClient,
    brand: BrandFixture,
    other_brand: BrandFixture,
    member: MemberFixture,
    make_member: MakeMember,
) -> None:
    closed = await create_prompt(
        client,
        brand,
        title="Spring",
        starts_at=iso(-timedelta(days=9)),
        ends_at=iso(-timedelta(days=2)),
    )
    open_ = await create_prompt(client, brand, title="Summer", points=50)
    later = await create_prompt(client, brand, title="Autumn", starts_at=iso(timedelta(days=3)))
    for_tier = await create_prompt(
        client, brand, title="VIPs", audience="tiers", audience_tier_ids=[str(uuid.uuid4())]
    )
    every = [p["id"] for p in (closed, open_, later, for_tier)]

    staff_view = await read(client, "/community/v1/prompts", every, brand)
    assert staff_view == [for_tier, later, open_, closed]
    shown = ("id", "title", "body", "tags", "starts_at", "ends_at", "points", "answer_count")
    assert await read(client, "/community/v1/prompts", every, member) == [
        {field: prompt[field] for field in shown} for prompt in (open_, closed)
    ]
    listed = await client.get("/community/v1/prompts", headers=member.headers)
    assert [p["id"] for p in listed.json()["items"]] == [open_["id"], closed["id"]]
    assert await read(client, "/community/v1/prompts", every, other_brand) == []
    stranger = await make_member("zed", other_brand)
    assert await read(client, "/community/v1/prompts", every, stranger) == []


async def test_profiles_by_id_show_names_reputation_and_follow_counts(
    client: httpx.AsyncClient,
    brand: BrandFixture,
    other_brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
    make_member: MakeMember,
) -> None:
    cy = await make_member("cy", display_name="Cy")
    stranger = await make_member("zed", other_brand)
    for who, whom in ((member, other_member), (cy, other_member), (other_member, member)):
        response = await client.put(f"{ME}/following/{whom.id}", headers=who.headers)
        assert response.status_code == 201
    ids = [str(m.id) for m in (member, other_member, stranger)] + [str(uuid.uuid4())]

    def profile(
        who: MemberFixture, name: str | None, followers: int, following: int
    ) -> dict[str, Any]:
        return {
            "id": str(who.id),
            "display_name": name,
            "reputation": 0,
            "trust_level": 0,
            "follower_count": followers,
            "following_count": following,
        }

    expected = sorted(
        [profile(member, "Ada", 1, 1), profile(other_member, "Bea", 2, 1)], key=lambda p: p["id"]
    )
    assert await read(client, "/community/v1/members", ids, cy) == expected
    assert await read(client, "/community/v1/members", ids, brand) == expected
    assert await read(client, "/community/v1/members", ids, stranger) == [
        profile(stranger, None, 0, 0)
    ]


async def test_members_read_badges_of_their_brand_and_lists_carry_their_cursor_ids(
    client: httpx.AsyncClient,
    brand: BrandFixture,
    other_brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
    make_member: MakeMember,
) -> None:
    badge = await create_badge(client, brand)
    seen = await client.get(f"/community/v1/badges/{badge['id']}", headers=member.headers)
    assert seen.json() == badge
    stranger = await make_member("zed", other_brand)
    theirs = await client.get(f"/community/v1/badges/{badge['id']}", headers=stranger.headers)
    assert error(theirs) == (404, "BadgeNotFound")

    post = await write_post(client, other_member)
    assert (await client.put(f"{POSTS}/{post['id']}/bookmark", headers=member.headers)).is_success
    assert (
        await client.put(f"{ME}/following/{other_member.id}", headers=member.headers)
    ).is_success
    [saved] = (await client.get(f"{ME}/bookmarks", headers=member.headers)).json()["items"]
    [followed] = (await client.get(f"{ME}/following", headers=member.headers)).json()["items"]
    # Each list item names its own row, so a client can resume the list after any item.
    after_saved = await client.get(
        f"{ME}/bookmarks", params={"after": _cursor(saved["bookmark_id"])}, headers=member.headers
    )
    assert after_saved.json()["items"] == []
    after_followed = await client.get(
        f"{ME}/following",
        params={"after": _cursor(followed["relation_id"])},
        headers=member.headers,
    )
    assert after_followed.json()["items"] == []
    assert followed["member_id"] == str(other_member.id)


def _cursor(row_id: str) -> str:
    return encode_cursor(uuid.UUID(row_id))
