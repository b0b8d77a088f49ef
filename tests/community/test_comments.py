"""Threaded comments: who may comment where, screening, counters and events."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.models import (
    Comment,
    ContentStatus,
    GroupMembership,
    MembershipStatus,
    Post,
)
from services.community.posts import service
from services.community.posts.repository import CommentRepository, PostRepository
from tests.community.conftest import MakeMember, community_events
from tests.community.posts_helpers import (
    POSTS,
    FirstPass,
    comment_count,
    error,
    first_pass,
    make_group,
    set_trust,
    write_comment,
    write_post,
)
from tests.conftest import BrandFixture, MemberFixture

__all__ = ["first_pass"]


async def comment_counter(session: AsyncSession, post_id: str) -> int:
    post = await session.get(Post, uuid.UUID(post_id), populate_existing=True)
    assert post is not None
    return post.comment_count


async def test_comments_and_replies_thread_under_a_post_with_counts_and_events(
    client: httpx.AsyncClient,
    session: AsyncSession,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    post = await write_post(client, member, "What do you wear?")
    top = await write_comment(client, other_member, post["id"], " A hat ")
    assert top == {
        "id": top["id"],
        "post_id": post["id"],
        "parent_id": None,
        "author": {"member_id": str(other_member.id), "display_name": "Bea"},
        "body": "A hat",
        "status": "published",
        "held_reasons": [],
        "reaction_count": 0,
        "created_at": top["created_at"],
    }
    reply = await write_comment(client, member, post["id"], "Nice!", parent_id=top["id"])
    assert reply["parent_id"] == top["id"]
    assert await comment_counter(session, post["id"]) == 2

    thread = await client.get(f"{POSTS}/{post['id']}/comments", headers=other_member.headers)
    assert [(c["id"], c["parent_id"]) for c in thread.json()["items"]] == [
        (top["id"], None),
        (reply["id"], top["id"]),
    ]
    comment_events = [(t, d) for t, d in await community_events(session) if t.startswith("comment")]
    assert comment_events == [
        (
            "comment.created",
            {
                "comment_id": top["id"],
                "post_id": post["id"],
                "post_author_id": str(member.id),
                "parent_id": None,
                "author_id": str(other_member.id),
                "status": "published",
            },
        ),
        (
            "comment.created",
            {
                "comment_id": reply["id"],
                "post_id": post["id"],
                "post_author_id": str(member.id),
                "parent_id": top["id"],
                "author_id": str(member.id),
                "status": "published",
            },
        ),
    ]


async def test_a_comment_on_a_removed_post_is_409_and_writes_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    post = await write_post(client, member, "soon gone")
    assert (await client.delete(f"{POSTS}/{post['id']}", headers=member.headers)).status_code == 204
    before = await community_events(session)
    for who in (member, other_member):
        response = await client.post(
            f"{POSTS}/{post['id']}/comments", json={"body": "hello?"}, headers=who.headers
        )
        assert error(response) == (409, "PostRemoved")
    assert await comment_count(session) == 0
    assert await community_events(session) == before
    thread = await client.get(f"{POSTS}/{post['id']}/comments", headers=member.headers)
    assert error(thread) == (404, "PostNotFound")


async def test_bad_comments_are_refused_and_nothing_is_written(
    client: httpx.AsyncClient,
    session: AsyncSession,
    member: MemberFixture,
    other_member: MemberFixture,
    first_pass: FirstPass,
) -> None:
    post = await write_post(client, member, "one")
    other_post = await write_post(client, member, "two")
    elsewhere = await write_comment(client, member, other_post["id"], "on the other post")
    url = f"{POSTS}/{post['id']}/comments"
    cases = [
        ({"body": ""}, (422, "ValidationError")),
        ({"body": "   "}, (422, "ValidationError")),
        ({"body": "x" * 5_001}, (422, "ValidationError")),
        ({"body": "hi", "extra": 1}, (422, "ValidationError")),
        ({"body": "see https://spam.example"}, (403, "TrustLevelTooLow")),
        ({"body": "hi", "parent_id": elsewhere["id"]}, (404, "InvalidParent")),
        ({"body": "hi", "parent_id": str(uuid.uuid4())}, (404, "InvalidParent")),
    ]
    for body, expected in cases:
        assert error(await client.post(url, json=body, headers=other_member.headers)) == expected
    unknown = await client.post(
        f"{POSTS}/{uuid.uuid4()}/comments", json={"body": "hi"}, headers=other_member.headers
    )
    assert error(unknown) == (404, "PostNotFound")
    first_pass.hold = True
    held_post = await write_post(client, member, "held one")
    hidden = await client.post(
        f"{POSTS}/{held_post['id']}/comments", json={"body": "hi"}, headers=other_member.headers
    )
    assert error(hidden) == (404, "PostNotFound")
    assert await comment_count(session) == 1  # only the setup comment

    await set_trust(session, other_member.id, 1)
    first_pass.hold = False
    await write_comment(client, other_member, post["id"], "see https://ok.example")


async def test_a_held_comment_is_seen_by_its_author_only_until_approved(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
    first_pass: FirstPass,
) -> None:
    post = await write_post(client, member, "ask me")
    first_pass.hold = True
    held = await write_comment(client, other_member, post["id"], "suspicious")
    assert (held["status"], held["held_reasons"]) == ("held", ["classifier:spam"])
    assert await comment_counter(session, post["id"]) == 0
    url = f"{POSTS}/{post['id']}/comments"
    assert [
        c["id"] for c in (await client.get(url, headers=other_member.headers)).json()["items"]
    ] == [held["id"]]
    assert (await client.get(url, headers=member.headers)).json()["items"] == []
    single = await client.get(f"/community/v1/comments/{held['id']}", headers=member.headers)
    assert error(single) == (404, "CommentNotFound")
    reply = await client.post(
        url, json={"body": "reply", "parent_id": held["id"]}, headers=member.headers
    )
    assert error(reply) == (404, "InvalidParent")

    comment = await CommentRepository(session).get(brand.id, uuid.UUID(held["id"]))
    assert comment is not None
    await service.approve_comment(session, comment)
    await service.approve_comment(session, comment)
    assert comment.status == ContentStatus.PUBLISHED
    assert await comment_counter(session, post["id"]) == 1
    assert [c["id"] for c in (await client.get(url, headers=member.headers)).json()["items"]] == [
        held["id"]
    ]

    await service.remove_comment(session, comment, removed_by="moderator", reason="spam")
    await service.remove_comment(session, comment, removed_by="moderator", reason="spam")
    assert await comment_counter(session, post["id"]) == 0
    assert (await client.get(url, headers=other_member.headers)).json()["items"] == []
    types = [t for t, _ in await community_events(session) if t.startswith("comment")]
    assert types == ["comment.created", "comment.approved", "comment.removed"]


async def test_authors_delete_their_comments_and_replies_to_removed_ones_are_refused(
    client: httpx.AsyncClient,
    session: AsyncSession,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    post = await write_post(client, member, "thread")
    comment = await write_comment(client, other_member, post["id"], "mine")
    url = f"/community/v1/comments/{comment['id']}"
    assert error(await client.delete(url, headers=member.headers)) == (403, "NotTheAuthor")
    assert (await client.delete(url, headers=other_member.headers)).status_code == 204
    assert await comment_counter(session, post["id"]) == 0
    reply = await client.post(
        f"{POSTS}/{post['id']}/comments",
        json={"body": "answer", "parent_id": comment["id"]},
        headers=member.headers,
    )
    assert error(reply) == (409, "CommentRemoved")
    removed = [d for t, d in await community_events(session) if t == "comment.removed"]
    assert [(d["removed_by"], d["status"]) for d in removed] == [("author", "removed")]


async def test_commenting_in_a_group_you_were_removed_from_is_refused(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    group_id = await make_group(
        session,
        brand.id,
        {member.id: MembershipStatus.ACTIVE, other_member.id: MembershipStatus.ACTIVE},
    )
    post = await write_post(client, member, "group talk", group_id=str(group_id))
    await write_comment(client, other_member, post["id"], "while I can")
    membership = await session.get(GroupMembership, (group_id, other_member.id))
    assert membership is not None
    membership.status = MembershipStatus.REMOVED
    await session.flush()
    refused = await client.post(
        f"{POSTS}/{post['id']}/comments", json={"body": "again"}, headers=other_member.headers
    )
    assert error(refused) == (403, "RemovedFromGroup")
    react = await client.post(
        f"{POSTS}/{post['id']}/reactions", json={"kind": "love"}, headers=other_member.headers
    )
    assert error(react) == (403, "RemovedFromGroup")
    edit = await client.patch(
        f"{POSTS}/{post['id']}", json={"body": "x"}, headers=other_member.headers
    )
    assert error(edit) == (403, "NotTheAuthor")
    assert await comment_count(session) == 1


async def test_a_member_of_another_brand_cannot_read_or_comment(
    client: httpx.AsyncClient,
    session: AsyncSession,
    member: MemberFixture,
    other_brand: BrandFixture,
    make_member: MakeMember,
) -> None:
    post = await write_post(client, member, "local")
    comment = await write_comment(client, member, post["id"], "local comment")
    stranger = await make_member("zed", other_brand)
    url = f"{POSTS}/{post['id']}/comments"
    assert error(await client.get(url, headers=stranger.headers)) == (404, "PostNotFound")
    refused = await client.post(url, json={"body": "hi"}, headers=stranger.headers)
    assert error(refused) == (404, "PostNotFound")
    single = await client.get(f"/community/v1/comments/{comment['id']}", headers=stranger.headers)
    assert error(single) == (404, "CommentNotFound")
    staff = await client.get(
        f"/community/v1/staff/comments/{comment['id']}", headers=other_brand.headers
    )
    assert error(staff) == (404, "CommentNotFound")
    assert await comment_count(session) == 1


async def test_staff_list_comments_by_status(
    client: httpx.AsyncClient,
    brand: BrandFixture,
    member: MemberFixture,
    first_pass: FirstPass,
) -> None:
    post = await write_post(client, member, "p")
    shown = await write_comment(client, member, post["id"], "shown")
    first_pass.hold = True
    held = await write_comment(client, member, post["id"], "held")
    listing = await client.get(
        "/community/v1/staff/comments", params={"status": "held"}, headers=brand.headers
    )
    assert [c["id"] for c in listing.json()["items"]] == [held["id"]]
    every = await client.get("/community/v1/staff/comments", headers=brand.headers)
    assert [c["id"] for c in every.json()["items"]] == [held["id"], shown["id"]]
    one = await client.get(f"/community/v1/staff/comments/{held['id']}", headers=brand.headers)
    assert (one.json()["status"], one.json()["held_reasons"]) == ("held", ["classifier:spam"])


async def test_the_repositories_fetch_by_brand(
    session: AsyncSession,
    client: httpx.AsyncClient,
    brand: BrandFixture,
    other_brand: BrandFixture,
    member: MemberFixture,
) -> None:
    post = await write_post(client, member, "p")
    comment = await write_comment(client, member, post["id"], "c")
    posts, comments = PostRepository(session), CommentRepository(session)
    assert (await posts.get(brand.id, uuid.UUID(post["id"]))) is not None
    assert (await posts.get(other_brand.id, uuid.UUID(post["id"]))) is None
    found = await comments.get(brand.id, uuid.UUID(comment["id"]))
    assert isinstance(found, Comment)
    assert (await comments.get(other_brand.id, uuid.UUID(comment["id"]))) is None
