"""Bad segment rules: each a 4xx with its code and the path of the node at fault, and nothing
saved or changed."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.marketing.models import Segment
from tests.conftest import BrandFixture
from tests.marketing.segments_world import create, preview
from tests.recommender.serving_fixtures import staff_headers

TIER = {"field": "tier", "op": "eq", "value": "Gold"}


def _rule(leaf: dict[str, Any]) -> dict[str, Any]:
    """`leaf` at rule.and[2].or[0]."""
    return {"and": [TIER, {"field": "locale", "op": "eq", "value": "fr-FR"}, {"or": [leaf, TIER]}]}


def _deep(levels: int) -> dict[str, Any]:
    rule: dict[str, Any] = TIER
    for _ in range(levels - 1):
        rule = {"not": rule}
    return rule


def _conditions(n: int) -> dict[str, Any]:
    return {"or": [{"field": "points_available", "op": "eq", "value": i} for i in range(n)]}


BAD: list[tuple[Any, str, str]] = [
    # unknown field, wrong type, operator that does not fit
    (_rule({"field": "nope", "op": "eq", "value": 1}), "UnknownField", "rule.and[2].or[0].field"),
    (
        _rule({"field": "points_available", "op": "gt", "value": "ten"}),
        "WrongType",
        "rule.and[2].or[0].value",
    ),
    (
        _rule({"field": "interests", "op": "gt", "value": "x"}),
        "OperatorNotAllowed",
        "rule.and[2].or[0].op",
    ),
    ({"field": "points_available", "op": "eq", "value": 1.5}, "WrongType", "rule.value"),
    ({"field": "points_available", "op": "eq", "value": True}, "WrongType", "rule.value"),
    ({"field": "churn_probability", "op": "lt", "value": "high"}, "WrongType", "rule.value"),
    ({"field": "locale", "op": "eq", "value": 3}, "WrongType", "rule.value"),
    ({"field": "tier_id", "op": "eq", "value": "gold"}, "WrongType", "rule.value"),
    (
        {"field": "tier_id", "op": "in", "value": [str(uuid.uuid4()), "x"]},
        "WrongType",
        "rule.value[1]",
    ),
    ({"field": "joined_at", "op": "lt", "value": "2025-01-01T00:00:00"}, "WrongType", "rule.value"),
    ({"field": "joined_at", "op": "lt", "value": "yesterday"}, "WrongType", "rule.value"),
    ({"field": "joined_at", "op": "lt", "value": {"days_ago": -1}}, "WrongType", "rule.value"),
    ({"field": "joined_at", "op": "lt", "value": {"weeks_ago": 1}}, "WrongType", "rule.value"),
    ({"field": "joined_at", "op": "eq", "value": {"days_ago": 1}}, "OperatorNotAllowed", "rule.op"),
    ({"field": "interests", "op": "contains", "value": 1}, "WrongType", "rule.value"),
    ({"field": "interests", "op": "contains_any", "value": "hair"}, "WrongType", "rule.value"),
    ({"field": "interests", "op": "contains_all", "value": []}, "WrongType", "rule.value"),
    ({"field": "points_available", "op": "between", "value": [1, 2, 3]}, "WrongType", "rule.value"),
    ({"field": "points_available", "op": "between", "value": [5, 1]}, "WrongType", "rule.value"),
    ({"field": "points_available", "op": "is_null", "value": 1}, "WrongType", "rule.value"),
    ({"field": "points_available", "op": "like", "value": 1}, "OperatorNotAllowed", "rule.op"),
    ({"field": "locale", "op": "lt", "value": "m"}, "OperatorNotAllowed", "rule.op"),
    ({"field": "traits", "key": "vip", "op": "gt", "value": True}, "WrongType", "rule.value"),
    ({"field": "traits", "key": "age", "op": "eq", "value": {"a": 1}}, "WrongType", "rule.value"),
    # the shape of a node
    ([TIER], "InvalidRule", "rule"),
    ({"and": [TIER], "or": [TIER]}, "InvalidRule", "rule"),
    ({"nand": [TIER]}, "InvalidRule", "rule"),
    ({"and": []}, "InvalidRule", "rule.and"),
    ({"not": [TIER]}, "InvalidRule", "rule.not"),
    ({**TIER, "extra": 1}, "InvalidRule", "rule.extra"),
    ({"field": "traits", "op": "eq", "value": "dry"}, "InvalidRule", "rule.key"),
    ({**TIER, "key": "x"}, "InvalidRule", "rule.key"),
    ({"field": 7, "op": "eq", "value": 1}, "InvalidRule", "rule.field"),
    # event conditions
    ({"event": "purchased"}, "UnknownEvent", "rule.event"),
    ({"event": "purchase", "within_days": 0}, "WrongType", "rule.within_days"),
    (
        {"event": "purchase", "count": {"op": "between", "value": 2}},
        "OperatorNotAllowed",
        "rule.count.op",
    ),
    ({"event": "purchase", "count": {"op": "gte", "value": -1}}, "WrongType", "rule.count.value"),
    # beyond 64 bits: refused by the rule's check, not failing before it
    ({"event": "purchase", "count": {"op": "eq", "value": 2**70}}, "WrongType", "rule.count.value"),
    ({"field": "points_available", "op": "eq", "value": 2**64}, "WrongType", "rule.value"),
    (
        {"event": "purchase", "where": {"amount_minor": {"op": "gt", "value": -(2**70)}}},
        "WrongType",
        "rule.where.amount_minor.value",
    ),
    ({"event": "purchase", "count": {"op": "gte", "min": 1}}, "InvalidRule", "rule.count.min"),
    ({"event": "purchase", "where": {"category": 3}}, "WrongType", "rule.where.category"),
    ({"event": "purchase", "where": {"sku": "x"}}, "InvalidRule", "rule.where.sku"),
    (
        {"event": "redemption", "where": {"amount_minor": {"op": "gt", "value": 1}}},
        "InvalidRule",
        "rule.where.amount_minor",
    ),
    # segments and affinity
    ({"segment": "not-an-id"}, "WrongType", "rule.segment"),
    ({"segment": str(uuid.uuid4())}, "UnknownSegment", "rule.segment"),
    ({"affinity": {"item": "banana", "top_share": 0.2}}, "WrongType", "rule.affinity.item"),
    ({"affinity": {"item": "perk:1", "top_share": 1.5}}, "WrongType", "rule.affinity.top_share"),
    ({"affinity": {"item": "perk:1", "top_share": 0}}, "WrongType", "rule.affinity.top_share"),
    # limits
    (_deep(11), "RuleTooDeep", "rule" + ".not" * 10),
    (_conditions(201), "RuleTooLarge", "rule"),
]


async def _saved(session: AsyncSession, brand: BrandFixture) -> int:
    found = await session.scalar(
        select(func.count()).select_from(Segment).where(Segment.brand_id == brand.id)
    )
    return int(found or 0)


def _error(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["error"], body["detail"]["path"]


@pytest.mark.parametrize(("rule", "code", "path"), BAD)
async def test_a_bad_rule_is_refused_with_its_path_and_nothing_is_saved(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    rule: Any,
    code: str,
    path: str,
) -> None:
    status = 403 if code.endswith("NotReadable") else 422
    created = await client.post(
        "/marketing/v1/segments",
        json={"name": "bad", "rule": rule, "purpose": "analytics", "refresh": "manual"},
        headers=brand.headers,
    )
    assert _error(created) == (status, code, path), created.text
    assert created.json()["detail"]["message"]
    assert await _saved(session, brand) == 0
    previewed = await preview(client, brand.headers, rule)
    assert _error(previewed) == (status, code, path)


async def test_limits_are_at_ten_levels_and_two_hundred_conditions(
    client: httpx.AsyncClient, brand: BrandFixture
) -> None:
    assert (await preview(client, brand.headers, _deep(10))).status_code == 200
    assert (await preview(client, brand.headers, _conditions(200))).status_code == 200


async def test_conditions_of_named_segments_count_towards_the_limit(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture
) -> None:
    big = await create(client, brand, _conditions(150), name="big")
    user = await create(client, brand, {"and": [{"segment": big["id"]}, _conditions(40)]})
    over = {"and": [{"segment": big["id"]}, _conditions(51)]}
    refused = await preview(client, brand.headers, over)
    assert _error(refused) == (422, "RuleTooLarge", "rule")
    assert "201" in refused.json()["detail"]["message"]
    # Growing the named segment would push the one naming it over: refused, unchanged.
    grown = await client.patch(
        f"/marketing/v1/segments/{big['id']}",
        json={"rule": _conditions(170)},
        headers=brand.headers,
    )
    assert _error(grown) == (422, "RuleTooLarge", "rule")
    assert user["id"] in grown.json()["detail"]["message"]
    kept = await client.get(f"/marketing/v1/segments/{big['id']}", headers=brand.headers)
    assert kept.json()["rule"] == big["rule"]
    assert await _saved(session, brand) == 2


async def test_segments_may_not_name_each_other_in_a_circle(
    client: httpx.AsyncClient, brand: BrandFixture
) -> None:
    a = await create(client, brand, TIER, name="a")
    b = await create(client, brand, {"segment": a["id"]}, name="b")
    c = await create(client, brand, {"and": [TIER, {"segment": b["id"]}]}, name="c")
    for rule, path in (
        ({"segment": c["id"]}, "rule.segment"),  # a -> c -> b -> a
        ({"or": [TIER, {"not": {"segment": a["id"]}}]}, "rule.or[1].not.segment"),  # itself
    ):
        refused = await client.patch(
            f"/marketing/v1/segments/{a['id']}", json={"rule": rule}, headers=brand.headers
        )
        assert _error(refused) == (422, "SegmentCycle", path)
    kept = await client.get(f"/marketing/v1/segments/{a['id']}", headers=brand.headers)
    assert (kept.json()["rule"], kept.json()["uses"]) == (a["rule"], [])


async def test_an_update_is_checked_as_a_create_is_and_changes_nothing_when_refused(
    client: httpx.AsyncClient, brand: BrandFixture
) -> None:
    made = await create(client, brand, TIER, name="gold")
    url = f"/marketing/v1/segments/{made['id']}"
    bad = await client.patch(
        url,
        json={"name": "renamed", "rule": _rule({"field": "nope", "op": "eq", "value": 1})},
        headers=brand.headers,
    )
    assert _error(bad) == (422, "UnknownField", "rule.and[2].or[0].field")
    assert (await client.get(url, headers=brand.headers)).json() == made
    renamed = await client.patch(
        url, json={"name": "Gold members", "refresh": "hourly"}, headers=brand.headers
    )
    assert renamed.status_code == 200
    assert (renamed.json()["name"], renamed.json()["refresh"], renamed.json()["rule"]) == (
        "Gold members",
        "hourly",
        TIER,
    )
    missing = await client.patch(
        f"/marketing/v1/segments/{uuid.uuid4()}", json={"name": "x"}, headers=brand.headers
    )
    assert (missing.status_code, missing.json()["error"]) == (404, "SegmentNotFound")


async def test_a_segment_another_names_cannot_be_deleted(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture
) -> None:
    named = await create(client, brand, TIER, name="named")
    user = await create(client, brand, {"not": {"segment": named["id"]}}, name="user")
    refused = await client.delete(f"/marketing/v1/segments/{named['id']}", headers=brand.headers)
    assert (refused.status_code, refused.json()["error"]) == (409, "SegmentInUse")
    assert user["id"] in refused.json()["detail"]
    assert (
        await client.get(f"/marketing/v1/segments/{named['id']}", headers=brand.headers)
    ).status_code == 200

    assert (
        await client.delete(f"/marketing/v1/segments/{user['id']}", headers=brand.headers)
    ).status_code == 204
    assert (
        await client.delete(f"/marketing/v1/segments/{named['id']}", headers=brand.headers)
    ).status_code == 204
    gone = await client.get(f"/marketing/v1/segments/{named['id']}", headers=brand.headers)
    assert (gone.status_code, gone.json()["error"]) == (404, "SegmentNotFound")
    assert (await client.get("/marketing/v1/segments", headers=brand.headers)).json()["items"] == []
    # A deleted segment cannot be named any more.
    again = await preview(client, brand.headers, {"segment": named["id"]})
    assert _error(again) == (422, "UnknownSegment", "rule.segment")
    assert await _saved(session, brand) == 2  # kept, deleted, for the versions exports used


async def test_personal_fields_need_members_read_and_affinity_recommender_read(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture
) -> None:
    marketer = await staff_headers(client, brand, ["marketing:write"])
    reader = await staff_headers(client, brand, ["marketing:write", "members:read"])
    email = {"field": "email", "op": "eq", "value": "ana@example.com"}
    traits = {"and": [TIER, {"field": "traits", "key": "skin_type", "op": "eq", "value": "dry"}]}
    body = {"name": "x", "purpose": "analytics", "refresh": "manual"}
    for rule, path in ((email, "rule.field"), (traits, "rule.and[1].field")):
        refused = await client.post(
            "/marketing/v1/segments", json={**body, "rule": rule}, headers=marketer
        )
        assert _error(refused) == (403, "FieldNotReadable", path)
        assert _error(await preview(client, marketer, rule)) == (403, "FieldNotReadable", path)
    assert await _saved(session, brand) == 0
    allowed = await client.post(
        "/marketing/v1/segments", json={**body, "rule": email}, headers=reader
    )
    assert allowed.status_code == 201, allowed.text

    affinity = {"or": [TIER, {"affinity": {"item": "perk:1", "top_share": 0.2}}]}
    refused = await client.post(
        "/marketing/v1/segments", json={**body, "rule": affinity}, headers=reader
    )
    assert _error(refused) == (403, "AffinityNotAllowed", "rule.or[1]")
    assert await _saved(session, brand) == 1


async def test_affinity_conditions_may_refresh_on_a_schedule_directly_or_named(
    client: httpx.AsyncClient, brand: BrandFixture
) -> None:
    # Scheduled refreshes ask the recommender with a service token of the brand (see
    # test_segments_affinity), so a schedule is no reason to refuse one.
    daily = await create(client, brand, TIER, name="daily", refresh="daily")
    affinity = {"affinity": {"item": "perk:1", "top_share": 0.2}}
    scheduled = await create(client, brand, affinity, name="scheduled", refresh="daily")
    named = await create(client, brand, {"segment": scheduled["id"]}, name="n", refresh="hourly")
    assert (scheduled["refresh"], named["refresh"]) == ("daily", "hourly")
    changed = await client.patch(
        f"/marketing/v1/segments/{daily['id']}", json={"rule": affinity}, headers=brand.headers
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["rule"], changed.json()["refresh"]) == (affinity, "daily")


async def test_a_retried_create_with_the_same_key_makes_one_segment(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture
) -> None:
    body = {"name": "gold", "rule": TIER, "purpose": "email_marketing"}
    headers = {**brand.headers, "Idempotency-Key": "create-gold"}
    first = await client.post("/marketing/v1/segments", json=body, headers=headers)
    second = await client.post("/marketing/v1/segments", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert first.json()["refresh"] == "daily"
    assert await _saved(session, brand) == 1
    other = await client.post(
        "/marketing/v1/segments", json={**body, "name": "silver"}, headers=headers
    )
    assert (other.status_code, other.json()["error"]) == (409, "IdempotencyKeyReused")


async def test_a_body_without_a_rule_is_a_validation_error(
    client: httpx.AsyncClient, brand: BrandFixture
) -> None:
    missing = await client.post(
        "/marketing/v1/segments", json={"name": "x", "purpose": "analytics"}, headers=brand.headers
    )
    assert (missing.status_code, missing.json()["error"]) == (422, "ValidationError")
    unknown = await client.post(
        "/marketing/v1/segments",
        json={"name": "x", "purpose": "billing", "rule": TIER},
        headers=brand.headers,
    )
    assert (unknown.status_code, unknown.json()["error"]) == (422, "ValidationError")
