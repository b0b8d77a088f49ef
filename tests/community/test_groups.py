"""Groups: brand-run and member-run groups, joining and leaving, moderators, removal."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.models import Group, GroupMembership, Post
from tests.community.conftest import MakeMember, community_events
from tests.community.moderation_helpers import count, error
from tests.conftest import BrandFixture, MemberFixture


async def create_group(
    client: httpx.AsyncClient, headers: dict[str, str], **body: Any
) -> dict[str, Any]:
    response = await client.post(
        "/community/v1/groups", json={"name": "Curly hair", **body}, headers=headers
    )
    assert response.status_code == 201, response.text
    group: dict[str, Any] = response.json()
    return group


async def join(client: httpx.AsyncClient, group_id: str, who: MemberFixture) -> httpx.Response:
    return await client.post(f"/community/v1/groups/{group_id}/members", headers=who.headers)


async def test_staff_create_brand_groups_and_members_list_and_get_them(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    created = await client.post(
        "/community/v1/groups",
        json={"name": "  Curly hair & Care! ", "description": "Coils and curls"},
        headers=brand.headers,
    )
    assert created.status_code == 201, created.text
    group = created.json()
    assert group == {
        "id": group["id"],
        "slug": "curly-hair-care",
        "name": "Curly hair & Care!",
        "description": "Coils and curls",
        "kind": "brand",
        "owner_id": None,
        "member_count": 0,
        "archived": False,
        "created_at": group["created_at"],
    }
    second = await create_group(client, brand.headers, name="Fragrance", slug="scents")
    assert second["slug"] == "scents"
    assert await community_events(session) == []  # nobody joined a brand-run group yet

    fetched = await client.get(f"/community/v1/groups/{group['id']}", headers=member.headers)
    assert fetched.json() == group
    first_page = await client.get(
        "/community/v1/groups", params={"limit": 1}, headers=member.headers
    )
    assert [g["id"] for g in first_page.json()["items"]] == [group["id"]]
    rest = await client.get(
        "/community/v1/groups", params={"after": first_page.json()["next"]}, headers=brand.headers
    )
    assert rest.json() == {"items": [second], "next": None, "previous": None}


async def test_a_trusted_member_creates_a_group_and_becomes_its_moderator(
    client: httpx.AsyncClient, session: AsyncSession, make_member: MakeMember
) -> None:
    creator = await make_member("cleo", trust_level=2)
    group = await create_group(client, creator.headers, name="Fragrance collectors")
    assert group["kind"] == "member"
    assert group["owner_id"] == str(creator.id)
    assert group["member_count"] == 1
    members = await client.get(
        f"/community/v1/groups/{group['id']}/members", headers=creator.headers
    )
    assert [(m["member_id"], m["role"], m["status"]) for m in members.json()["items"]] == [
        (str(creator.id), "moderator", "active")
    ]
    assert await community_events(session) == [
        (
            "group.joined",
            {
                "group_id": group["id"],
                "member_id": str(creator.id),
                "group_kind": "member",
                "slug": "fragrance-collectors",
                "name": "Fragrance collectors",
                "created_group": True,
            },
        )
    ]


async def test_creating_a_group_needs_trust_level_two_and_a_free_slug(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    refused = await client.post(
        "/community/v1/groups", json={"name": "Mine"}, headers=member.headers
    )
    assert refused.status_code == 403
    assert error(refused) == "TrustLevelTooLow"
    await create_group(client, brand.headers, name="Curly hair")
    taken = await client.post(
        "/community/v1/groups", json={"name": "Curly HAIR"}, headers=brand.headers
    )
    assert taken.status_code == 409
    assert error(taken) == "GroupSlugTaken"
    for body in ({"name": ""}, {"name": "x", "slug": "Not A Slug"}, {"name": "x", "extra": 1}):
        bad = await client.post("/community/v1/groups", json=body, headers=brand.headers)
        assert bad.status_code == 422, body
        assert error(bad) == "ValidationError"
    assert await count(session, Group) == 1
    assert await count(session, GroupMembership) == 0
    assert await community_events(session) == []


async def test_join_leave_and_rejoin_count_members_and_emit_group_joined(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    group = await create_group(client, brand.headers)
    joined = await join(client, group["id"], member)
    assert joined.status_code == 201
    assert joined.json() == {
        "group_id": group["id"],
        "member_id": str(member.id),
        "role": "member",
        "status": "active",
        "joined_at": joined.json()["joined_at"],
        "updated_at": joined.json()["updated_at"],
    }
    again = await join(client, group["id"], member)
    assert again.status_code == 200
    assert again.json() == joined.json()
    assert (await join(client, group["id"], other_member)).status_code == 201

    async def member_count() -> int:
        response = await client.get(f"/community/v1/groups/{group['id']}", headers=brand.headers)
        value: int = response.json()["member_count"]
        return value

    assert await member_count() == 2
    left = await client.delete(
        f"/community/v1/groups/{group['id']}/members/me", headers=member.headers
    )
    assert left.status_code == 204
    assert await member_count() == 1
    # Leaving twice changes nothing.
    await client.delete(f"/community/v1/groups/{group['id']}/members/me", headers=member.headers)
    assert await member_count() == 1
    assert (await join(client, group["id"], member)).status_code == 201
    assert await member_count() == 2
    events = await community_events(session)
    assert [(t, d["member_id"], d["created_group"]) for t, d in events] == [
        ("group.joined", str(member.id), False),
        ("group.joined", str(other_member.id), False),
        ("group.joined", str(member.id), False),
    ]


async def test_staff_and_moderators_update_and_archive_other_members_may_not(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    make_member: MakeMember,
    member: MemberFixture,
) -> None:
    creator = await make_member("cleo", trust_level=2)
    group = await create_group(client, creator.headers, name="Nails")
    await join(client, group["id"], member)
    url = f"/community/v1/groups/{group['id']}"
    refused = await client.patch(url, json={"name": "Mine now"}, headers=member.headers)
    assert refused.status_code == 403
    assert error(refused) == "NotGroupModerator"
    refused = await client.post(f"{url}/archive", headers=member.headers)
    assert refused.status_code == 403
    changed = await client.patch(url, json={"description": "Nail art"}, headers=creator.headers)
    assert changed.status_code == 200
    assert (changed.json()["name"], changed.json()["description"]) == ("Nails", "Nail art")
    renamed = await client.patch(url, json={"name": "Nail art"}, headers=brand.headers)
    assert renamed.json()["name"] == "Nail art"

    archived = await client.post(f"{url}/archive", headers=creator.headers)
    assert archived.status_code == 200
    assert archived.json()["archived"] is True
    # Gone for members (and they cannot join it), still there for staff.
    for response in (
        await client.get(url, headers=member.headers),
        await join(client, group["id"], member),
        await client.patch(url, json={"name": "x"}, headers=creator.headers),
    ):
        assert response.status_code == 404
        assert error(response) == "GroupNotFound"
    assert (await client.get(url, headers=brand.headers)).json()["archived"] is True
    listed = await client.get("/community/v1/groups", headers=member.headers)
    assert listed.json()["items"] == []
    staff_list = await client.get(
        "/community/v1/groups", params={"archived": "true"}, headers=brand.headers
    )
    assert [g["id"] for g in staff_list.json()["items"]] == [group["id"]]


async def test_moderators_promote_and_demote_and_a_member_group_keeps_one(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    make_member: MakeMember,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    creator = await make_member("cleo", trust_level=2)
    group = await create_group(client, creator.headers, name="Nails")
    url = f"/community/v1/groups/{group['id']}"
    await join(client, group["id"], member)
    not_in = await client.post(
        f"{url}/moderators", json={"member_id": str(other_member.id)}, headers=creator.headers
    )
    assert not_in.status_code == 409
    assert error(not_in) == "NotActiveInGroup"
    by_member = await client.post(
        f"{url}/moderators", json={"member_id": str(member.id)}, headers=other_member.headers
    )
    assert by_member.status_code == 403

    last = await client.delete(f"{url}/moderators/{creator.id}", headers=creator.headers)
    assert last.status_code == 409
    assert error(last) == "LastModerator"
    leaving = await client.delete(f"{url}/members/me", headers=creator.headers)
    assert leaving.status_code == 409
    assert error(leaving) == "LastModerator"

    promoted = await client.post(
        f"{url}/moderators", json={"member_id": str(member.id)}, headers=creator.headers
    )
    assert (promoted.status_code, promoted.json()["role"]) == (200, "moderator")
    # The new moderator manages the group too.
    renamed = await client.patch(url, json={"name": "Nail art"}, headers=member.headers)
    assert renamed.status_code == 200
    demoted = await client.delete(f"{url}/moderators/{creator.id}", headers=member.headers)
    assert (demoted.status_code, demoted.json()["role"]) == (200, "member")
    moderators = await client.get(
        f"{url}/members", params={"role": "moderator"}, headers=brand.headers
    )
    assert [m["member_id"] for m in moderators.json()["items"]] == [str(member.id)]


async def test_a_removed_member_cannot_rejoin_post_or_act_in_the_group(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    make_member: MakeMember,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    creator = await make_member("cleo", trust_level=2)
    group = await create_group(client, creator.headers, name="Nails")
    url = f"/community/v1/groups/{group['id']}"
    await join(client, group["id"], member)
    plain = await client.delete(f"{url}/members/{creator.id}", headers=member.headers)
    assert plain.status_code == 403
    assert error(plain) == "NotGroupModerator"
    self_removal = await client.delete(f"{url}/members/{creator.id}", headers=creator.headers)
    assert self_removal.status_code == 409
    assert error(self_removal) == "CannotRemoveSelf"

    removed = await client.delete(f"{url}/members/{member.id}", headers=creator.headers)
    assert removed.status_code == 200
    assert (removed.json()["status"], removed.json()["role"]) == ("removed", "member")
    assert (await client.get(url, headers=member.headers)).json()["member_count"] == 1
    # Staff may also ban someone who never joined.
    banned = await client.delete(f"{url}/members/{other_member.id}", headers=brand.headers)
    assert banned.json()["status"] == "removed"

    events_before = await community_events(session)
    posts_before = await count(session, Post)
    for who in (member, other_member):
        rejoin = await join(client, group["id"], who)
        assert rejoin.status_code == 403
        assert error(rejoin) == "RemovedFromGroup"
    post = await client.post(
        "/community/v1/posts",
        json={"body": "Back again", "group_id": group["id"]},
        headers=member.headers,
    )
    assert post.status_code == 403
    assert error(post) == "RemovedFromGroup"
    assert await community_events(session) == events_before
    assert await count(session, Post) == posts_before
    membership = await session.scalar(
        select(GroupMembership).where(
            GroupMembership.group_id == uuid.UUID(group["id"]),
            GroupMembership.member_id == member.id,
        )
    )
    assert membership is not None
    await session.refresh(membership)
    assert membership.status == "removed"

    # Only staff and moderators see who was removed.
    hidden = await client.get(
        f"{url}/members", params={"status": "removed"}, headers=member.headers
    )
    assert hidden.status_code == 403
    shown = await client.get(
        f"{url}/members", params={"status": "removed"}, headers=creator.headers
    )
    assert {m["member_id"] for m in shown.json()["items"]} == {str(member.id), str(other_member.id)}

    reinstated = await client.post(f"{url}/members/{member.id}/reinstate", headers=creator.headers)
    assert reinstated.json()["status"] == "left"
    twice = await client.post(f"{url}/members/{member.id}/reinstate", headers=creator.headers)
    assert twice.status_code == 409
    assert error(twice) == "NotRemoved"
    assert (await join(client, group["id"], member)).status_code == 201


async def test_another_brand_sees_nothing_of_a_group(
    client: httpx.AsyncClient,
    brand: BrandFixture,
    other_brand: BrandFixture,
    make_member: MakeMember,
) -> None:
    group = await create_group(client, brand.headers)
    stranger = await make_member("zed", other_brand)
    url = f"/community/v1/groups/{group['id']}"
    for response in (
        await client.get(url, headers=other_brand.headers),
        await client.get(url, headers=stranger.headers),
        await join(client, group["id"], stranger),
        await client.patch(url, json={"name": "Ours"}, headers=other_brand.headers),
        await client.get(f"{url}/members", headers=stranger.headers),
    ):
        assert response.status_code == 404
        assert error(response) == "GroupNotFound"
    listed = await client.get("/community/v1/groups", headers=other_brand.headers)
    assert listed.json() == {"items": [], "next": None, "previous": None}
