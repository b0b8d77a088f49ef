"""Values that pass field validation but cannot be stored or computed are 4xx, never 500:
NUL characters, instants that overflow when converted to UTC, points past any real basket."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.rewards.models import Campaign, EarningRule, LedgerEntry, Perk, Purchase
from tests.conftest import BrandFixture, MemberFixture
from tests.rewards.conftest import rewards_events

PERK = {"name": "Sample", "kind": "free_product", "category": "skincare", "cost_points": 100}


def purchase(**changes: Any) -> dict[str, Any]:
    body = {
        "external_id": "crm-1",
        "order_id": "A-1",
        "amount_minor": 12_000,
        "currency": "EUR",
        "lines": [],
        "occurred_at": "2026-01-10T10:00:00+00:00",
    }
    return {**body, **changes}


async def counts(session: AsyncSession) -> list[int]:
    return [
        await session.scalar(select(func.count()).select_from(table)) or 0
        for table in (Perk, Purchase, LedgerEntry, Campaign, EarningRule)
    ]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/rewards/v1/perks", {**PERK, "name": "a\u0000b"}),
        ("GET", "/rewards/v1/purchases/a%00b", None),
        ("GET", "/rewards/v1/perks?category=%00", None),
        ("POST", "/rewards/v1/purchases", purchase(external_id="x\u0000")),
    ],
)
async def test_nul_characters_are_refused_with_invalid_value(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    response = await client.request(method, path, json=body, headers=brand.headers)
    assert response.status_code == 422
    assert response.json()["error"] == "InvalidValue"
    assert "NUL" in response.json()["detail"]
    assert await counts(session) == [0, 0, 0, 0, 0]


async def test_a_nul_in_a_members_name_is_refused_too(
    client: httpx.AsyncClient, brand: BrandFixture
) -> None:
    response = await client.post(
        "/members/v1/members",
        json={"external_id": "n-1", "display_name": "A\u0000da"},
        headers=brand.headers,
    )
    assert (response.status_code, response.json()["error"]) == (422, "InvalidValue")
    listed = await client.get("/members/v1/members", headers=brand.headers)
    assert listed.json()["items"] == []


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/rewards/v1/purchases", purchase(occurred_at="0001-01-01T00:00:00+01:00")),
        ("POST", "/rewards/v1/perks", {**PERK, "valid_until": "9999-12-31T23:00:00-05:00"}),
        (
            "POST",
            "/rewards/v1/campaigns",
            {
                "name": "Year one",
                "starts_at": "0001-01-01T00:00:00+01:00",
                "ends_at": "2026-01-01T00:00:00+00:00",
                "multiplier": "2",
            },
        ),
        ("GET", "/rewards/v1/campaigns?live_at=0001-01-01T00:00:00%2B01:00", None),
    ],
)
async def test_instants_outside_the_utc_calendar_are_validation_errors(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    response = await client.request(method, path, json=body, headers=brand.headers)
    assert (response.status_code, response.json()["error"]) == (422, "ValidationError")
    assert "out of range once converted to UTC" in str(response.json()["detail"])
    assert await counts(session) == [0, 0, 0, 0, 0]


async def test_a_purchase_earning_past_any_real_basket_is_refused_and_so_is_its_simulation(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    rule = await client.post(
        "/rewards/v1/rules",
        json={"kind": "sku_multiplier", "name": "Max", "sku": "S", "multiplier": "999.999"},
        headers=brand.headers,
    )
    assert rule.status_code == 201
    huge = purchase(
        amount_minor=10**13,
        lines=[{"sku": "S", "category": "c", "quantity": 1, "amount_minor": 10**13}],
    )
    for path in ("/rewards/v1/purchases", "/rewards/v1/rules/simulate"):
        response = await client.post(path, json=huge, headers=brand.headers)
        assert (response.status_code, response.json()["error"]) == (422, "PointsOutOfRange")
        assert "more than one purchase may (1000000000000)" in response.json()["detail"]
    assert await counts(session) == [0, 0, 0, 0, 1]
    assert await rewards_events(session) == []
