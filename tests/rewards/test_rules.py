"""Earning rules: CRUD and validation; sku and category multipliers with a documented precedence;
the simulator, which writes nothing and always agrees with what a purchase earns.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.kernel.ids import new_id
from services.rewards.models import ActivityAward
from tests.conftest import BrandFixture, MemberFixture
from tests.rewards.conftest import rewards_events
from tests.rewards.points_helpers import set_program
from tests.rewards.purchase_helpers import (
    buy,
    counts,
    line,
    make_campaign,
    make_rule,
    make_tier,
    purchase,
)

CATEGORY = {
    "kind": "category_multiplier",
    "name": "Skincare x2",
    "category": "skincare",
    "multiplier": 2,
}
SKU = {"kind": "sku_multiplier", "name": "Serum x3", "sku": "SERUM", "multiplier": 3}
ACTIVITY = {
    "kind": "activity",
    "name": "Review published",
    "activity": "review.published",
    "points": 50,
    "cap_per_day": 1,
    "cap_per_month": 5,
    "cap_lifetime": 20,
}


# --- CRUD -----------------------------------------------------------------------------------


async def test_rules_are_created_read_listed_changed_and_deleted(
    client: httpx.AsyncClient, brand: BrandFixture, program: Any
) -> None:
    category = await make_rule(client, brand, **CATEGORY)
    assert category["multiplier"] == 2
    assert (category["kind"], category["category"], category["active"]) == (
        "category_multiplier",
        "skincare",
        True,
    )
    sku = await make_rule(client, brand, **{**SKU, "multiplier": "1.25"})
    assert sku["multiplier"] == 1.25
    activity = await make_rule(client, brand, **ACTIVITY)
    assert (activity["points"], activity["cap_per_day"], activity["multiplier"]) == (50, 1, None)

    listed = await client.get("/rewards/v1/rules", headers=brand.headers)
    assert [r["id"] for r in listed.json()["items"]] == [category["id"], sku["id"], activity["id"]]
    only_activity = await client.get("/rewards/v1/rules?kind=activity", headers=brand.headers)
    assert [r["id"] for r in only_activity.json()["items"]] == [activity["id"]]
    paged = await client.get("/rewards/v1/rules?limit=2", headers=brand.headers)
    assert len(paged.json()["items"]) == 2
    assert paged.json()["next"] is not None

    changed = await client.patch(
        f"/rewards/v1/rules/{category['id']}",
        json={"multiplier": 2.5, "active": False},
        headers=brand.headers,
    )
    assert (changed.json()["multiplier"], changed.json()["active"]) == (2.5, False)
    cleared = await client.patch(
        f"/rewards/v1/rules/{activity['id']}", json={"cap_per_day": None}, headers=brand.headers
    )
    assert cleared.json()["cap_per_day"] is None
    got = await client.get(f"/rewards/v1/rules/{category['id']}", headers=brand.headers)
    assert got.json() == changed.json()

    deleted = await client.delete(f"/rewards/v1/rules/{sku['id']}", headers=brand.headers)
    assert deleted.status_code == 204
    gone = await client.get(f"/rewards/v1/rules/{sku['id']}", headers=brand.headers)
    assert (gone.status_code, gone.json()["error"]) == (404, "RuleNotFound")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({**CATEGORY, "multiplier": 0}, "ValidationError"),
        ({**CATEGORY, "multiplier": -2}, "ValidationError"),
        ({**CATEGORY, "multiplier": "two"}, "ValidationError"),
        ({**CATEGORY, "multiplier": None}, "ValidationError"),
        ({**CATEGORY, "multiplier": 1.2345}, "ValidationError"),
        ({**CATEGORY, "multiplier": 1000}, "ValidationError"),
        ({**SKU, "multiplier": "-0.5"}, "ValidationError"),
        ({**SKU, "sku": ""}, "ValidationError"),
        ({**SKU, "category": "skincare"}, "ValidationError"),
        ({**CATEGORY, "kind": "weekday_multiplier"}, "ValidationError"),
        ({**ACTIVITY, "points": 0}, "ValidationError"),
        ({**ACTIVITY, "points": -5}, "ValidationError"),
        ({**ACTIVITY, "points": 2.5}, "ValidationError"),
        ({**ACTIVITY, "cap_per_day": 0}, "ValidationError"),
        ({**ACTIVITY, "cap_lifetime": -1}, "ValidationError"),
        ({**ACTIVITY, "activity": "Review Published"}, "ValidationError"),
        ({**ACTIVITY, "activity": "review..published"}, "ValidationError"),
        ({**ACTIVITY, "multiplier": 2}, "ValidationError"),
        ({**ACTIVITY, "cap_per_day": 6}, "InconsistentCaps"),
        ({**ACTIVITY, "cap_per_month": 30}, "InconsistentCaps"),
    ],
)
async def test_bad_rules_are_refused_and_nothing_is_written(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    body: dict[str, Any],
    code: str,
) -> None:
    before = await counts(session)
    response = await client.post("/rewards/v1/rules", json=body, headers=brand.headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == code
    assert response.json()["detail"]
    assert await counts(session) == before


async def test_a_multiplier_error_names_the_field(
    client: httpx.AsyncClient, brand: BrandFixture
) -> None:
    response = await client.post(
        "/rewards/v1/rules", json={**CATEGORY, "multiplier": 0}, headers=brand.headers
    )
    detail = response.json()["detail"]
    assert [d["loc"] for d in detail] == [["body", "category_multiplier", "multiplier"]]
    assert "greater than 0" in detail[0]["msg"]


@pytest.mark.parametrize(
    ("rule", "change", "code"),
    [
        (CATEGORY, {"sku": "X"}, "FieldNotForRuleKind"),
        (CATEGORY, {"points": 5}, "FieldNotForRuleKind"),
        (ACTIVITY, {"multiplier": 2}, "FieldNotForRuleKind"),
        (CATEGORY, {"multiplier": 0}, "ValidationError"),
        (CATEGORY, {"multiplier": None}, "ValidationError"),
        (CATEGORY, {"kind": "sku_multiplier"}, "ValidationError"),
        (ACTIVITY, {"cap_per_day": 10}, "InconsistentCaps"),
        (ACTIVITY, {"points": 0}, "ValidationError"),
    ],
)
async def test_bad_rule_changes_are_refused_and_nothing_changes(
    client: httpx.AsyncClient,
    brand: BrandFixture,
    rule: dict[str, Any],
    change: dict[str, Any],
    code: str,
) -> None:
    created = await make_rule(client, brand, **rule)
    response = await client.patch(
        f"/rewards/v1/rules/{created['id']}", json=change, headers=brand.headers
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"] == code
    after = await client.get(f"/rewards/v1/rules/{created['id']}", headers=brand.headers)
    assert after.json() == created


async def test_rules_belong_to_their_brand(
    client: httpx.AsyncClient, brand: BrandFixture, other_brand: BrandFixture
) -> None:
    rule = await make_rule(client, brand, **CATEGORY)
    for method in ("get", "patch", "delete"):
        kwargs: dict[str, Any] = {"json": {"name": "x"}} if method == "patch" else {}
        response = await client.request(
            method, f"/rewards/v1/rules/{rule['id']}", headers=other_brand.headers, **kwargs
        )
        assert (response.status_code, response.json()["error"]) == (404, "RuleNotFound")
    listed = await client.get("/rewards/v1/rules", headers=other_brand.headers)
    assert listed.json()["items"] == []
    unknown = await client.get(f"/rewards/v1/rules/{uuid.uuid4()}", headers=brand.headers)
    assert unknown.status_code == 404


async def test_a_rule_that_awarded_points_cannot_be_deleted_only_deactivated(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
) -> None:
    rule = await make_rule(client, brand, **ACTIVITY)
    session.add(
        ActivityAward(
            id=new_id(),
            brand_id=brand.id,
            member_id=member.id,
            rule_id=uuid.UUID(rule["id"]),
            event_id=new_id(),
            points=50,
            awarded_at=utcnow(),
        )
    )
    await session.flush()
    refused = await client.delete(f"/rewards/v1/rules/{rule['id']}", headers=brand.headers)
    assert (refused.status_code, refused.json()["error"]) == (409, "RuleInUse")
    assert (
        await client.get(f"/rewards/v1/rules/{rule['id']}", headers=brand.headers)
    ).status_code == 200


async def test_rules_need_rewards_write_to_change_and_read_to_see(
    client: httpx.AsyncClient, brand: BrandFixture, member: MemberFixture
) -> None:
    created = await client.post(
        "/members/v1/api-keys",
        json={"name": "reader", "scopes": ["rewards:read"]},
        headers=brand.headers,
    )
    reader = {"Authorization": f"Bearer {created.json()['key']}"}
    assert (
        await client.post("/rewards/v1/rules", json=CATEGORY, headers=reader)
    ).status_code == 403
    assert (await client.get("/rewards/v1/rules", headers=reader)).status_code == 200
    assert (await client.get("/rewards/v1/rules", headers=member.headers)).status_code == 403


# --- Precedence -----------------------------------------------------------------------------


async def test_a_sku_rule_beats_a_category_rule_and_the_highest_multiplier_of_a_kind_wins(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    await make_rule(client, brand, **CATEGORY)  # skincare x2
    low = await make_rule(client, brand, **{**CATEGORY, "name": "Skincare x1.5", "multiplier": 1.5})
    serum = await make_rule(client, brand, **SKU)  # SERUM x3
    await make_rule(client, brand, **{**SKU, "name": "Serum x1.1", "multiplier": "1.1"})
    await make_rule(client, brand, **{**SKU, "name": "Off", "multiplier": 10, "active": False})
    lines = [
        line("SERUM", 2_000, "skincare"),  # sku rule x3: 60
        line("CREAM", 3_000, "skincare"),  # category x2 (beats x1.5): 60
        line("SOAP", 1_000, "body"),  # no rule: 10
    ]
    result = await buy(client, brand, purchase(member, "A-1", 6_000, lines=lines))
    assert result["points"] == 130
    hits = [entry["rule"] for entry in result["breakdown"]["lines"]]
    assert hits[0]["rule_id"] == serum["id"]
    assert "sku rules beat category rules" in hits[0]["why"]
    assert (hits[1]["name"], hits[1]["multiplier"]) == ("Skincare x2", 2)
    assert hits[1]["rule_id"] != low["id"]
    assert hits[2] is None
    assert result["breakdown"]["reason"] == (
        "Order A-1: 60.00 EUR \u00d7 1 pt/EUR \u00d7 3 (Serum x3 on 20.00 EUR)"
        " \u00d7 2 (Skincare x2 on 30.00 EUR) = 130 pts"
    )


async def test_equal_multipliers_of_a_kind_go_to_the_oldest_rule(
    client: httpx.AsyncClient, brand: BrandFixture, member: MemberFixture
) -> None:
    first = await make_rule(client, brand, **{**CATEGORY, "name": "First"})
    await make_rule(client, brand, **{**CATEGORY, "name": "Second"})
    result = await buy(
        client, brand, purchase(member, "A-1", 1_000, lines=[line("X", 1_000, "skincare")])
    )
    assert result["breakdown"]["lines"][0]["rule"]["rule_id"] == first["id"]


# --- Simulate -------------------------------------------------------------------------------


async def test_simulate_shows_what_would_fire_and_why_and_writes_nothing(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    await set_program(session, brand.id, points_per_unit=2, pending_days=30)
    await make_tier(client, brand, "Insider", 0, 0)
    gold = await make_tier(client, brand, "Gold", 1, 20_000, multiplier=1.5)
    await make_rule(client, brand, **SKU)
    await make_campaign(client, brand, name="Skincare week", multiplier=2, categories=["skincare"])
    await make_campaign(client, brand, name="Welcome", bonus_points=25)
    await make_campaign(
        client, brand, name="VIP", multiplier=4, audience="tiers", tier_ids=[gold["id"]]
    )
    lines = [line("SERUM", 4_000, "skincare"), line("SOAP", 6_000, "body")]
    body = {
        "external_id": member.external_id,
        "amount_minor": 10_000,
        "currency": "EUR",
        "lines": lines,
    }
    before = await counts(session)
    events_before = await rewards_events(session)
    response = await client.post("/rewards/v1/rules/simulate", json=body, headers=brand.headers)
    assert response.status_code == 200, response.text
    result = response.json()
    # Member without a tier: base 2 pt/EUR; serum 40 x 2 x 3 (sku) x 2 (skincare week) = 480;
    # soap 60 x 2 = 120; + 25 welcome bonus.
    assert result["points"] == 625
    assert result["points_bucket"] == "pending"
    assert result["breakdown"]["tier"] is None
    outcomes = {c["name"]: c for c in result["breakdown"]["campaigns"]}
    assert outcomes["Skincare week"]["applied"] is True
    assert outcomes["Skincare week"]["lines"] == [0]
    assert outcomes["Welcome"]["bonus_awarded"] == 25
    assert outcomes["VIP"]["applied"] is False
    assert outcomes["VIP"]["why"] == "Not applied: its audience is tiers the member is not in."
    assert result["window_spend_minor"] == 10_000
    assert result["tier_upgrade"]["name"] == "Insider"
    assert await counts(session) == before
    assert await rewards_events(session) == events_before

    # No member: the same, with no tier and no upgrade.
    anonymous = {k: v for k, v in body.items() if k != "external_id"}
    alone = await client.post("/rewards/v1/rules/simulate", json=anonymous, headers=brand.headers)
    assert alone.json()["points"] == 625
    assert (alone.json()["member_id"], alone.json()["tier_upgrade"]) == (None, None)
    vip = {c["name"]: c for c in alone.json()["breakdown"]["campaigns"]}["VIP"]
    assert vip["why"] == "Not applied: its audience is tiers, and no member was given."
    assert await counts(session) == before


async def test_simulate_and_the_purchase_agree_exactly(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    await make_tier(client, brand, "Insider", 0, 0, multiplier=1.25)
    await make_rule(client, brand, **CATEGORY)
    await make_campaign(client, brand, multiplier=1.5)
    await buy(client, brand, purchase(member, "A-0", 100))  # joins Insider
    occurred_at = utcnow().isoformat()
    lines = [line("CREAM", 3_333, "skincare"), line("SOAP", 1_667, "body", quantity=3)]
    body = {**purchase(member, "A-1", 5_000, lines=lines), "occurred_at": occurred_at}
    simulated = await client.post("/rewards/v1/rules/simulate", json=body, headers=brand.headers)
    recorded = await buy(client, brand, body)
    assert simulated.json()["breakdown"] == recorded["breakdown"]
    assert simulated.json()["points"] == recorded["points"]
    # 33.33 x 2 x 1.25 x 1.5 + 16.67 x 1.25 x 1.5 = 124.98750 + 31.25625 = 156.24375
    assert recorded["breakdown"]["exact_points"] == "156.24375"
    assert recorded["points"] == 156


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"currency": "ABC"}, 422, "UnknownCurrency"),
        ({"currency": "USD"}, 422, "CurrencyMismatch"),
        ({"amount_minor": 0}, 422, "ValidationError"),
        ({"lines": [line("A", 10)]}, 422, "LinesDoNotAddUp"),
        ({"external_id": "nobody"}, 404, "MemberNotFound"),
        ({"external_id": "crm-1", "member_id": str(uuid.uuid4())}, 422, "ValidationError"),
    ],
)
async def test_simulate_refuses_what_a_purchase_would_refuse(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    change: dict[str, Any],
    status: int,
    code: str,
) -> None:
    before = await counts(session)
    body = {"amount_minor": 1_000, "currency": "EUR", **change}
    response = await client.post("/rewards/v1/rules/simulate", json=body, headers=brand.headers)
    assert response.status_code == status, response.text
    assert response.json()["error"] == code
    assert await counts(session) == before


async def test_simulate_activity_shows_which_rules_would_pay_within_caps_and_writes_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
) -> None:
    capped = await make_rule(client, brand, **ACTIVITY)  # 50 pts, 1 a day
    extra = await make_rule(
        client, brand, **{**ACTIVITY, "name": "Reviewer bonus", "points": 5, "cap_per_day": None}
    )
    await make_rule(client, brand, **{**ACTIVITY, "name": "Old", "active": False})
    birthday = await make_rule(
        client, brand, kind="activity", name="Birthday", activity="birthday", points=100
    )
    assert birthday["activity"] == "birthday"
    session.add(
        ActivityAward(
            id=new_id(),
            brand_id=brand.id,
            member_id=member.id,
            rule_id=uuid.UUID(capped["id"]),
            event_id=new_id(),
            points=50,
            awarded_at=utcnow(),
        )
    )
    await session.flush()
    before = await counts(session)
    body = {"activity": "review.published", "member_id": str(member.id)}
    response = await client.post(
        "/rewards/v1/rules/simulate-activity", json=body, headers=brand.headers
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert [r["rule_id"] for r in result["rules"]] == [capped["id"], extra["id"]]
    first, second = result["rules"]
    assert (first["would_award"], first["why"]) == (
        False,
        "Not awarded: cap_per_day 1 reached (1 so far).",
    )
    assert first["awards_so_far"] == {"day": 1, "month": 1, "lifetime": 1}
    assert (second["would_award"], second["why"]) == (True, "Awarded: 5 pts; within its caps.")
    assert result["points"] == 5
    anonymous = await client.post(
        "/rewards/v1/rules/simulate-activity",
        json={"activity": "review.published"},
        headers=brand.headers,
    )
    assert anonymous.json()["points"] == 55
    nothing = await client.post(
        "/rewards/v1/rules/simulate-activity",
        json={"activity": "post.approved"},
        headers=brand.headers,
    )
    assert (nothing.json()["rules"], nothing.json()["points"]) == ([], 0)
    bad = await client.post(
        "/rewards/v1/rules/simulate-activity",
        json={"activity": "Not An Event"},
        headers=brand.headers,
    )
    assert (bad.status_code, bad.json()["error"]) == (422, "ValidationError")
    assert await counts(session) == before
