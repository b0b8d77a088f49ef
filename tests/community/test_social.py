"""Follows, blocks and mutes between members."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.social.models import Block, Follow, Mute
from tests.community.conftest import MakeMember, community_events
from tests.community.posts_helpers import POSTS, count, error, write_comment, write_post
from tests.conftest import BrandFixture, MemberFixture

ME = "/community/v1/me"


async def follow(client: httpx.AsyncClient, who: MemberFixture, whom: MemberFixture) -> int:
    return (await client.put(f"{ME}/following/{whom.id}", headers=who.headers)).status_code


async def test_following_is_idempotent_emits_once_and_lists_both_ways(
    client: httpx.AsyncClient,
    session: AsyncSession,
    member: MemberFixture,
    other_member: MemberFixture,
    make_member: MakeMember,
) -> None:
    cy = await make_member("cy", display_name="Cy")
    first = await client.put(f"{ME}/following/{other_member.id}", headers=member.headers)
    assert (first.status_code, first.json()) == (
        201,
        {"member_id": str(other_member.id), "created": True},
    )
    again = await client.put(f"{ME}/following/{other_member.id}", headers=member.headers)
    assert (again.status_code, again.json()["created"]) == (200, False)
    assert await follow(client, member, cy) == 201
    assert await follow(client, cy, other_member) == 201

    following = (await client.get(f"{ME}/following", headers=member.headers)).json()
    assert [(m["member_id"], m["display_name"]) for m in following["items"]] == [
        (str(cy.id), "Cy"),
        (str(other_member.id), "Bea"),
    ]
    paged = await client.get(f"{ME}/following", params={"limit": 1}, headers=member.headers)
    assert paged.json()["next"] is not None
    followers = await client.get(
        f"/community/v1/members/{other_member.id}/followers", headers=cy.headers
    )
    assert [m["member_id"] for m in followers.json()["items"]] == [str(cy.id), str(member.id)]
    mine = await client.get(f"{ME}/followers", headers=other_member.headers)
    assert len(mine.json()["items"]) == 2
    theirs = await client.get(
        f"/community/v1/members/{member.id}/following", headers=other_member.headers
    )
    assert len(theirs.json()["items"]) == 2

    followed = [d for t, d in await community_events(session) if t == "member.followed"]
    assert followed[0] == {"follower_id": str(member.id), "followee_id": str(other_member.id)}
    assert len(followed) == 3

    unfollow = f"{ME}/following/{other_member.id}"
    assert (await client.delete(unfollow, headers=member.headers)).status_code == 204
    assert (await client.delete(unfollow, headers=member.headers)).status_code == 204
    unfollowed = [d for t, d in await community_events(session) if t == "member.unfollowed"]
    assert unfollowed == [{"follower_id": str(member.id), "followee_id": str(other_member.id)}]
    assert await count(session, Follow) == 2


async def test_bad_follows_are_refused_and_nothing_is_written(
    client: httpx.AsyncClient,
    session: AsyncSession,
    member: MemberFixture,
    other_brand: BrandFixture,
    make_member: MakeMember,
) -> None:
    stranger = await make_member("zed", other_brand)
    cases = [
        (f"{ME}/following/{member.id}", (422, "CannotFollowYourself")),
        (f"{ME}/blocks/{member.id}", (422, "CannotBlockYourself")),
        (f"{ME}/mutes/{member.id}", (422, "CannotMuteYourself")),
        (f"{ME}/following/{uuid.uuid4()}", (404, "MemberNotFound")),
        (f"{ME}/following/{stranger.id}", (404, "MemberNotFound")),
        (f"{ME}/blocks/{stranger.id}", (404, "MemberNotFound")),
        (f"{ME}/mutes/{stranger.id}", (404, "MemberNotFound")),
        (f"{ME}/following/not-an-id", (422, "ValidationError")),
    ]
    for url, expected in cases:
        assert error(await client.put(url, headers=member.headers)) == expected, url
    lists = await client.get(
        f"/community/v1/members/{member.id}/followers", headers=stranger.headers
    )
    assert error(lists) == (404, "MemberNotFound")
    for model in (Follow, Block, Mute):
        assert await count(session, model) == 0
    assert await community_events(session) == []


async def test_blocking_ends_follows_both_ways_and_stops_interaction(
    client: httpx.AsyncClient,
    session: AsyncSession,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    assert await follow(client, member, other_member) == 201
    assert await follow(client, other_member, member) == 201
    my_post = await write_post(client, member, "mine")
    their_post = await write_post(client, other_member, "theirs")
    their_comment = await write_comment(client, other_member, my_post["id"], "their comment")

    blocked = await client.put(f"{ME}/blocks/{other_member.id}", headers=member.headers)
    assert blocked.status_code == 201
    assert (
        await client.put(f"{ME}/blocks/{other_member.id}", headers=member.headers)
    ).status_code == 200
    assert await count(session, Follow) == 0
    unfollowed = [d for t, d in await community_events(session) if t == "member.unfollowed"]
    assert sorted((d["follower_id"], d["followee_id"]) for d in unfollowed) == sorted(
        [(str(member.id), str(other_member.id)), (str(other_member.id), str(member.id))]
    )

    # Neither may follow, comment on or react to the other.
    assert error(await client.put(f"{ME}/following/{member.id}", headers=other_member.headers)) == (
        403,
        "MemberBlocked",
    )
    assert error(await client.put(f"{ME}/following/{other_member.id}", headers=member.headers)) == (
        403,
        "MemberBlocked",
    )
    attempts = [
        (other_member, f"{POSTS}/{my_post['id']}/comments", {"body": "hey"}),
        (other_member, f"{POSTS}/{my_post['id']}/reactions", {"kind": "love"}),
        (member, f"{POSTS}/{their_post['id']}/comments", {"body": "hey"}),
        (member, f"{POSTS}/{their_post['id']}/reactions", {"kind": "love"}),
        (member, f"/community/v1/comments/{their_comment['id']}/reactions", {"kind": "love"}),
        (
            member,
            f"{POSTS}/{my_post['id']}/comments",
            {"body": "reply", "parent_id": their_comment["id"]},
        ),
    ]
    before = await community_events(session)
    for who, url, body in attempts:
        assert error(await client.post(url, json=body, headers=who.headers)) == (
            403,
            "MemberBlocked",
        ), url
    assert await community_events(session) == before

    # Each other's comments disappear from the threads they read.
    thread = await client.get(f"{POSTS}/{my_post['id']}/comments", headers=member.headers)
    assert thread.json()["items"] == []
    their_view = await client.get(
        f"/community/v1/members/{member.id}/posts", headers=other_member.headers
    )
    assert their_view.json()["items"] == []

    listed = await client.get(f"{ME}/blocks", headers=member.headers)
    assert [m["member_id"] for m in listed.json()["items"]] == [str(other_member.id)]
    # Only the blocker can lift it.
    assert (
        await client.delete(f"{ME}/blocks/{member.id}", headers=other_member.headers)
    ).status_code == 204
    assert await count(session, Block) == 1
    assert (
        await client.delete(f"{ME}/blocks/{other_member.id}", headers=member.headers)
    ).status_code == 204
    assert await follow(client, other_member, member) == 201
    thread = await client.get(f"{POSTS}/{my_post['id']}/comments", headers=member.headers)
    assert [c["id"] for c in thread.json()["items"]] == [their_comment["id"]]


async def test_muting_hides_posts_from_feeds_only(
    client: httpx.AsyncClient,
    session: AsyncSession,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    assert await follow(client, member, other_member) == 201
    post = await write_post(client, other_member, "loud", tags=["news"])
    comment = await write_comment(client, other_member, post["id"], "louder")
    muted = await client.put(f"{ME}/mutes/{other_member.id}", headers=member.headers)
    assert muted.status_code == 201
    assert (
        await client.put(f"{ME}/mutes/{other_member.id}", headers=member.headers)
    ).status_code == 200

    for feed in ("/community/v1/feeds/following", "/community/v1/feeds/tags/news"):
        assert (await client.get(feed, headers=member.headers)).json()["items"] == [], feed
    # Still followed, still readable directly, and still able to interact.
    assert await count(session, Follow) == 1
    profile = await client.get(
        f"/community/v1/members/{other_member.id}/posts", headers=member.headers
    )
    assert [p["id"] for p in profile.json()["items"]] == [post["id"]]
    thread = await client.get(f"{POSTS}/{post['id']}/comments", headers=member.headers)
    assert [c["id"] for c in thread.json()["items"]] == [comment["id"]]
    # The muted member sees nothing change.
    assert (await client.get("/community/v1/feeds/tags/news", headers=other_member.headers)).json()[
        "items"
    ] != []
    mutes = await client.get(f"{ME}/mutes", headers=member.headers)
    assert [m["member_id"] for m in mutes.json()["items"]] == [str(other_member.id)]

    assert (
        await client.delete(f"{ME}/mutes/{other_member.id}", headers=member.headers)
    ).status_code == 204
    feed = await client.get("/community/v1/feeds/following", headers=member.headers)
    assert [p["id"] for p in feed.json()["items"]] == [post["id"]]
