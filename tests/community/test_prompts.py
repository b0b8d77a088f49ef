"""Prompts: staff CRUD with audiences that fit their kind, the prompts open to a member now,
answering with a post (window, audience, `prompt.answered`), the answers list, brands apart."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.members.projection import apply_member_event
from services.community.milestones.repository import MilestoneRepository, Reached
from services.community.models import OUTBOX, Post, Prompt
from services.kernel.clock import utcnow
from services.rewards.events import TierChanged, TierChangedData
from tests.community.conftest import MakeMember, community_events
from tests.community.engagement_helpers import error, ids, post_count
from tests.conftest import BrandFixture, MemberFixture

ANSWER = {"body": "Linen and a red lip", "tags": ["summer"]}


def prompt_body(**fields: Any) -> dict[str, Any]:
    return {"title": "Show us your summer look", "body": "Sun's out", **fields}


def iso(delta: timedelta) -> str:
    return (utcnow() + delta).isoformat()


async def create_prompt(
    client: httpx.AsyncClient, brand: BrandFixture, **fields: Any
) -> dict[str, Any]:
    response = await client.post(
        "/community/v1/prompts", json=prompt_body(**fields), headers=brand.headers
    )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def answer(
    client: httpx.AsyncClient, member: MemberFixture, prompt_id: str, body: dict[str, Any] = ANSWER
) -> httpx.Response:
    return await client.post(
        f"/community/v1/prompts/{prompt_id}/answers", json=body, headers=member.headers
    )


async def prompt_count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Prompt)) or 0)


async def outbox_count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(OUTBOX.table)) or 0)


async def set_tier(session: AsyncSession, member: MemberFixture, tier_id: uuid.UUID) -> None:
    """As rewards' `tier.changed` reaches the community's members projection."""
    event = TierChanged(
        brand_id=member.brand_id,
        subject_id=member.id,
        data=TierChangedData(
            member_id=member.id,
            from_tier_id=None,
            from_tier=None,
            to_tier_id=tier_id,
            to_tier="Gold",
            direction="up",
            reason="purchase",
            window_spend_minor=50_000,
        ),
    )
    await apply_member_event(session, event)


async def make_group(client: httpx.AsyncClient, brand: BrandFixture, name: str) -> str:
    response = await client.post("/community/v1/groups", json={"name": name}, headers=brand.headers)
    assert response.status_code == 201, response.text
    group_id: str = response.json()["id"]
    return group_id


async def join_group(client: httpx.AsyncClient, member: MemberFixture, group_id: str) -> None:
    response = await client.post(f"/community/v1/groups/{group_id}/members", headers=member.headers)
    assert response.status_code == 201, response.text


# --- Staff ----------------------------------------------------------------------------------------


async def test_staff_create_read_list_change_and_delete_prompts(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture
) -> None:
    created = await create_prompt(
        client,
        brand,
        tags=["#Summer", " beach  days", "summer"],
        starts_at="2030-06-01T00:00:00+02:00",
        ends_at="2030-07-01T00:00:00Z",
        points=50,
    )
    assert created == {
        "id": created["id"],
        "title": "Show us your summer look",
        "body": "Sun's out",
        "tags": ["summer", "beach days"],
        "starts_at": "2030-05-31T22:00:00Z",
        "ends_at": "2030-07-01T00:00:00Z",
        "audience": "all",
        "audience_tier_ids": [],
        "audience_group_ids": [],
        "audience_milestone": None,
        "points": 50,
        "answer_count": 0,
        "created_at": created["created_at"],
    }
    fetched = await client.get(f"/community/v1/prompts/{created['id']}", headers=brand.headers)
    assert fetched.json() == created
    second = await create_prompt(client, brand, title="Favourite scent?")
    first_page = await client.get(
        "/community/v1/prompts", params={"limit": 1}, headers=brand.headers
    )
    assert ids(first_page) == [second["id"]]  # newest first
    rest = await client.get(
        "/community/v1/prompts", params={"after": first_page.json()["next"]}, headers=brand.headers
    )
    assert ids(rest) == [created["id"]]
    assert rest.json()["next"] is None

    tier = str(uuid.uuid4())
    changed = await client.patch(
        f"/community/v1/prompts/{created['id']}",
        json={"audience": "tiers", "audience_tier_ids": [tier, tier], "points": None},
        headers=brand.headers,
    )
    assert changed.status_code == 200, changed.text
    assert {k: changed.json()[k] for k in ("audience", "audience_tier_ids", "points")} == {
        "audience": "tiers",
        "audience_tier_ids": [tier],
        "points": None,
    }
    deleted = await client.delete(f"/community/v1/prompts/{second['id']}", headers=brand.headers)
    assert deleted.status_code == 204
    gone = await client.get(f"/community/v1/prompts/{second['id']}", headers=brand.headers)
    assert error(gone) == (404, "PromptNotFound")
    assert await prompt_count(session) == 1


@pytest.mark.parametrize(
    ("fields", "code", "location"),
    [
        ({"title": ""}, "ValidationError", ["body", "title"]),
        ({"points": 0}, "ValidationError", ["body", "points"]),
        ({"points": "50"}, "ValidationError", ["body", "points"]),
        ({"starts_at": "2030-06-01T00:00:00"}, "ValidationError", ["body", "starts_at"]),
        (
            {"starts_at": "2030-06-02T00:00:00Z", "ends_at": "2030-06-01T00:00:00Z"},
            "ValidationError",
            ["body"],
        ),
        ({"ends_at": "2000-01-01T00:00:00Z"}, "ValidationError", ["body", "ends_at"]),
        ({"audience": "everyone"}, "ValidationError", ["body", "audience"]),
        ({"audience": "tiers"}, "InvalidAudience", ["body", "audience_tier_ids"]),
        ({"audience": "groups"}, "InvalidAudience", ["body", "audience_group_ids"]),
        ({"audience": "milestone"}, "InvalidAudience", ["body", "audience_milestone"]),
        (
            {"audience": "milestone", "audience_milestone": "birthday"},
            "InvalidAudience",
            ["body", "audience_milestone"],
        ),
        (
            {"audience_tier_ids": [str(uuid.uuid4())]},
            "InvalidAudience",
            ["body", "audience_tier_ids"],
        ),
        (
            {"audience": "groups", "audience_group_ids": [str(uuid.uuid4())]},
            "InvalidAudience",
            ["body", "audience_group_ids"],
        ),
        ({"colour": "red"}, "ValidationError", ["body", "colour"]),
    ],
)
async def test_bad_prompts_are_refused_and_nothing_is_written(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    fields: dict[str, Any],
    code: str,
    location: list[Any],
) -> None:
    response = await client.post(
        "/community/v1/prompts", json=prompt_body(**fields), headers=brand.headers
    )
    assert error(response) == (422, code)
    assert [d["loc"] for d in response.json()["detail"]] == [location]
    assert await prompt_count(session) == 0


async def test_a_refused_change_leaves_the_prompt_as_it_was(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture
) -> None:
    created = await create_prompt(client, brand)
    for body in (
        {"audience": "groups"},
        {"audience_tier_ids": [str(uuid.uuid4())]},
        {"title": None},
        {"ends_at": iso(timedelta(days=-1)), "starts_at": iso(timedelta(days=1))},
    ):
        response = await client.patch(
            f"/community/v1/prompts/{created['id']}", json=body, headers=brand.headers
        )
        assert response.status_code == 422, (body, response.text)
    fetched = await client.get(f"/community/v1/prompts/{created['id']}", headers=brand.headers)
    assert fetched.json() == created


async def test_members_cannot_manage_prompts(
    client: httpx.AsyncClient, session: AsyncSession, member: MemberFixture
) -> None:
    response = await client.post(
        "/community/v1/prompts", json=prompt_body(), headers=member.headers
    )
    assert error(response) == (403, "Forbidden")
    assert await prompt_count(session) == 0


# --- Answering ----------------------------------------------------------------------------------


async def test_answering_writes_a_post_and_prompt_answered(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
) -> None:
    prompt = await create_prompt(client, brand, points=50)
    response = await answer(client, member, prompt["id"])
    assert response.status_code == 201, response.text
    body = response.json()
    assert {k: body[k] for k in ("prompt_id", "incentivised", "status", "body", "tags")} == {
        "prompt_id": prompt["id"],
        "incentivised": True,
        "status": "published",
        "body": "Linen and a red lip",
        "tags": ["summer"],
    }
    assert body["author"] == {"member_id": str(member.id), "display_name": "Ada"}
    events = await community_events(session)
    assert [type_ for type_, _ in events] == [
        "prompt.published",
        "post.created",
        "post.approved",
        "prompt.answered",
    ]
    assert events[3][1] == {
        "prompt_id": prompt["id"],
        "post_id": body["id"],
        "member_id": str(member.id),
        "status": "published",
        "points": 50,
    }
    assert events[1][1]["prompt_id"] == prompt["id"]
    assert events[1][1]["incentivised"] is True
    fetched = await client.get(f"/community/v1/prompts/{prompt['id']}", headers=brand.headers)
    assert fetched.json()["answer_count"] == 1
    listed = await client.get(
        f"/community/v1/prompts/{prompt['id']}/answers", headers=member.headers
    )
    assert listed.json() == {"items": [body], "next": None, "previous": None}


async def test_a_held_answer_reports_held_and_stays_out_of_the_answers(
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
    prompt = await create_prompt(client, brand)  # no points: not incentivised
    held = await answer(client, member, prompt["id"], {"body": "My knockoff palette"})
    assert held.status_code == 201, held.text
    assert (held.json()["status"], held.json()["incentivised"]) == ("held", False)
    published = await answer(client, other_member, prompt["id"], {"body": "Bronzer all day"})
    answered = [
        data for type_, data in await community_events(session) if type_ == "prompt.answered"
    ]
    assert answered == [
        {
            "prompt_id": prompt["id"],
            "post_id": held.json()["id"],
            "member_id": str(member.id),
            "status": "held",
            "points": None,
        },
        {
            "prompt_id": prompt["id"],
            "post_id": published.json()["id"],
            "member_id": str(other_member.id),
            "status": "published",
            "points": None,
        },
    ]
    for viewer in (member.headers, brand.headers):
        listed = await client.get(f"/community/v1/prompts/{prompt['id']}/answers", headers=viewer)
        assert ids(listed) == [published.json()["id"]]


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ({"starts_at": "2099-01-01T00:00:00Z"}, "This prompt opens at 2099-01-01T00:00:00+00:00."),
        (
            {"starts_at": "2020-01-01T00:00:00Z", "ends_at": "2020-02-01T00:00:00Z"},
            "This prompt closed at 2020-02-01T00:00:00+00:00.",
        ),
    ],
)
async def test_answering_outside_the_window_is_refused_and_writes_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    window: dict[str, str],
    message: str,
) -> None:
    prompt = await create_prompt(client, brand, **window)
    events_before = await outbox_count(session)
    response = await answer(client, member, prompt["id"])
    assert error(response) == (409, "PromptClosed")
    assert response.json()["detail"]["message"] == message
    assert await post_count(session) == 0
    assert await outbox_count(session) == events_before
    fetched = await client.get(f"/community/v1/prompts/{prompt['id']}", headers=brand.headers)
    assert fetched.json()["answer_count"] == 0


async def test_tier_group_and_milestone_audiences(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    ada, bea = member, other_member
    gold = uuid.uuid4()
    await set_tier(session, ada, gold)
    curly = await make_group(client, brand, "Curly hair")
    await join_group(client, ada, curly)
    await MilestoneRepository(session).record(
        [Reached(brand.id, ada.id, "anniversary:3", utcnow())]
    )
    for_all = await create_prompt(client, brand, title="All")
    for_gold = await create_prompt(
        client, brand, title="Gold", audience="tiers", audience_tier_ids=[str(gold)]
    )
    for_curly = await create_prompt(
        client, brand, title="Curly", audience="groups", audience_group_ids=[curly]
    )
    for_three_years = await create_prompt(
        client, brand, title="Three years", audience="milestone", audience_milestone="anniversary:3"
    )
    await create_prompt(client, brand, title="Later", starts_at="2099-01-01T00:00:00Z")

    mine = await client.get("/community/v1/me/prompts", headers=ada.headers)
    assert ids(mine) == [for_three_years["id"], for_curly["id"], for_gold["id"], for_all["id"]]
    assert mine.json()["items"][-1] == {
        "id": for_all["id"],
        "title": "All",
        "body": "Sun's out",
        "tags": [],
        "starts_at": for_all["starts_at"],
        "ends_at": None,
        "points": None,
        "answer_count": 0,
    }
    theirs = await client.get("/community/v1/me/prompts", headers=bea.headers)
    assert ids(theirs) == [for_all["id"]]
    paged = await client.get("/community/v1/me/prompts", params={"limit": 3}, headers=ada.headers)
    rest = await client.get(
        "/community/v1/me/prompts", params={"after": paged.json()["next"]}, headers=ada.headers
    )
    assert ids(paged) + ids(rest) == ids(mine)

    for prompt in (for_gold, for_curly, for_three_years):
        refused = await answer(client, bea, prompt["id"])
        assert error(refused) == (403, "NotInAudience")
    assert await post_count(session) == 0
    written = [t for t, _ in await community_events(session) if t != "prompt.published"]
    assert written == ["group.joined"]
    for prompt in (for_gold, for_curly, for_three_years, for_all):
        assert (await answer(client, ada, prompt["id"])).status_code == 201
    assert (await answer(client, bea, for_all["id"])).status_code == 201
    assert await post_count(session) == 5


async def test_a_member_removed_from_the_group_is_no_longer_in_the_audience(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
) -> None:
    curly = await make_group(client, brand, "Curly hair")
    await join_group(client, member, curly)
    prompt = await create_prompt(client, brand, audience="groups", audience_group_ids=[curly])
    removed = await client.delete(
        f"/community/v1/groups/{curly}/members/{member.id}", headers=brand.headers
    )
    assert removed.status_code == 200, removed.text
    assert error(await answer(client, member, prompt["id"])) == (403, "NotInAudience")
    mine = await client.get("/community/v1/me/prompts", headers=member.headers)
    assert ids(mine) == []


async def test_a_prompt_with_answers_cannot_be_deleted(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    prompt = await create_prompt(client, brand)
    assert (await answer(client, member, prompt["id"])).status_code == 201
    response = await client.delete(f"/community/v1/prompts/{prompt['id']}", headers=brand.headers)
    assert error(response) == (409, "PromptHasAnswers")
    assert await prompt_count(session) == 1


async def test_bad_answers_are_refused_and_write_nothing(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    prompt = await create_prompt(client, brand)
    for body, expected in (
        ({"body": ""}, (422, "ValidationError")),
        ({"body": "x", "media": [{"url": "ftp://x.example/a.png"}]}, (422, "ValidationError")),
    ):
        assert error(await answer(client, member, prompt["id"], body)) == expected
    unknown = await answer(client, member, str(uuid.uuid4()))
    assert error(unknown) == (404, "PromptNotFound")
    assert await post_count(session) == 0
    assert [t for t, _ in await community_events(session)] == ["prompt.published"]


async def test_another_brand_sees_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
    member: MemberFixture,
    make_member: MakeMember,
) -> None:
    prompt = await create_prompt(client, brand)
    assert (await answer(client, member, prompt["id"])).status_code == 201
    stranger = await make_member("zed", other_brand)
    url = f"/community/v1/prompts/{prompt['id']}"
    for response in (
        await client.get(url, headers=other_brand.headers),
        await client.patch(url, json={"title": "Mine"}, headers=other_brand.headers),
        await client.delete(url, headers=other_brand.headers),
        await client.get(f"{url}/answers", headers=other_brand.headers),
        await client.get(f"{url}/answers", headers=stranger.headers),
        await answer(client, stranger, prompt["id"]),
    ):
        assert error(response) == (404, "PromptNotFound")
    assert ids(await client.get("/community/v1/prompts", headers=other_brand.headers)) == []
    assert ids(await client.get("/community/v1/me/prompts", headers=stranger.headers)) == []
    assert await session.scalar(select(func.count()).select_from(Post)) == 1
