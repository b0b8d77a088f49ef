"""The demo brand's loyalty program: the program, tiers and rules the simulator configures
(`PROGRAM`, `TIERS`, `RULES`, the hero `SKUS`), and what the brand runs this week, seeded through
the public API on top of the simulated year: a campaign, a perks catalog with a drop next week,
and redemptions.

Deterministic for a given seed; times are relative to `now`, so the demo always looks current.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import httpx

from services.demo.api import send
from services.demo.members import member_records

PROGRAM = {
    "currency": "EUR",
    "points_per_unit": 1,
    "pending_days": 14,
    "expiry_policy": "inactivity",
    "inactivity_months": 18,
    "expiry_reminder_days": 30,
    "qualification_window": "calendar_year",
}
TIERS = [
    {"name": "Insider", "rank": 0, "threshold_minor": 0, "benefits": ["Birthday gift"]},
    {
        "name": "VIB",
        "rank": 1,
        "threshold_minor": 35_000,
        "multiplier": "1.25",
        "benefits": ["Birthday gift", "Seasonal savings event"],
    },
    {
        "name": "Rouge",
        "rank": 2,
        "threshold_minor": 100_000,
        "multiplier": "1.5",
        "priority_booking": True,
        "benefits": ["Birthday gift", "Free shipping", "First access to drops"],
    },
]
RULES = [
    {"kind": "category_multiplier", "name": "Fragrance counts double", "category": "fragrance",
     "multiplier": "2"},
    {"kind": "sku_multiplier", "name": "Hero serum triple points", "sku": "SKU-SERUM-01",
     "multiplier": "3"},
    {"kind": "activity", "name": "Completed profile", "activity": "profile.completed",
     "points": 100, "cap_lifetime": 1},
    {"kind": "activity", "name": "Birthday points", "activity": "birthday", "points": 250,
     "cap_per_month": 1},
    {"kind": "activity", "name": "Community post", "activity": "post.approved", "points": 10,
     "cap_per_day": 3},
    {"kind": "activity", "name": "Product review", "activity": "review.published",
     "points": 50, "cap_per_day": 2},
    {"kind": "activity", "name": "Prompt answered", "activity": "prompt.answered",
     "points": 25, "cap_per_day": 1},
    {"kind": "activity", "name": "Attended an experience", "activity": "experience.attended",
     "points": 100},
    {"kind": "activity", "name": "Challenge completed", "activity": "challenge.completed",
     "points": 100},
]  # fmt: skip
PERKS = [
    ("10 € off your next order", "discount_code", "voucher", 500, None),
    ("Deluxe sample trio", "free_product", "skincare", 250, 400),
    ("Full-size lipstick", "free_product", "makeup", 1500, 100),
    ("Fragrance discovery set", "free_product", "fragrance", 2000, 60),
    ("Masterclass: skin prep with our artists", "experience_access", "events", 3000, 20),
    ("Donate 5 € to Look Good Feel Better", "donation", "charity", 500, None),
    ("Limited edition palette", "free_product", "makeup", 2500, 10),
]
SKUS = {
    "skincare": ["SKU-SERUM-01", "SKU-CREAM-02", "SKU-CLEANSER-03"],
    "makeup": ["SKU-LIP-10", "SKU-MASCARA-11", "SKU-FOUND-12"],
    "fragrance": ["SKU-EDP-20", "SKU-EDT-21"],
    "hair": ["SKU-OIL-30", "SKU-MASK-31"],
    "bath": ["SKU-SOAK-40"],
    "tools": ["SKU-BRUSH-50", "SKU-SPONGE-51"],
}


async def seed_catalog(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    now: datetime,
    seed: int = 11,
) -> None:
    """What the brand runs this week, on top of the simulated history (program, tiers, rules
    and purchases): a campaign on now, the perks catalog with codes, a drop next week, and
    redemptions by the members whose points allow them."""
    rng = random.Random(seed)
    tiers = await _items(client, headers, "/rewards/v1/tiers")
    await send(
        client,
        "POST",
        "/rewards/v1/campaigns",
        headers,
        {
            "name": "Skincare week: double points",
            "starts_at": (now - timedelta(days=3)).isoformat(),
            "ends_at": (now + timedelta(days=4)).isoformat(),
            "categories": ["skincare"],
            "multiplier": "2",
        },
    )
    perks = []
    for name, kind, category, cost, stock in PERKS:
        body: dict[str, Any] = {
            "name": name,
            "kind": kind,
            "category": category,
            "cost_points": cost,
            "inventory_total": stock,
            "per_member_limit": 2,
        }
        if name == "Full-size lipstick":
            body["tier_ids"] = [tiers[1]["id"], tiers[2]["id"]]
        perks.append(await send(client, "POST", "/rewards/v1/perks", headers, body))
    codes = [f"DEMO-{rng.randrange(16**8):08X}" for _ in range(300)]
    await send(
        client, "POST", f"/rewards/v1/perks/{perks[0]['id']}/codes", headers, {"codes": codes}
    )
    await send(
        client,
        "POST",
        "/rewards/v1/drops",
        headers,
        {
            "perk_id": perks[-1]["id"],
            "method": "draw",
            "units": 10,
            "early_opens_at": (now + timedelta(days=6)).isoformat(),
            "early_tier_ids": [tiers[2]["id"]],
            "opens_at": (now + timedelta(days=7)).isoformat(),
            "closes_at": (now + timedelta(days=9)).isoformat(),
        },
    )
    await _redeem(client, headers, perks, rng)


async def _items(
    client: httpx.AsyncClient, headers: dict[str, str], path: str
) -> list[dict[str, Any]]:
    response = await client.get(path, params={"limit": 100}, headers=headers)
    response.raise_for_status()
    found: list[dict[str, Any]] = response.json()["items"]
    return found


async def _redeem(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    perks: list[dict[str, Any]],
    rng: random.Random,
) -> None:
    """About a third of members redeem a perk, so redemptions and stock look lived in.

    A member who cannot (too few points, wrong tier, sold out) is simply refused, as in life.
    """
    for member_id in [m["id"] for m in await member_records(client, headers)]:
        if rng.random() > 0.35:
            continue
        perk = rng.choice(perks[:-1])  # the last one is for the drop
        await client.post(
            f"/rewards/v1/members/{member_id}/redemptions",
            json={"perk_id": perk["id"]},
            headers={**headers, "Idempotency-Key": f"demo-{member_id}-{perk['id']}"},
        )
