"""Purchases read the brand's program, tiers, rules and campaigns from a per-process copy
(`services.rewards.earning.reference`): reused while nothing changed, and every staff change is
seen by the very next purchase.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from services.rewards.earning import reference
from tests.conftest import BrandFixture, MemberFixture
from tests.rewards.purchase_helpers import buy, line, make_campaign, make_rule, purchase


async def test_every_staff_change_is_seen_by_the_next_purchase(
    client: httpx.AsyncClient, brand: BrandFixture, member: MemberFixture, program: Any
) -> None:
    first = await buy(client, brand, purchase(member, "R-1", 10_000))
    assert first["points"] == 100

    campaign = await make_campaign(client, brand, bonus_points=50)
    assert (await buy(client, brand, purchase(member, "R-2", 10_000)))["points"] == 150

    changed = await client.patch(
        f"/rewards/v1/campaigns/{campaign['id']}",
        json={"multiplier": 2, "bonus_points": None},
        headers=brand.headers,
    )
    assert changed.status_code == 200, changed.text
    assert (await buy(client, brand, purchase(member, "R-3", 10_000)))["points"] == 200

    deleted = await client.delete(f"/rewards/v1/campaigns/{campaign['id']}", headers=brand.headers)
    assert deleted.status_code == 204
    rule = await make_rule(
        client, brand, kind="category_multiplier", name="Skincare x3", category="skin", multiplier=3
    )
    skincare = purchase(member, "R-4", 10_000, lines=[line("SERUM", 10_000, "skin")])
    assert (await buy(client, brand, skincare))["points"] == 300

    off = await client.patch(
        f"/rewards/v1/rules/{rule['id']}", json={"active": False}, headers=brand.headers
    )
    assert off.status_code == 200, off.text
    skincare = purchase(member, "R-5", 10_000, lines=[line("SERUM", 10_000, "skin")])
    assert (await buy(client, brand, skincare))["points"] == 100

    tier = await client.post(
        "/rewards/v1/tiers",
        json={"name": "Insider", "rank": 0, "threshold_minor": 0, "multiplier": 1.5},
        headers=brand.headers,
    )
    assert tier.status_code == 201, tier.text
    # The purchase that joins the entry tier earns at the old rate; the next one at the tier's.
    assert (await buy(client, brand, purchase(member, "R-6", 10_000)))["points"] == 100
    assert (await buy(client, brand, purchase(member, "R-7", 10_000)))["points"] == 150

    settings = {"currency": "EUR", "points_per_unit": 2}
    put = await client.put("/rewards/v1/program", json=settings, headers=brand.headers)
    assert put.status_code == 200, put.text
    assert (await buy(client, brand, purchase(member, "R-8", 10_000)))["points"] == 300


async def test_an_unchanged_brand_is_not_reloaded(
    client: httpx.AsyncClient,
    brand: BrandFixture,
    member: MemberFixture,
    program: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await buy(client, brand, purchase(member, "C-1", 1_000))

    async def no_reload(*_: Any) -> None:
        raise AssertionError("the reference data was reloaded although nothing changed")

    monkeypatch.setattr(reference, "_load", no_reload)
    assert (await buy(client, brand, purchase(member, "C-2", 2_000)))["points"] == 20
