"""`prompt.published` and `prompt.deleted`: staff writing, changing and deleting prompts is told
in the same transaction (the whole prompt as it is after the change); a refused change tells
nothing."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.models import OUTBOX
from services.kernel.clock import utcnow
from tests.community.engagement_helpers import error
from tests.conftest import BrandFixture, MemberFixture

PROMPTS = "/community/v1/prompts"


async def prompt_events(session: AsyncSession) -> list[dict[str, Any]]:
    """The envelopes of the prompts' staff events written so far, oldest first."""
    table = OUTBOX.table
    rows = await session.execute(
        select(table.c.payload)
        .where(table.c.type.in_(["prompt.published", "prompt.deleted"]))
        .order_by(table.c.id)
    )
    return [payload for (payload,) in rows]


async def test_writing_and_changing_a_prompt_publishes_it_whole(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture
) -> None:
    starts = utcnow() + timedelta(hours=1)
    created = await client.post(
        PROMPTS,
        json={
            "title": "Show us your summer look",
            "body": "Sun's out",
            "tags": ["Summer", "looks"],
            "starts_at": starts.isoformat(),
            "points": 50,
        },
        headers=brand.headers,
    )
    assert created.status_code == 201, created.text
    prompt = created.json()
    gold = uuid.uuid4()
    ends = starts + timedelta(days=7)
    changed = await client.patch(
        f"{PROMPTS}/{prompt['id']}",
        json={"ends_at": ends.isoformat(), "audience": "tiers", "audience_tier_ids": [str(gold)]},
        headers=brand.headers,
    )
    assert changed.status_code == 200, changed.text

    first, second = await prompt_events(session)
    assert (first["type"], first["version"], first["brand_id"], first["subject_id"]) == (
        "prompt.published",
        1,
        str(brand.id),
        None,
    )
    assert datetime.fromisoformat(first["occurred_at"]) == datetime.fromisoformat(
        prompt["created_at"]
    )
    assert first["data"] == {
        "prompt_id": prompt["id"],
        "title": "Show us your summer look",
        "body": "Sun's out",
        "tags": prompt["tags"],
        "starts_at": first["data"]["starts_at"],
        "ends_at": None,
        "audience": "all",
        "audience_tier_ids": [],
    }
    assert datetime.fromisoformat(first["data"]["starts_at"]) == starts
    assert {
        k: second["data"][k] for k in ("prompt_id", "title", "audience", "audience_tier_ids")
    } == {
        "prompt_id": prompt["id"],
        "title": "Show us your summer look",
        "audience": "tiers",
        "audience_tier_ids": [str(gold)],
    }
    assert datetime.fromisoformat(second["data"]["ends_at"]) == ends


async def test_deleting_tells_it_is_gone_and_refusals_tell_nothing(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    answered = (
        await client.post(PROMPTS, json={"title": "Answered"}, headers=brand.headers)
    ).json()
    unused = (await client.post(PROMPTS, json={"title": "Unused"}, headers=brand.headers)).json()
    reply = await client.post(
        f"{PROMPTS}/{answered['id']}/answers", json={"body": "Mine"}, headers=member.headers
    )
    assert reply.status_code == 201, reply.text
    before = await prompt_events(session)

    kept = await client.delete(f"{PROMPTS}/{answered['id']}", headers=brand.headers)
    assert error(kept) == (409, "PromptHasAnswers")
    bad_window = await client.patch(
        f"{PROMPTS}/{unused['id']}",
        json={"ends_at": (utcnow() - timedelta(days=1)).isoformat()},
        headers=brand.headers,
    )
    assert error(bad_window) == (422, "ValidationError")
    bad_audience = await client.patch(
        f"{PROMPTS}/{unused['id']}", json={"audience": "groups"}, headers=brand.headers
    )
    assert bad_audience.status_code == 422
    refused = await client.post(PROMPTS, json={"body": "no title"}, headers=brand.headers)
    assert refused.status_code == 422
    assert await prompt_events(session) == before

    deleted = await client.delete(f"{PROMPTS}/{unused['id']}", headers=brand.headers)
    assert deleted.status_code == 204
    events = await prompt_events(session)
    assert [(e["type"], e["data"]["prompt_id"]) for e in events] == [
        ("prompt.published", answered["id"]),
        ("prompt.published", unused["id"]),
        ("prompt.deleted", unused["id"]),
    ]
    assert events[2]["data"] == {"prompt_id": unused["id"]}
