"""Reactions (a fixed set of kinds, one per member, kind and target) and bookmarks."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.models import Comment, Post
from services.community.posts.models import Bookmark, Reaction
from tests.community.conftest import MakeMember, community_events
from tests.community.posts_helpers import POSTS, count, error, write_comment, write_post
from tests.conftest import BrandFixture, MemberFixture


async def counters(session: AsyncSession, model: type[Post] | type[Comment], id_: str) -> int:
    row = await session.get(model, uuid.UUID(id_), populate_existing=True)
    assert row is not None
    return row.reaction_count


async def test_reacting_is_once_per_kind_and_taking_it_back_works(
    client: httpx.AsyncClient,
    session: AsyncSession,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    post = await write_post(client, member, "react to me")
    url = f"{POSTS}/{post['id']}/reactions"
    first = await client.post(url, json={"kind": "love"}, headers=other_member.headers)
    assert first.status_code == 201
    assert first.json() == {
        "post_id": post["id"],
        "comment_id": None,
        "kind": "love",
        "reaction_count": 1,
    }
    again = await client.post(url, json={"kind": "love"}, headers=other_member.headers)
    assert (again.status_code, again.json()["reaction_count"]) == (200, 1)
    helpful = await client.post(url, json={"kind": "helpful"}, headers=other_member.headers)
    assert (helpful.status_code, helpful.json()["reaction_count"]) == (201, 2)
    own = await client.post(url, json={"kind": "wow"}, headers=member.headers)
    assert own.json()["reaction_count"] == 3

    added = [d for t, d in await community_events(session) if t == "reaction.added"]
    assert added[0] == {
        "member_id": str(other_member.id),
        "kind": "love",
        "post_id": post["id"],
        "comment_id": None,
        "target_author_id": str(member.id),
    }
    assert [d["kind"] for d in added] == ["love", "helpful", "wow"]

    assert (await client.delete(f"{url}/love", headers=other_member.headers)).status_code == 204
    assert (await client.delete(f"{url}/love", headers=other_member.headers)).status_code == 204
    assert await counters(session, Post, post["id"]) == 2
    removed = [d for t, d in await community_events(session) if t == "reaction.removed"]
    assert [d["kind"] for d in removed] == ["love"]
    assert await count(session, Reaction) == 2


async def test_an_unknown_reaction_kind_is_422_and_writes_nothing(
    client: httpx.AsyncClient, session: AsyncSession, member: MemberFixture
) -> None:
    post = await write_post(client, member, "p")
    for body in ({"kind": "angry"}, {"kind": ""}, {}, {"kind": "love", "x": 1}):
        response = await client.post(
            f"{POSTS}/{post['id']}/reactions", json=body, headers=member.headers
        )
        assert error(response) == (422, "ValidationError")
    delete = await client.delete(f"{POSTS}/{post['id']}/reactions/angry", headers=member.headers)
    assert error(delete) == (422, "ValidationError")
    assert await count(session, Reaction) == 0
    assert [t for t, _ in await community_events(session)] == ["post.created", "post.approved"]


async def test_reactions_to_comments_count_on_the_comment(
    client: httpx.AsyncClient,
    session: AsyncSession,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    post = await write_post(client, member, "p")
    comment = await write_comment(client, member, post["id"], "c")
    url = f"/community/v1/comments/{comment['id']}/reactions"
    first = await client.post(url, json={"kind": "haha"}, headers=other_member.headers)
    assert (first.status_code, first.json()) == (
        201,
        {"post_id": post["id"], "comment_id": comment["id"], "kind": "haha", "reaction_count": 1},
    )
    assert await counters(session, Post, post["id"]) == 0
    [event] = [d for t, d in await community_events(session) if t == "reaction.added"]
    assert (event["comment_id"], event["target_author_id"]) == (comment["id"], str(member.id))
    assert (await client.delete(f"{url}/haha", headers=other_member.headers)).status_code == 204
    assert await counters(session, Comment, comment["id"]) == 0

    assert (
        await client.delete(f"/community/v1/comments/{comment['id']}", headers=member.headers)
    ).status_code == 204
    gone = await client.post(url, json={"kind": "haha"}, headers=other_member.headers)
    assert error(gone) == (409, "CommentRemoved")
    unknown = await client.post(
        f"/community/v1/comments/{uuid.uuid4()}/reactions",
        json={"kind": "haha"},
        headers=other_member.headers,
    )
    assert error(unknown) == (404, "CommentNotFound")


async def test_reacting_to_removed_or_foreign_content_is_refused(
    client: httpx.AsyncClient,
    session: AsyncSession,
    member: MemberFixture,
    other_brand: BrandFixture,
    make_member: MakeMember,
) -> None:
    post = await write_post(client, member, "p")
    stranger = await make_member("zed", other_brand)
    url = f"{POSTS}/{post['id']}/reactions"
    foreign = await client.post(url, json={"kind": "love"}, headers=stranger.headers)
    assert error(foreign) == (404, "PostNotFound")
    assert (await client.delete(f"{POSTS}/{post['id']}", headers=member.headers)).status_code == 204
    removed = await client.post(url, json={"kind": "love"}, headers=member.headers)
    assert error(removed) == (409, "PostRemoved")
    assert await count(session, Reaction) == 0


async def test_bookmarks_are_a_private_idempotent_list_without_removed_posts(
    client: httpx.AsyncClient,
    session: AsyncSession,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    posts = [await write_post(client, member, f"post {n}") for n in range(3)]
    for post in posts:
        saved = await client.put(f"{POSTS}/{post['id']}/bookmark", headers=other_member.headers)
        assert saved.status_code == 201
        assert saved.json()["post_id"] == post["id"]
    again = await client.put(f"{POSTS}/{posts[0]['id']}/bookmark", headers=other_member.headers)
    assert again.status_code == 200
    assert await count(session, Bookmark) == 3

    first = await client.get(
        "/community/v1/me/bookmarks", params={"limit": 2}, headers=other_member.headers
    )
    page = first.json()
    assert [b["post"]["id"] for b in page["items"]] == [posts[2]["id"], posts[1]["id"]]
    rest = await client.get(
        "/community/v1/me/bookmarks",
        params={"limit": 2, "after": page["next"]},
        headers=other_member.headers,
    )
    assert [b["post"]["id"] for b in rest.json()["items"]] == [posts[0]["id"]]
    assert rest.json()["next"] is None
    mine = await client.get("/community/v1/me/bookmarks", headers=member.headers)
    assert mine.json()["items"] == []

    assert (
        await client.delete(f"{POSTS}/{posts[1]['id']}", headers=member.headers)
    ).status_code == 204
    listed = await client.get("/community/v1/me/bookmarks", headers=other_member.headers)
    assert [b["post"]["id"] for b in listed.json()["items"]] == [posts[2]["id"], posts[0]["id"]]
    refused = await client.put(f"{POSTS}/{posts[1]['id']}/bookmark", headers=member.headers)
    assert error(refused) == (409, "PostRemoved")
    unsaved = await client.delete(
        f"{POSTS}/{posts[0]['id']}/bookmark", headers=other_member.headers
    )
    assert unsaved.status_code == 204
    left = await session.scalars(select(Bookmark.post_id))
    assert sorted(map(str, left)) == sorted([posts[1]["id"], posts[2]["id"]])
