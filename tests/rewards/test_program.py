"""Program settings: a brand configures its currency, base rate, pending days, expiry policy."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.rewards.models import Program
from tests.conftest import BrandFixture

SETTINGS = {
    "currency": "EUR",
    "points_per_unit": 2,
    "pending_days": 30,
    "expiry_policy": "days_after_earning",
    "expiry_days": 365,
    "expiry_reminder_days": 14,
    "qualification_window": "rolling_12_months",
}


async def test_a_brand_configures_and_reads_its_program(
    client: httpx.AsyncClient, brand: BrandFixture
) -> None:
    missing = await client.get("/rewards/v1/program", headers=brand.headers)
    assert (missing.status_code, missing.json()["error"]) == (409, "ProgramNotConfigured")
    saved = await client.put("/rewards/v1/program", json=SETTINGS, headers=brand.headers)
    assert saved.status_code == 200
    expected = {**SETTINGS, "brand_id": str(brand.id), "inactivity_months": None}
    assert saved.json() == expected
    assert (await client.get("/rewards/v1/program", headers=brand.headers)).json() == expected
    changed = await client.put(
        "/rewards/v1/program",
        json={**SETTINGS, "expiry_policy": "inactivity", "inactivity_months": 18},
        headers=brand.headers,
    )
    assert changed.json()["expiry_policy"] == "inactivity"
    assert changed.json()["inactivity_months"] == 18


@pytest.mark.parametrize(
    ("change", "location"),
    [
        ({"currency": "eur"}, ["body", "currency"]),
        ({"currency": "ABC"}, ["body", "currency"]),
        ({"currency": "XAU"}, ["body", "currency"]),
        ({"points_per_unit": 0}, ["body", "points_per_unit"]),
        ({"pending_days": -1}, ["body", "pending_days"]),
        ({"expiry_days": None}, ["body"]),
        ({"expiry_policy": "whenever"}, ["body", "expiry_policy"]),
        ({"colour": "red"}, ["body", "colour"]),
    ],
)
async def test_bad_settings_are_refused_and_nothing_is_saved(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    change: dict[str, Any],
    location: list[str],
) -> None:
    response = await client.put(
        "/rewards/v1/program", json={**SETTINGS, **change}, headers=brand.headers
    )
    assert response.status_code == 422
    assert response.json()["error"] == "ValidationError"
    assert [d["loc"] for d in response.json()["detail"]] == [location]
    assert await session.scalar(select(func.count()).select_from(Program)) == 0


async def test_only_staff_with_rewards_write_configure_a_program(
    client: httpx.AsyncClient, brand: BrandFixture
) -> None:
    created = await client.post(
        "/members/v1/api-keys",
        json={"name": "read only", "scopes": ["rewards:read"]},
        headers=brand.headers,
    )
    reader = {"Authorization": f"Bearer {created.json()['key']}"}
    refused = await client.put("/rewards/v1/program", json=SETTINGS, headers=reader)
    assert (refused.status_code, refused.json()["error"]) == (403, "Forbidden")
    anonymous = await client.put("/rewards/v1/program", json=SETTINGS)
    assert anonymous.status_code == 401
