"""Reputation from approved contributions and reactions, taken back on removal; trust levels from
reputation thresholds, staff locks; reputation badges; nothing across brands."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.models import CommunityMember
from services.community.reputation.consumer import REPUTATION_CONSUMER
from services.community.reputation.models import MemberBadge, ReputationEvent
from services.community.reputation.trust import level_for, next_threshold
from tests.community.conftest import MakeMember, community_events
from tests.community.engagement_helpers import (
    comment,
    create_badge,
    delete_post,
    error,
    outbox_events,
    post,
    react,
    replay,
)
from tests.conftest import BrandFixture, MemberFixture


async def standing(session: AsyncSession, member: MemberFixture) -> tuple[int, int]:
    row = (
        await session.execute(
            select(CommunityMember.reputation, CommunityMember.trust_level)
            .where(CommunityMember.member_id == member.id)
            .execution_options(populate_existing=True)
        )
    ).one()
    return row.reputation, row.trust_level


async def history(
    client: httpx.AsyncClient, brand: BrandFixture, member: MemberFixture
) -> list[tuple[int, str, str]]:
    """The member's reputation history, oldest first: (delta, reason, key)."""
    response = await client.get(
        f"/community/v1/members/{member.id}/reputation/events", headers=brand.headers
    )
    assert response.status_code == 200, response.text
    return [(e["delta"], e["reason"], e["key"]) for e in reversed(response.json()["items"])]


async def rows_sum(session: AsyncSession, member: MemberFixture) -> int:
    total = await session.scalar(
        select(func.coalesce(func.sum(ReputationEvent.delta), 0)).where(
            ReputationEvent.member_id == member.id
        )
    )
    return int(total or 0)


@pytest.mark.parametrize(
    ("reputation", "level"),
    [(0, 0), (19, 0), (20, 1), (99, 1), (100, 2), (299, 2), (300, 3), (999, 3), (1000, 4)],
)
def test_trust_level_thresholds(reputation: int, level: int) -> None:
    assert level_for(reputation) == level


def test_next_threshold() -> None:
    assert next_threshold(0) == (1, 20)
    assert next_threshold(3) == (4, 1000)
    assert next_threshold(4) is None


async def test_reputation_rises_with_approvals_and_reactions_and_falls_on_removal(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    ada, bea = member, other_member
    mine = await post(client, ada)
    await replay(session, REPUTATION_CONSUMER)
    assert await standing(session, ada) == (10, 0)

    await react(client, bea, mine["id"], "love")
    await react(client, bea, mine["id"], "helpful")
    await react(client, ada, mine["id"], "wow")  # reacting to oneself earns nothing
    await comment(client, bea, mine["id"])
    await replay(session, REPUTATION_CONSUMER)
    assert await standing(session, ada) == (12, 0)
    assert await standing(session, bea) == (2, 0)

    # Bea takes back one reaction: what it gave goes.
    response = await client.delete(
        f"/community/v1/posts/{mine['id']}/reactions/love", headers=bea.headers
    )
    assert response.status_code == 204, response.text
    await replay(session, REPUTATION_CONSUMER)
    assert await standing(session, ada) == (11, 0)

    # Ada removes the post: everything it still earned (10 + the helpful reaction) goes.
    await delete_post(client, ada, mine["id"])
    await replay(session, REPUTATION_CONSUMER)
    assert await standing(session, ada) == (0, 0)
    assert await standing(session, bea) == (2, 0)  # her comment was not removed

    post_key = f"post:{mine['id']}"
    love = f"reaction:{bea.id}:{mine['id']}:love"
    helpful = f"reaction:{bea.id}:{mine['id']}:helpful"
    assert sorted(await history(client, brand, ada)) == sorted(
        [
            (10, "post_approved", post_key),
            (1, "reaction_received", love),
            (1, "reaction_received", helpful),
            (-1, "reaction_removed", love),
            (-1, "content_removed", helpful),
            (-10, "content_removed", post_key),
        ]
    )
    assert await rows_sum(session, ada) == 0

    # Replaying everything again changes nothing, and so does a handler run twice on one event.
    events_before = await community_events(session)
    assert await replay(session, REPUTATION_CONSUMER) == 0
    for event in await outbox_events(session):
        if REPUTATION_CONSUMER.wants(event.type):
            await REPUTATION_CONSUMER.handler(session, event)
    assert await standing(session, ada) == (0, 0)
    assert await standing(session, bea) == (2, 0)
    assert await community_events(session) == events_before


async def test_a_held_comment_earns_only_once_approved(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    blocked = await client.post(
        "/community/v1/moderation/blocklist", json={"term": "knockoff"}, headers=brand.headers
    )
    assert blocked.status_code == 201, blocked.text
    mine = await post(client, member)
    held = await comment(client, other_member, mine["id"], "Where is the knockoff?")
    assert held["status"] == "held"
    await replay(session, REPUTATION_CONSUMER)
    assert await standing(session, other_member) == (0, 0)

    decided = await client.post(
        "/community/v1/moderation/decisions",
        json={
            "target_kind": "comment",
            "target_id": held["id"],
            "action": "approve",
            "reason": "fine in context",
        },
        headers=brand.headers,
    )
    assert decided.status_code == 201, decided.text
    await replay(session, REPUTATION_CONSUMER)
    assert await standing(session, other_member) == (2, 0)


async def test_trust_level_follows_reputation_both_ways(
    client: httpx.AsyncClient, session: AsyncSession, member: MemberFixture
) -> None:
    first = await post(client, member, "First look")
    await post(client, member, "Second look")
    await replay(session, REPUTATION_CONSUMER)
    assert await standing(session, member) == (20, 1)
    me = await client.get("/community/v1/me/reputation", headers=member.headers)
    assert me.json() == {
        "member_id": str(member.id),
        "reputation": 20,
        "trust_level": 1,
        "trust_level_locked": False,
        "abilities": ["post_links"],
        "next_level": 2,
        "next_level_at": 100,
    }
    await delete_post(client, member, first["id"])
    await replay(session, REPUTATION_CONSUMER)
    assert await standing(session, member) == (10, 0)


async def test_staff_set_and_lock_a_trust_level_then_unlock_it(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
) -> None:
    url = f"/community/v1/members/{member.id}/trust-level"
    response = await client.put(url, json={"trust_level": 4}, headers=brand.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "member_id": str(member.id),
        "reputation": 0,
        "trust_level": 4,
        "trust_level_locked": True,
        "abilities": ["post_links", "create_groups", "host_experiences"],
        "next_level": None,
        "next_level_at": None,
    }
    # Locked: reputation moves, the level stays.
    mine = await post(client, member)
    await replay(session, REPUTATION_CONSUMER)
    await delete_post(client, member, mine["id"])
    await post(client, member, "Again")
    await replay(session, REPUTATION_CONSUMER)
    assert await standing(session, member) == (10, 4)

    unlocked = await client.delete(url, headers=brand.headers)
    assert unlocked.status_code == 200, unlocked.text
    assert (unlocked.json()["trust_level"], unlocked.json()["trust_level_locked"]) == (0, False)
    assert await standing(session, member) == (10, 0)


@pytest.mark.parametrize(
    "body", [{"trust_level": 5}, {"trust_level": -1}, {"trust_level": "2"}, {}]
)
async def test_bad_trust_levels_are_refused(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    body: dict[str, Any],
) -> None:
    response = await client.put(
        f"/community/v1/members/{member.id}/trust-level", json=body, headers=brand.headers
    )
    assert error(response) == (422, "ValidationError")
    assert await standing(session, member) == (0, 0)


async def test_reputation_badges_are_awarded_once(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
) -> None:
    rising = await create_badge(
        client,
        brand,
        name="Rising star",
        icon_url="https://cdn.example.com/star.png",
        reputation_threshold=20,
    )
    await create_badge(client, brand, name="Legend", reputation_threshold=1000)
    first = await post(client, member, "One")
    await replay(session, REPUTATION_CONSUMER)
    assert await session.scalar(select(func.count()).select_from(MemberBadge)) == 0
    await post(client, member, "Two")
    await replay(session, REPUTATION_CONSUMER)
    # Down below the threshold and up again: still one award.
    await delete_post(client, member, first["id"])
    await post(client, member, "Three")
    await replay(session, REPUTATION_CONSUMER)

    awarded = [data for type_, data in await community_events(session) if type_ == "badge.awarded"]
    assert awarded == [
        {
            "badge_id": rising["id"],
            "member_id": str(member.id),
            "name": "Rising star",
            "source": "reputation",
            "challenge_id": None,
        }
    ]
    mine = await client.get("/community/v1/me/badges", headers=member.headers)
    assert mine.status_code == 200, mine.text
    [held] = mine.json()["items"]
    assert held["badge"] == rising
    assert (held["source"], held["challenge_id"]) == ("reputation", None)
    public = await client.get(f"/community/v1/members/{member.id}/badges", headers=member.headers)
    assert public.json() == mine.json()
    staff_view = await client.get(
        f"/community/v1/members/{member.id}/badges", headers=brand.headers
    )
    assert staff_view.json() == mine.json()


async def test_badges_crud_and_bad_input(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    badge = await create_badge(client, brand)
    assert badge == {
        "id": badge["id"],
        "name": "Trendsetter",
        "description": "Started something",
        "icon_url": None,
        "reputation_threshold": None,
        "created_at": badge["created_at"],
    }
    taken = await client.post(
        "/community/v1/badges", json={"name": "Trendsetter"}, headers=brand.headers
    )
    assert error(taken) == (409, "BadgeNameTaken")
    for bad in (
        {"name": ""},
        {"name": "X", "icon_url": "ftp://cdn.example.com/x.png"},
        {"name": "X", "reputation_threshold": 0},
        {"name": "X", "reputation_threshold": "20"},
        {"name": "X", "colour": "gold"},
    ):
        response = await client.post("/community/v1/badges", json=bad, headers=brand.headers)
        assert error(response) == (422, "ValidationError"), bad
    listed = await client.get("/community/v1/badges", headers=brand.headers)
    assert [b["id"] for b in listed.json()["items"]] == [badge["id"]]

    changed = await client.patch(
        f"/community/v1/badges/{badge['id']}",
        json={"reputation_threshold": 50, "icon_url": "https://cdn.example.com/t.png"},
        headers=brand.headers,
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["reputation_threshold"], changed.json()["icon_url"]) == (
        50,
        "https://cdn.example.com/t.png",
    )
    null_name = await client.patch(
        f"/community/v1/badges/{badge['id']}", json={"name": None}, headers=brand.headers
    )
    assert error(null_name) == (422, "ValidationError")
    forbidden = await client.post(
        "/community/v1/badges", json={"name": "Mine"}, headers=member.headers
    )
    assert error(forbidden) == (403, "Forbidden")

    deleted = await client.delete(f"/community/v1/badges/{badge['id']}", headers=brand.headers)
    assert deleted.status_code == 204
    gone = await client.get(f"/community/v1/badges/{badge['id']}", headers=brand.headers)
    assert error(gone) == (404, "BadgeNotFound")


async def test_a_held_badge_cannot_be_deleted(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    badge = await create_badge(client, brand, reputation_threshold=10)
    await post(client, member)
    await replay(session, REPUTATION_CONSUMER)
    response = await client.delete(f"/community/v1/badges/{badge['id']}", headers=brand.headers)
    assert error(response) == (409, "BadgeInUse")


async def test_another_brand_sees_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
    member: MemberFixture,
    make_member: MakeMember,
) -> None:
    badge = await create_badge(client, brand, reputation_threshold=10)
    await post(client, member)
    await replay(session, REPUTATION_CONSUMER)
    stranger = await make_member("zed", other_brand)
    for path in (
        f"/community/v1/members/{member.id}/reputation",
        f"/community/v1/members/{member.id}/reputation/events",
        f"/community/v1/members/{member.id}/badges",
    ):
        assert error(await client.get(path, headers=other_brand.headers)) == (
            404,
            "MemberNotFound",
        ), path
    theirs = await client.get(f"/community/v1/members/{member.id}/badges", headers=stranger.headers)
    assert error(theirs) == (404, "MemberNotFound")
    for response in (
        await client.get(f"/community/v1/badges/{badge['id']}", headers=other_brand.headers),
        await client.patch(
            f"/community/v1/badges/{badge['id']}",
            json={"name": "Hijack"},
            headers=other_brand.headers,
        ),
        await client.delete(f"/community/v1/badges/{badge['id']}", headers=other_brand.headers),
    ):
        assert error(response) == (404, "BadgeNotFound")
    listed = await client.get("/community/v1/badges", headers=other_brand.headers)
    assert listed.json()["items"] == []
    locked = await client.put(
        f"/community/v1/members/{member.id}/trust-level",
        json={"trust_level": 0},
        headers=other_brand.headers,
    )
    assert error(locked) == (404, "MemberNotFound")
    assert await standing(session, member) == (10, 0)
