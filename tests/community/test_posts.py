"""Writing, reading, editing and deleting posts through the member API, with their events."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.models import ContentStatus, MembershipStatus, Post
from services.community.posts import service
from services.community.posts.repository import PostRepository
from tests.community.conftest import MakeMember, community_events
from tests.community.posts_helpers import (
    POSTS,
    FirstPass,
    error,
    first_pass,
    make_group,
    post_count,
    set_trust,
    write_post,
)
from tests.conftest import BrandFixture, MemberFixture

__all__ = ["first_pass"]


async def test_a_member_writes_a_post_published_at_once_with_both_events(
    client: httpx.AsyncClient, session: AsyncSession, member: MemberFixture
) -> None:
    response = await client.post(
        POSTS,
        json={
            "body": "  My  Summer\nLook  ",
            "media": [{"url": "https://cdn.example.com/a.jpg", "alt": "Me at the beach"}],
            "tags": ["Summer", "#summer", " Beach  Day "],
            "skus": ["SKU-1", "SKU-1", "SKU-2"],
        },
        headers=member.headers,
    )
    assert response.status_code == 201, response.text
    post = response.json()
    assert post == {
        "id": post["id"],
        "author": {"member_id": str(member.id), "display_name": "Ada"},
        "kind": "post",
        "body": "My  Summer\nLook",
        "media": [{"url": "https://cdn.example.com/a.jpg", "alt": "Me at the beach"}],
        "tags": ["summer", "beach day"],
        "skus": ["SKU-1", "SKU-2"],
        "group_id": None,
        "prompt_id": None,
        "review_sku": None,
        "rating": None,
        "incentivised": False,
        "status": "published",
        "held_reasons": [],
        "comment_count": 0,
        "reaction_count": 0,
        "created_at": post["created_at"],
        "updated_at": post["created_at"],
    }
    stored = await session.get(Post, uuid.UUID(post["id"]))
    assert stored is not None
    assert stored.body_hash == hashlib.sha256(b"my summer look").hexdigest()
    assert stored.approved_at is not None
    data = {
        "post_id": post["id"],
        "author_id": str(member.id),
        "kind": "post",
        "status": "published",
        "group_id": None,
        "prompt_id": None,
        "review_sku": None,
        "rating": None,
        "tags": ["summer", "beach day"],
        "skus": ["SKU-1", "SKU-2"],
        "incentivised": False,
    }
    assert await community_events(session) == [("post.created", data), ("post.approved", data)]


def _media(n: int) -> list[dict[str, str]]:
    return [{"url": f"https://cdn.example.com/{i}.jpg", "alt": ""} for i in range(n)]


BAD_POSTS: list[tuple[str, dict[str, Any]]] = [
    ("empty", {"body": ""}),
    ("blank", {"body": " \n\t "}),
    ("oversize", {"body": "x" * 10_001}),
    ("no body", {"tags": ["a"]}),
    ("eleven media", {"body": "hi", "media": _media(11)}),
    ("ftp url", {"body": "hi", "media": [{"url": "ftp://example.com/a.jpg"}]}),
    ("javascript url", {"body": "hi", "media": [{"url": "javascript:alert(1)"}]}),
    ("relative url", {"body": "hi", "media": [{"url": "/a.jpg"}]}),
    ("long alt", {"body": "hi", "media": [{"url": "https://e.com/a", "alt": "a" * 501}]}),
    ("21 tags", {"body": "hi", "tags": [f"t{i}" for i in range(21)]}),
    ("long tag", {"body": "hi", "tags": ["x" * 51]}),
    ("blank tag", {"body": "hi", "tags": ["  "]}),
    ("21 skus", {"body": "hi", "skus": [f"s{i}" for i in range(21)]}),
    ("prompt id", {"body": "hi", "prompt_id": str(uuid.uuid4())}),
    ("incentivised", {"body": "hi", "incentivised": True}),
    ("rating on a post", {"body": "hi", "rating": 5}),
    ("review without rating", {"body": "hi", "kind": "review", "review_sku": "S"}),
    ("review without sku", {"body": "hi", "kind": "review", "rating": 4}),
    ("rating 6", {"body": "hi", "kind": "review", "review_sku": "S", "rating": 6}),
    ("rating 0", {"body": "hi", "kind": "review", "review_sku": "S", "rating": 0}),
    ("rating as text", {"body": "hi", "kind": "review", "review_sku": "S", "rating": "5"}),
    ("unknown kind", {"body": "hi", "kind": "poll"}),
]


@pytest.mark.parametrize(("case", "body"), BAD_POSTS, ids=[case for case, _ in BAD_POSTS])
async def test_bad_posts_are_refused_with_422_and_nothing_written(
    client: httpx.AsyncClient,
    session: AsyncSession,
    member: MemberFixture,
    case: str,
    body: dict[str, Any],
) -> None:
    response = await client.post(POSTS, json=body, headers=member.headers)
    assert error(response) == (422, "ValidationError"), case
    assert response.json()["detail"]
    assert await post_count(session) == 0
    assert await community_events(session) == []


async def test_ten_media_and_a_body_of_10000_characters_are_accepted(
    client: httpx.AsyncClient, member: MemberFixture
) -> None:
    post = await write_post(client, member, "y" * 10_000, media=_media(10))
    assert len(post["body"]) == 10_000
    assert len(post["media"]) == 10


async def test_links_in_the_text_need_trust_level_1_but_media_urls_do_not(
    client: httpx.AsyncClient, session: AsyncSession, member: MemberFixture
) -> None:
    for text in ("see https://shop.example.com/deal", "go to www.example.com now"):
        refused = await client.post(POSTS, json={"body": text}, headers=member.headers)
        assert error(refused) == (403, "TrustLevelTooLow")
        assert "post_links needs trust level 1" in refused.json()["detail"]
    assert await post_count(session) == 0

    await write_post(client, member, "photo only", media=_media(1))
    await set_trust(session, member.id, 1)
    linked = await write_post(client, member, "see https://shop.example.com/deal")
    assert linked["status"] == "published"


async def test_posting_in_a_group_needs_an_active_membership(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
    make_member: MakeMember,
) -> None:
    left = await make_member("cy")
    group_id = await make_group(
        session,
        brand.id,
        {
            member.id: MembershipStatus.ACTIVE,
            other_member.id: MembershipStatus.REMOVED,
            left.id: MembershipStatus.LEFT,
        },
    )
    outsider = await make_member("dee")
    cases = [
        (other_member, (403, "RemovedFromGroup")),
        (left, (403, "NotAGroupMember")),
        (outsider, (403, "NotAGroupMember")),
    ]
    for who, expected in cases:
        response = await client.post(
            POSTS, json={"body": "hi group", "group_id": str(group_id)}, headers=who.headers
        )
        assert error(response) == expected
    foreign = await make_group(session, other_brand.id, {}, slug="elsewhere")
    response = await client.post(
        POSTS, json={"body": "hi", "group_id": str(foreign)}, headers=member.headers
    )
    assert error(response) == (404, "GroupNotFound")
    assert await post_count(session) == 0

    post = await write_post(client, member, "hi group", group_id=str(group_id))
    assert post["group_id"] == str(group_id)


async def test_a_held_post_is_visible_to_its_author_only(
    client: httpx.AsyncClient,
    session: AsyncSession,
    member: MemberFixture,
    other_member: MemberFixture,
    first_pass: FirstPass,
) -> None:
    first_pass.hold = True
    post = await write_post(client, member, "buy cheap stuff")
    assert (post["status"], post["held_reasons"]) == ("held", ["classifier:spam"])
    events = await community_events(session)
    assert [(t, d["status"]) for t, d in events] == [("post.created", "held")]

    mine = await client.get(f"{POSTS}/{post['id']}", headers=member.headers)
    assert mine.status_code == 200
    assert mine.json()["status"] == "held"
    theirs = await client.get(f"{POSTS}/{post['id']}", headers=other_member.headers)
    assert error(theirs) == (404, "PostNotFound")

    own_list = await client.get("/community/v1/me/posts", headers=member.headers)
    assert [(p["id"], p["status"]) for p in own_list.json()["items"]] == [(post["id"], "held")]
    public = await client.get(
        f"/community/v1/members/{member.id}/posts", headers=other_member.headers
    )
    assert public.json() == {"items": [], "next": None, "previous": None}
    author_view = await client.get(
        f"/community/v1/members/{member.id}/posts", headers=member.headers
    )
    assert [p["id"] for p in author_view.json()["items"]] == [post["id"]]


async def test_approving_and_removing_are_idempotent_and_emit_once(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
    first_pass: FirstPass,
) -> None:
    first_pass.hold = True
    created = await write_post(client, member, "held for now")
    posts = PostRepository(session)
    post = await posts.get(brand.id, uuid.UUID(created["id"]))
    assert post is not None
    await service.approve_post(session, post)
    await service.approve_post(session, post)
    assert post.status == ContentStatus.PUBLISHED
    assert post.approved_at is not None
    seen = await client.get(f"{POSTS}/{created['id']}", headers=other_member.headers)
    assert seen.status_code == 200

    await service.remove_post(session, post, removed_by="moderator", reason="off topic")
    await service.remove_post(session, post, removed_by="moderator", reason="again")
    await service.approve_post(session, post)  # a removed post stays removed
    assert post.status == ContentStatus.REMOVED
    assert post.removed_at is not None
    events = await community_events(session)
    assert [(t, d["status"]) for t, d in events] == [
        ("post.created", "held"),
        ("post.approved", "published"),
        ("post.removed", "removed"),
    ]
    assert (events[2][1]["removed_by"], events[2][1]["reason"]) == ("moderator", "off topic")
    for who in (member, other_member):
        gone = await client.get(f"{POSTS}/{created['id']}", headers=who.headers)
        assert error(gone) == (404, "PostNotFound")


async def test_authors_edit_their_posts_and_edits_are_screened_again(
    client: httpx.AsyncClient,
    session: AsyncSession,
    member: MemberFixture,
    other_member: MemberFixture,
    first_pass: FirstPass,
) -> None:
    first_pass.hold = True
    post = await write_post(client, member, "first draft", tags=["a"])
    first_pass.hold = False
    url = f"{POSTS}/{post['id']}"

    not_mine = await client.patch(url, json={"body": "hijack"}, headers=other_member.headers)
    assert error(not_mine) == (404, "PostNotFound")  # a held post is not theirs to see
    nothing = await client.patch(url, json={}, headers=member.headers)
    assert error(nothing) == (422, "ValidationError")
    null_body = await client.patch(url, json={"body": None}, headers=member.headers)
    assert error(null_body) == (422, "ValidationError")
    link = await client.patch(url, json={"body": "https://x.example"}, headers=member.headers)
    assert error(link) == (403, "TrustLevelTooLow")

    edited = await client.patch(
        url, json={"body": "Second  draft", "tags": ["B"]}, headers=member.headers
    )
    assert edited.status_code == 200, edited.text
    body = edited.json()
    assert (body["body"], body["tags"], body["status"]) == ("Second  draft", ["b"], "published")
    assert body["updated_at"] > body["created_at"]
    stored = await session.get(Post, uuid.UUID(post["id"]))
    assert stored is not None
    assert stored.body_hash == hashlib.sha256(b"second draft").hexdigest()
    assert [t for t, _ in await community_events(session)] == ["post.created", "post.approved"]

    published_not_mine = await client.patch(
        url, json={"body": "hijack"}, headers=other_member.headers
    )
    assert error(published_not_mine) == (403, "NotTheAuthor")

    first_pass.hold = True
    held_again = await client.patch(url, json={"body": "spammy now"}, headers=member.headers)
    assert (held_again.json()["status"], held_again.json()["held_reasons"]) == (
        "held",
        ["classifier:spam"],
    )
    hidden = await client.get(url, headers=other_member.headers)
    assert error(hidden) == (404, "PostNotFound")


async def test_authors_delete_their_posts_once_and_others_cannot(
    client: httpx.AsyncClient,
    session: AsyncSession,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    post = await write_post(client, member, "short lived")
    url = f"{POSTS}/{post['id']}"
    refused = await client.delete(url, headers=other_member.headers)
    assert error(refused) == (403, "NotTheAuthor")

    assert (await client.delete(url, headers=member.headers)).status_code == 204
    assert (await client.delete(url, headers=member.headers)).status_code == 204
    gone = await client.delete(url, headers=other_member.headers)
    assert error(gone) == (404, "PostNotFound")
    edit = await client.patch(url, json={"body": "back?"}, headers=member.headers)
    assert error(edit) == (404, "PostNotFound")
    removed = [d for t, d in await community_events(session) if t == "post.removed"]
    assert len(removed) == 1
    assert (removed[0]["removed_by"], removed[0]["reason"]) == ("author", None)
    stored = (await session.scalars(select(Post))).one()
    assert stored.status == ContentStatus.REMOVED


async def test_a_member_of_another_brand_sees_and_touches_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    member: MemberFixture,
    other_brand: BrandFixture,
    make_member: MakeMember,
) -> None:
    post = await write_post(client, member, "ours only")
    stranger = await make_member("zed", other_brand)
    url = f"{POSTS}/{post['id']}"
    assert error(await client.get(url, headers=stranger.headers)) == (404, "PostNotFound")
    patch = await client.patch(url, json={"body": "x"}, headers=stranger.headers)
    assert error(patch) == (404, "PostNotFound")
    assert error(await client.delete(url, headers=stranger.headers)) == (404, "PostNotFound")
    listed = await client.get(f"/community/v1/members/{member.id}/posts", headers=stranger.headers)
    assert error(listed) == (404, "MemberNotFound")
    staff = await client.get(f"/community/v1/staff/posts/{post['id']}", headers=other_brand.headers)
    assert error(staff) == (404, "PostNotFound")
    listing = await client.get("/community/v1/staff/posts", headers=other_brand.headers)
    assert listing.json() == {"items": [], "next": None, "previous": None}


async def test_a_retried_post_with_the_same_idempotency_key_is_written_once(
    client: httpx.AsyncClient, session: AsyncSession, member: MemberFixture
) -> None:
    headers = {**member.headers, "Idempotency-Key": "post-1"}
    first = await client.post(POSTS, json={"body": "once"}, headers=headers)
    again = await client.post(POSTS, json={"body": "once"}, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await post_count(session) == 1


async def test_staff_list_posts_by_status_and_read_any(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    first_pass: FirstPass,
) -> None:
    published = await write_post(client, member, "fine")
    first_pass.hold = True
    held = await write_post(client, member, "doubtful")
    held_list = await client.get(
        "/community/v1/staff/posts", params={"status": "held"}, headers=brand.headers
    )
    assert [(p["id"], p["held_reasons"]) for p in held_list.json()["items"]] == [
        (held["id"], ["classifier:spam"])
    ]
    everything = await client.get("/community/v1/staff/posts", headers=brand.headers)
    assert [p["id"] for p in everything.json()["items"]] == [held["id"], published["id"]]
    one = await client.get(f"/community/v1/staff/posts/{held['id']}", headers=brand.headers)
    assert (one.json()["status"], one.json()["removed_at"]) == ("held", None)
    as_member = await client.get("/community/v1/staff/posts", headers=member.headers)
    assert error(as_member) == (403, "Forbidden")


async def test_a_suspended_member_cannot_post_but_still_reads(
    client: httpx.AsyncClient, session: AsyncSession, member: MemberFixture
) -> None:
    from datetime import timedelta

    from services.community.models import CommunityMember
    from services.kernel.clock import utcnow

    post = await write_post(client, member, "before")
    row = await session.get(CommunityMember, member.id)
    assert row is not None
    row.suspended_until = utcnow() + timedelta(days=1)
    await session.flush()
    refused = await client.post(POSTS, json={"body": "after"}, headers=member.headers)
    assert error(refused) == (403, "MemberSuspended")
    read = await client.get(f"{POSTS}/{post['id']}", headers=member.headers)
    assert read.status_code == 200
