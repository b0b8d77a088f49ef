"""Segment rules against answers computed by hand on a five-member brand (see
`segments_world`): every operator of every field type, every event condition, nesting with
and/or/not, segments naming segments, the consent filter of marketing purposes, and brands
kept apart."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.marketing.fields import FIELDS
from services.marketing.models import SegmentPurpose
from services.marketing.segments import service
from tests.conftest import BrandFixture
from tests.marketing.segments_world import (
    BRONZE,
    GOLD,
    SILVER,
    World,
    build_world,
    create,
    member_id,
    names,
    preview,
)
from tests.recommender.serving_fixtures import staff_headers

ALL = {"ana", "bo", "cy", "di", "ed"}


@pytest.fixture
async def world(session: AsyncSession, brand: BrandFixture) -> World:
    return await build_world(session, brand.id, utcnow())


async def members(
    session: AsyncSession, world: World, rule: dict[str, Any], purpose: str = "analytics"
) -> set[str]:
    found = await service.preview(session, world.brand_id, rule, purpose=SegmentPurpose(purpose))
    chosen = names(row["member_id"] for row in found.sample)
    assert found.count == len(chosen)
    assert found.warnings == []
    return chosen


def field(name: str, op: str, value: Any = None, **extra: Any) -> dict[str, Any]:
    rule = {"field": name, "op": op, **extra}
    if value is not None:
        rule["value"] = value
    return rule


FIELD_CASES: list[tuple[dict[str, Any], set[str]]] = [
    # string
    (field("locale", "eq", "fr-FR"), {"ana", "di"}),
    (field("locale", "ne", "fr-FR"), {"bo", "cy", "ed"}),  # no locale is "not fr-FR"
    (field("locale", "in", ["fr-FR", "de-DE"]), {"ana", "di", "ed"}),
    (field("locale", "not_in", ["fr-FR", "en-GB"]), {"cy", "ed"}),
    (field("locale", "is_null"), {"cy"}),
    (field("locale", "is_not_null"), {"ana", "bo", "di", "ed"}),
    # uuid
    (field("tier_id", "eq", str(GOLD)), {"ana", "di"}),
    (field("tier_id", "ne", str(GOLD)), {"bo", "cy", "ed"}),
    (field("tier_id", "in", [str(SILVER), str(BRONZE)]), {"bo", "ed"}),
    (field("tier_id", "not_in", [str(SILVER)]), {"ana", "cy", "di", "ed"}),
    (field("tier_id", "is_null"), {"cy"}),
    (field("member_id", "eq", str(member_id("bo"))), {"bo"}),
    # integer
    (field("points_available", "eq", 500), {"ana"}),
    (field("points_available", "ne", 500), {"bo", "cy", "di", "ed"}),
    (field("points_available", "lt", 120), {"cy", "ed"}),
    (field("points_available", "lte", 120), {"bo", "cy", "ed"}),
    (field("points_available", "gt", 500), {"di"}),
    (field("points_available", "gte", 500), {"ana", "di"}),
    (field("points_available", "between", [50, 500]), {"ana", "bo", "ed"}),
    (field("points_available", "in", [0, 900]), {"cy", "di"}),
    (field("points_available", "not_in", [0, 900]), {"ana", "bo", "ed"}),
    (field("points_available", "is_null"), set()),
    (field("points_available", "is_not_null"), ALL),
    # number
    (field("churn_probability", "eq", 0.7), {"bo"}),
    (field("churn_probability", "ne", 0.1), {"bo", "cy", "di", "ed"}),
    (field("churn_probability", "lt", 0.4), {"ana", "di"}),
    (field("churn_probability", "lte", 0.4), {"ana", "di", "ed"}),
    (field("churn_probability", "gt", 0.1), {"bo", "ed"}),
    (field("churn_probability", "gte", 0.4), {"bo", "ed"}),
    (field("churn_probability", "between", [0.05, 0.1]), {"ana", "di"}),
    (field("churn_probability", "in", [0.1, 0.7]), {"ana", "bo"}),
    (field("churn_probability", "not_in", [0.1, 0.7]), {"cy", "di", "ed"}),
    (field("churn_probability", "is_null"), {"cy"}),
    (field("churn_probability", "is_not_null"), {"ana", "bo", "di", "ed"}),
    # datetime, relative and absolute
    (field("joined_at", "lt", {"days_ago": 365}), {"ana", "di"}),
    (field("joined_at", "lte", {"days_ago": 100}), {"ana", "di", "ed"}),
    (field("joined_at", "gt", {"days_ago": 100}), {"bo", "cy"}),
    (field("joined_at", "gte", {"days_ago": 30}), {"cy"}),
    (field("last_active_at", "lt", {"days_ago": 60}), {"bo", "di"}),  # never active: no
    (field("last_active_at", "is_null"), {"cy"}),
    (field("last_active_at", "is_not_null"), {"ana", "bo", "di", "ed"}),
    # tags
    (field("interests", "contains", "skincare"), {"ana", "di"}),
    (field("interests", "contains_any", ["hair", "fragrance"]), {"bo", "ed"}),
    (field("interests", "contains_all", ["skincare", "makeup"]), {"ana"}),
    (field("interests", "is_null"), {"cy"}),
    (field("interests", "is_not_null"), {"ana", "bo", "di", "ed"}),
    (field("consents", "contains", "push"), {"di", "ed"}),
    # traits, by key
    (field("traits", "eq", "dry", key="skin_type"), {"ana", "ed"}),
    (field("traits", "ne", "dry", key="skin_type"), {"bo", "cy", "di"}),
    (field("traits", "in", ["dry", "oily"], key="skin_type"), {"ana", "bo", "ed"}),
    (field("traits", "not_in", ["dry"], key="skin_type"), {"bo", "cy", "di"}),
    (field("traits", "is_null", key="skin_type"), {"cy", "di"}),  # absent, or JSON null
    (field("traits", "is_not_null", key="skin_type"), {"ana", "bo", "ed"}),
    (field("traits", "gt", 30, key="age"), {"ana", "di"}),  # "unknown" is no number
    (field("traits", "gte", 52, key="age"), {"di"}),
    (field("traits", "lt", 30, key="age"), {"ed"}),
    (field("traits", "lte", 34, key="age"), {"ana", "ed"}),
    (field("traits", "between", [25, 40], key="age"), {"ana", "ed"}),
    (field("traits", "eq", "unknown", key="age"), {"bo"}),
    (field("traits", "contains", "acne", key="concerns"), {"ana"}),
    (field("traits", "eq", True, key="vip"), {"ana"}),
]


@pytest.mark.parametrize(("rule", "expected"), FIELD_CASES)
async def test_each_field_operator_holds_for_the_members_it_should(
    session: AsyncSession, world: World, rule: dict[str, Any], expected: set[str]
) -> None:
    assert await members(session, world, rule) == expected
    # `not` is the exact complement, members without a value included.
    assert await members(session, world, {"not": rule}) == ALL - expected


async def test_absolute_datetimes_compare_as_moments(session: AsyncSession, world: World) -> None:
    cut = world.ago(60).isoformat()
    assert await members(session, world, field("last_active_at", "gte", cut)) == {"ana", "ed"}
    window = [world.ago(500).isoformat(), {"days_ago": 50}]
    assert await members(session, world, field("joined_at", "between", window)) == {"ana", "ed"}


def event(kind: str, **extra: Any) -> dict[str, Any]:
    return {"event": kind, **extra}


EVENT_CASES: list[tuple[dict[str, Any], set[str]]] = [
    # purchased at least twice in the last 90 days
    (event("purchase", within_days=90, count={"op": "gte", "value": 2}), {"ana", "di"}),
    (event("purchase"), {"ana", "bo", "di", "ed"}),  # ever, at least once
    (event("purchase", count={"op": "gt", "value": 2}), {"ana"}),
    (event("purchase", count={"op": "eq", "value": 2}), {"di"}),
    (event("purchase", within_days=90, count={"op": "lt", "value": 2}), {"bo", "cy", "ed"}),
    (event("purchase", within_days=90, count={"op": "ne", "value": 1}), {"ana", "bo", "cy", "di"}),
    (event("purchase", within_days=90, count={"op": "lte", "value": 0}), {"bo", "cy"}),
    # where: a line's category, an amount, a reference
    (event("purchase", where={"category": "skincare"}), {"ana", "di"}),
    (event("purchase", where={"category": ["hair", "fragrance"]}), {"bo", "ed"}),
    (
        event(
            "purchase",
            where={"amount_minor": {"op": "gte", "value": 60_000}},
            count={"op": "gte", "value": 2},
        ),
        {"di"},
    ),
    (event("purchase", where={"ref": ["o-1", "o-6"]}), {"ana", "ed"}),
    (event("return"), {"di"}),
    # redeemed a perk of category X ever
    (event("redemption", where={"category": "skincare"}), {"bo"}),
    (event("redemption"), {"ana", "bo"}),
    (event("redemption", count={"op": "lte", "value": 1}), ALL),
    (event("redemption", within_days=30), {"ana"}),
    (event("post", where={"ref": "post-1"}), {"ana"}),
    (event("comment"), {"ed"}),
    (event("reaction", within_days=21), set()),
    # has not been active for 60 days (never active included, unlike the field condition)
    (event("active", within_days=60, count={"op": "eq", "value": 0}), {"bo", "cy", "di"}),
    (event("active", within_days=60), {"ana", "ed"}),
    (event("profile"), ALL),
]


@pytest.mark.parametrize(("rule", "expected"), EVENT_CASES)
async def test_each_event_condition_counts_the_journal(
    session: AsyncSession, world: World, rule: dict[str, Any], expected: set[str]
) -> None:
    assert await members(session, world, rule) == expected
    assert await members(session, world, {"not": rule}) == ALL - expected


async def test_and_or_not_nest(session: AsyncSession, world: World) -> None:
    fr_rich = {"and": [field("locale", "eq", "fr-FR"), field("points_available", "gt", 600)]}
    no_interests = {"not": field("interests", "is_not_null")}
    assert await members(session, world, {"or": [fr_rich, no_interests]}) == {"cy", "di"}
    # Events and fields together, the same count shared by two conditions.
    recent_buyers = event("purchase", within_days=90)
    twice = event("purchase", within_days=90, count={"op": "gte", "value": 2})
    rule = {
        "and": [
            recent_buyers,
            {"not": twice},
            {"or": [field("tier", "eq", "Bronze"), field("tier", "is_null")]},
        ]
    }
    assert await members(session, world, rule) == {"ed"}
    deep: dict[str, Any] = field("locale", "eq", "fr-FR")
    for _ in range(4):  # not not not not: the same
        deep = {"not": deep}
    assert await members(session, world, deep) == {"ana", "di"}


async def test_a_segment_named_in_a_rule_is_its_rule_and_its_consent(
    client: httpx.AsyncClient, session: AsyncSession, world: World, brand: BrandFixture
) -> None:
    french = await create(client, brand, field("locale", "eq", "fr-FR"), name="French")
    rich_french = {"and": [{"segment": french["id"]}, field("points_available", "gt", 600)]}
    assert await members(session, world, rich_french) == {"di"}
    # An email segment keeps only members with that consent, wherever it is named.
    skincare = await create(
        client, brand, field("interests", "contains", "skincare"), purpose="email_marketing"
    )
    assert await members(session, world, {"segment": skincare["id"]}) == {"ana"}
    named_twice = await create(client, brand, {"segment": skincare["id"]}, name="via")
    assert await members(session, world, {"not": {"segment": named_twice["id"]}}) == ALL - {"ana"}
    assert named_twice["uses"] == [skincare["id"]]
    # Previews are live: change the named segment, the naming one follows.
    changed = await client.patch(
        f"/marketing/v1/segments/{skincare['id']}",
        json={"rule": field("interests", "contains", "makeup")},
        headers=brand.headers,
    )
    assert changed.status_code == 200, changed.text
    assert await members(session, world, {"segment": named_twice["id"]}) == {"ana", "ed"}


async def test_marketing_purposes_keep_only_members_with_the_consent(
    session: AsyncSession, world: World
) -> None:
    buyers = field("order_count", "gte", 1)
    assert await members(session, world, buyers) == {"ana", "bo", "di", "ed"}
    assert await members(session, world, buyers, "email_marketing") == {"ana", "bo", "ed"}
    assert await members(session, world, buyers, "sms_marketing") == {"ana"}
    assert await members(session, world, buyers, "push") == {"di", "ed"}


async def test_previews_through_the_api_count_and_show_a_sample_without_personal_data(
    client: httpx.AsyncClient, session: AsyncSession, world: World, brand: BrandFixture
) -> None:
    response = await preview(
        client, brand.headers, field("order_count", "gte", 1), "email_marketing"
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == 3
    assert body["warnings"] == []
    assert [row["member_id"] for row in body["sample"]] == [
        str(member_id(n)) for n in ("ana", "bo", "ed")
    ]
    assert body["sample"][0] == {
        "member_id": str(member_id("ana")),
        "tier": "Gold",
        "locale": "fr-FR",
        "joined_at": body["sample"][0]["joined_at"],
        "last_active_at": body["sample"][0]["last_active_at"],
        "order_count": 5,
        "spend_lifetime_minor": 24_000,
        "points_available": 500,
    }
    saved = await create(client, brand, field("order_count", "gte", 1), purpose="push")
    again = await client.get(f"/marketing/v1/segments/{saved['id']}/preview", headers=brand.headers)
    assert again.status_code == 200, again.text
    assert again.json()["count"] == 2
    assert names(r["member_id"] for r in again.json()["sample"]) == {"di", "ed"}


async def test_the_sample_holds_twenty_of_a_larger_segment(
    session: AsyncSession, world: World
) -> None:
    from sqlalchemy import insert

    from services.marketing.models import MemberView

    extra = [
        {"brand_id": world.brand_id, "member_id": uuid.UUID(int=100 + i), "refreshed_at": world.now}
        for i in range(30)
    ]
    await session.execute(insert(MemberView), extra)
    found = await service.preview(session, world.brand_id, field("order_count", "eq", 0))
    assert found.count == 31
    assert [row["member_id"] for row in found.sample] == [member_id("cy")] + [
        uuid.UUID(int=100 + i) for i in range(19)
    ]


async def test_another_brand_sees_neither_the_segments_nor_the_members(
    client: httpx.AsyncClient,
    session: AsyncSession,
    world: World,
    brand: BrandFixture,
    other_brand: BrandFixture,
) -> None:
    await build_world(session, other_brand.id, world.now)  # the same five, in the other brand
    mine = await create(client, brand, field("locale", "eq", "fr-FR"))
    for path in ("", "/preview", "/versions"):
        seen = await client.get(
            f"/marketing/v1/segments/{mine['id']}{path}", headers=other_brand.headers
        )
        assert (seen.status_code, seen.json()["error"]) == (404, "SegmentNotFound")
    made = await client.post(
        f"/marketing/v1/segments/{mine['id']}/versions", headers=other_brand.headers
    )
    assert made.status_code == 404
    deleted = await client.delete(
        f"/marketing/v1/segments/{mine['id']}", headers=other_brand.headers
    )
    assert deleted.status_code == 404
    listed = await client.get("/marketing/v1/segments", headers=other_brand.headers)
    assert listed.json()["items"] == []
    named = await preview(client, other_brand.headers, {"segment": mine["id"]})
    assert (named.status_code, named.json()["error"]) == (422, "UnknownSegment")
    # Each brand counts its own five.
    for key in (brand, other_brand):
        counted = await preview(client, key.headers, field("locale", "eq", "fr-FR"))
        assert counted.json()["count"] == 2
    versions = await client.post(
        f"/marketing/v1/segments/{mine['id']}/versions", headers=brand.headers
    )
    assert versions.json()["size"] == 2


async def test_the_catalog_lists_fields_with_their_operators_and_the_activities(
    client: httpx.AsyncClient, brand: BrandFixture
) -> None:
    reader = await staff_headers(client, brand, ["marketing:read"])
    response = await client.get("/marketing/v1/fields", headers=reader)
    assert response.status_code == 200, response.text
    body = response.json()
    fields = {f["name"]: f for f in body["fields"]}
    assert set(fields) == set(FIELDS)
    assert fields["points_available"] == {
        "name": "points_available",
        "type": "integer",
        "description": "Points that can be spent.",
        "personal": False,
        "operators": [
            "eq",
            "ne",
            "in",
            "not_in",
            "lt",
            "lte",
            "gt",
            "gte",
            "between",
            "is_null",
            "is_not_null",
        ],
    }
    assert fields["email"]["personal"] is True
    assert fields["interests"]["operators"] == [
        "contains",
        "contains_any",
        "contains_all",
        "is_null",
        "is_not_null",
    ]
    assert fields["joined_at"]["operators"] == [
        "lt",
        "lte",
        "gt",
        "gte",
        "between",
        "is_null",
        "is_not_null",
    ]
    events = [e["event"] for e in body["events"]]
    assert events[:3] == ["active", "profile", "consent"]
    assert {"purchase", "redemption"} <= set(events)
    assert body["count_operators"] == ["eq", "ne", "lt", "lte", "gt", "gte"]


async def test_a_read_key_previews_and_reads_but_does_not_write(
    client: httpx.AsyncClient, session: AsyncSession, world: World, brand: BrandFixture
) -> None:
    reader = await staff_headers(client, brand, ["marketing:read"])
    saved = await create(client, brand, field("locale", "eq", "fr-FR"))
    assert (await preview(client, reader, field("locale", "eq", "fr-FR"))).json()["count"] == 2
    assert (
        await client.get(f"/marketing/v1/segments/{saved['id']}", headers=reader)
    ).status_code == 200
    for method, path in (
        ("POST", "/marketing/v1/segments"),
        ("PATCH", f"/marketing/v1/segments/{saved['id']}"),
        ("DELETE", f"/marketing/v1/segments/{saved['id']}"),
        ("POST", f"/marketing/v1/segments/{saved['id']}/versions"),
    ):
        refused = await client.request(method, path, json={"name": "x"}, headers=reader)
        assert (refused.status_code, refused.json()["error"]) == (403, "Forbidden")
    nobody = await client.get("/marketing/v1/fields")
    assert nobody.status_code == 401
