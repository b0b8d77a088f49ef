"""Campaigns: a window, an audience, a multiplier and/or bonus points; validation with nothing
written; which purchases they apply to; no stacking of multipliers; bonuses add up.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from tests.conftest import BrandFixture, MemberFixture
from tests.rewards.conftest import MakeMember
from tests.rewards.purchase_helpers import (
    balance,
    buy,
    counts,
    line,
    make_campaign,
    make_tier,
    purchase,
)


def _window(start_days: float, end_days: float) -> dict[str, str]:
    now = utcnow()
    return {
        "starts_at": (now + timedelta(days=start_days)).isoformat(),
        "ends_at": (now + timedelta(days=end_days)).isoformat(),
    }


async def test_campaigns_are_created_read_listed_changed_and_deleted(
    client: httpx.AsyncClient, brand: BrandFixture, program: Any
) -> None:
    live = await make_campaign(client, brand, multiplier=2, categories=["skincare", "skincare"])
    assert (live["audience"], live["categories"], live["multiplier"]) == ("all", ["skincare"], 2)
    later = await make_campaign(client, brand, name="Later", bonus_points=100, **_window(10, 20))
    listed = await client.get("/rewards/v1/campaigns", headers=brand.headers)
    assert [c["id"] for c in listed.json()["items"]] == [live["id"], later["id"]]
    now = utcnow().isoformat().replace("+", "%2B")
    current = await client.get(f"/rewards/v1/campaigns?live_at={now}", headers=brand.headers)
    assert [c["id"] for c in current.json()["items"]] == [live["id"]]

    changed = await client.patch(
        f"/rewards/v1/campaigns/{later['id']}",
        json={"multiplier": 1.5, "bonus_points": None, "name": "Later, x1.5"},
        headers=brand.headers,
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["multiplier"], changed.json()["bonus_points"]) == (1.5, None)
    got = await client.get(f"/rewards/v1/campaigns/{later['id']}", headers=brand.headers)
    assert got.json() == changed.json()
    deleted = await client.delete(f"/rewards/v1/campaigns/{later['id']}", headers=brand.headers)
    assert deleted.status_code == 204
    gone = await client.get(f"/rewards/v1/campaigns/{later['id']}", headers=brand.headers)
    assert (gone.status_code, gone.json()["error"]) == (404, "CampaignNotFound")


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({**_window(5, 1), "multiplier": 2}, "InvalidWindow"),
        ({**_window(1, 1), "multiplier": 2}, "InvalidWindow"),
        ({}, "NoMultiplierOrBonus"),
        ({"multiplier": 0}, "ValidationError"),
        ({"multiplier": -1.5}, "ValidationError"),
        ({"multiplier": "double"}, "ValidationError"),
        ({"bonus_points": 0}, "ValidationError"),
        ({"bonus_points": 10.5}, "ValidationError"),
        ({"multiplier": 2, "audience": "tiers"}, "InvalidAudience"),
        ({"multiplier": 2, "audience": "tiers", "tier_ids": [str(uuid.uuid4())]}, "UnknownTier"),
        ({"multiplier": 2, "audience": "segment"}, "InvalidAudience"),
        ({"multiplier": 2, "tier_ids": [str(uuid.uuid4())]}, "InvalidAudience"),
        ({"multiplier": 2, "audience": "everyone"}, "ValidationError"),
        ({"multiplier": 2, "starts_at": "2026-01-01T00:00:00"}, "ValidationError"),
        ({"multiplier": 2, "categories": [""]}, "ValidationError"),
        ({"multiplier": 2, "colour": "red"}, "ValidationError"),
    ],
)
async def test_bad_campaigns_are_refused_and_nothing_is_written(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    fields: dict[str, Any],
    code: str,
) -> None:
    before = await counts(session)
    body = {"name": "Bad", **_window(-1, 6), **fields}
    response = await client.post("/rewards/v1/campaigns", json=body, headers=brand.headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == code
    assert response.json()["detail"]
    assert await counts(session) == before


async def test_the_window_error_says_what_to_fix(
    client: httpx.AsyncClient, brand: BrandFixture
) -> None:
    body = {
        "name": "Backwards",
        "starts_at": "2026-05-10T00:00:00Z",
        "ends_at": "2026-05-01T00:00:00Z",
        "multiplier": 2,
    }
    response = await client.post("/rewards/v1/campaigns", json=body, headers=brand.headers)
    assert response.json() == {
        "error": "InvalidWindow",
        "detail": (
            "The campaign ends (2026-05-01T00:00:00+00:00) before or when it starts "
            "(2026-05-10T00:00:00+00:00): ends_at must be after starts_at."
        ),
    }


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"ends_at": "2000-01-01T00:00:00Z"}, "InvalidWindow"),
        ({"multiplier": None}, "NoMultiplierOrBonus"),
        ({"audience": "segment"}, "InvalidAudience"),
        ({"name": None}, "ValidationError"),
        ({"multiplier": 0}, "ValidationError"),
    ],
)
async def test_bad_campaign_changes_are_refused_and_nothing_changes(
    client: httpx.AsyncClient, brand: BrandFixture, change: dict[str, Any], code: str
) -> None:
    campaign = await make_campaign(client, brand, multiplier=2)
    response = await client.patch(
        f"/rewards/v1/campaigns/{campaign['id']}", json=change, headers=brand.headers
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"] == code
    after = await client.get(f"/rewards/v1/campaigns/{campaign['id']}", headers=brand.headers)
    assert after.json() == campaign


async def test_campaigns_belong_to_their_brand(
    client: httpx.AsyncClient, brand: BrandFixture, other_brand: BrandFixture
) -> None:
    campaign = await make_campaign(client, brand, multiplier=2)
    response = await client.get(
        f"/rewards/v1/campaigns/{campaign['id']}", headers=other_brand.headers
    )
    assert (response.status_code, response.json()["error"]) == (404, "CampaignNotFound")
    removed = await client.delete(
        f"/rewards/v1/campaigns/{campaign['id']}", headers=other_brand.headers
    )
    assert removed.status_code == 404


# --- Applying -------------------------------------------------------------------------------


async def test_a_campaign_applies_only_inside_its_window(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    now = utcnow()
    start, end = now - timedelta(days=2), now - timedelta(days=1)
    await make_campaign(
        client, brand, multiplier=2, starts_at=start.isoformat(), ends_at=end.isoformat()
    )
    at_start = await buy(client, brand, purchase(member, "A-1", 1_000, occurred_at=start))
    just_before = start - timedelta(microseconds=1)
    before = await buy(client, brand, purchase(member, "A-2", 1_000, occurred_at=just_before))
    at_end = await buy(client, brand, purchase(member, "A-3", 1_000, occurred_at=end))
    assert (at_start["points"], before["points"], at_end["points"]) == (20, 10, 10)


async def test_an_inactive_campaign_does_not_apply(
    client: httpx.AsyncClient, brand: BrandFixture, member: MemberFixture
) -> None:
    await make_campaign(client, brand, multiplier=2, active=False)
    assert (await buy(client, brand, purchase(member, "A-1", 1_000)))["points"] == 10


async def test_campaign_multipliers_do_not_stack_the_highest_wins_and_bonuses_add_up(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    await make_campaign(client, brand, name="Double", multiplier=2)
    await make_campaign(
        client, brand, name="Skincare triple", multiplier=3, categories=["skincare"]
    )
    await make_campaign(client, brand, name="Welcome", bonus_points=50)
    await make_campaign(client, brand, name="Spring", multiplier=1.5, bonus_points=10)
    lines = [line("CREAM", 2_000, "skincare"), line("SOAP", 3_000, "body")]
    result = await buy(client, brand, purchase(member, "A-1", 5_000, lines=lines))
    # cream: 20 x 3 (the highest covering it); soap: 30 x 2; plus 50 + 10 in bonuses.
    assert result["points"] == 60 + 60 + 60
    outcomes = {c["name"]: c for c in result["breakdown"]["campaigns"]}
    assert outcomes["Double"]["lines"] == [1]
    assert outcomes["Skincare triple"]["lines"] == [0]
    assert outcomes["Spring"]["lines"] == []
    assert outcomes["Spring"]["applied"] is True  # its bonus
    assert "a higher campaign multiplier won on 2 line(s)" in outcomes["Spring"]["why"]
    assert result["breakdown"]["bonus_points"] == 60
    assert result["breakdown"]["reason"] == (
        "Order A-1: 50.00 EUR \u00d7 1 pt/EUR \u00d7 2 (Double on 30.00 EUR)"
        " \u00d7 3 (Skincare triple on 20.00 EUR) + 50 (Welcome) + 10 (Spring) = 180 pts"
    )
    assert await balance(session, member.id) == (180, 0)


async def test_a_category_campaign_needs_a_line_in_its_categories(
    client: httpx.AsyncClient, brand: BrandFixture, member: MemberFixture
) -> None:
    await make_campaign(client, brand, name="Skincare", bonus_points=40, categories=["skincare"])
    no_lines = await buy(client, brand, purchase(member, "A-1", 1_000))
    assert no_lines["points"] == 10
    outcome = no_lines["breakdown"]["campaigns"][0]
    assert outcome["why"] == "Not applied: its categories filter matches no line of this purchase."
    with_line = await buy(
        client, brand, purchase(member, "A-2", 1_000, lines=[line("C", 1_000, "skincare")])
    )
    assert with_line["points"] == 50


async def test_tier_audiences_reach_only_those_tiers_and_segments_no_one_yet(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    make_member: MakeMember,
) -> None:
    await make_tier(client, brand, "Insider", 0, 0)
    vip = await make_tier(client, brand, "VIB", 1, 10_000)
    await make_campaign(
        client, brand, name="VIB double", multiplier=2, audience="tiers", tier_ids=[vip["id"]]
    )
    segment = await make_campaign(
        client,
        brand,
        name="Lapsed",
        bonus_points=500,
        audience="segment",
        segment_id=str(uuid.uuid4()),
    )
    assert segment["segment_id"] is not None  # stored for the marketing service
    # The first purchase lifts the member to VIB, but earns at the tier they held: none.
    first = await buy(client, brand, purchase(member, "A-1", 10_000))
    assert first["points"] == 100
    second = await buy(client, brand, purchase(member, "A-2", 1_000))
    assert second["points"] == 20
    outcomes = {c["name"]: c for c in second["breakdown"]["campaigns"]}
    assert outcomes["Lapsed"]["why"] == (
        "Not applied: segment audiences match no one until the marketing service exists."
    )
    newcomer = await make_member("crm-2")
    third = await buy(client, brand, purchase(newcomer, "A-3", 1_000))
    assert third["points"] == 10
