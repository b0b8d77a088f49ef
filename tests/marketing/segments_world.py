"""A small brand written straight into marketing's own store (member-360 rows and their
journal), for segment tests whose answers are computed by hand; and helpers to call the
segments API.

Five members, ids 1 to 5 (so samples, ordered by id, come in this order):

| member | locale | tier   | points | orders | churn | interests        | consents               |
| ana    | fr-FR  | Gold   | 500    | 5      | 0.1   | skincare, makeup | email_marketing, sms.. |
| bo     | en-GB  | Silver | 120    | 1      | 0.7   | fragrance        | email_marketing        |
| cy     | -      | -      | 0      | 0      | -     | -                | -                      |
| di     | fr-FR  | Gold   | 900    | 12     | 0.05  | skincare         | push                   |
| ed     | de-DE  | Bronze | 50     | 2      | 0.4   | makeup, hair     | email_marketing, push  |

Journal (days ago): ana bought at 10, 40 and 200, redeemed a "gifts" perk at 5, posted at 100;
bo bought at 95, redeemed a "skincare" perk at 300; di bought at 61 (90 000) and 80 (60 000),
returned at 70; ed bought at 20 (hair), commented at 20, reacted at 25; cy only joined.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.ids import new_id
from services.marketing.models import OUTBOX, ActivityKind, JournalEntry, MemberView
from tests.conftest import BrandFixture

NAMES = ("ana", "bo", "cy", "di", "ed")
GOLD = uuid.UUID("00000000-0000-0000-0000-00000000a001")
SILVER = uuid.UUID("00000000-0000-0000-0000-00000000a002")
BRONZE = uuid.UUID("00000000-0000-0000-0000-00000000a003")


def member_id(name: str) -> uuid.UUID:
    return uuid.UUID(int=NAMES.index(name) + 1)


@dataclass(frozen=True)
class World:
    brand_id: uuid.UUID
    now: datetime

    def ago(self, days: float) -> datetime:
        return self.now - timedelta(days=days)


def _members(world: World) -> list[dict[str, Any]]:
    ago = world.ago
    return [
        {
            "member_id": member_id("ana"),
            "external_id": "ext-ana",
            "email": "ana@example.com",
            "display_name": "Ana",
            "birthday": "1990-04-01",
            "status": "active",
            "locale": "fr-FR",
            "tier": "Gold",
            "tier_id": GOLD,
            "points_available": 500,
            "order_count": 5,
            "spend_lifetime_minor": 24_000,
            "churn_probability": 0.1,
            "interests": ["skincare", "makeup"],
            "consents": ["email_marketing", "sms_marketing"],
            "traits": {"skin_type": "dry", "age": 34, "concerns": ["acne", "redness"], "vip": True},
            "joined_at": ago(400),
            "last_active_at": ago(5),
        },
        {
            "member_id": member_id("bo"),
            "external_id": "ext-bo",
            "email": "bo@example.com",
            "status": "active",
            "locale": "en-GB",
            "tier": "Silver",
            "tier_id": SILVER,
            "points_available": 120,
            "order_count": 1,
            "spend_lifetime_minor": 3_000,
            "churn_probability": 0.7,
            "interests": ["fragrance"],
            "consents": ["email_marketing"],
            "traits": {"skin_type": "oily", "age": "unknown"},
            "joined_at": ago(35),
            "last_active_at": ago(95),
        },
        {
            "member_id": member_id("cy"),
            "status": "active",
            "points_available": 0,
            "order_count": 0,
            "interests": [],
            "consents": [],
            "traits": {},
            "joined_at": ago(10),
            "last_active_at": None,
        },
        {
            "member_id": member_id("di"),
            "email": "di@example.com",
            "status": "active",
            "locale": "fr-FR",
            "tier": "Gold",
            "tier_id": GOLD,
            "points_available": 900,
            "order_count": 12,
            "spend_lifetime_minor": 150_000,
            "churn_probability": 0.05,
            "interests": ["skincare"],
            "consents": ["push"],
            "traits": {"skin_type": None, "age": 52},
            "joined_at": ago(800),
            "last_active_at": ago(61),
        },
        {
            "member_id": member_id("ed"),
            "email": "ed@example.com",
            "status": "active",
            "locale": "de-DE",
            "tier": "Bronze",
            "tier_id": BRONZE,
            "points_available": 50,
            "order_count": 2,
            "spend_lifetime_minor": 8_000,
            "churn_probability": 0.4,
            "interests": ["makeup", "hair"],
            "consents": ["email_marketing", "push"],
            "traits": {"skin_type": "dry", "age": 27},
            "joined_at": ago(100),
            "last_active_at": ago(20),
        },
    ]


def _journal(world: World) -> list[dict[str, Any]]:
    def row(name: str, kind: ActivityKind, days: float, **facts: Any) -> dict[str, Any]:
        return {
            "event_id": new_id(),
            "brand_id": world.brand_id,
            "member_id": member_id(name),
            "kind": kind,
            "occurred_at": world.ago(days),
            "amount_minor": facts.get("amount_minor"),
            "points": facts.get("points"),
            "category": facts.get("category"),
            "categories": facts.get("categories"),
            "ref": facts.get("ref"),
            "data": facts.get("data"),
        }

    purchase, redemption = ActivityKind.PURCHASE, ActivityKind.REDEMPTION
    return [
        *(row(n, ActivityKind.PROFILE, 900, ref="created") for n in NAMES),
        row("ana", purchase, 10, amount_minor=5_000, categories=["skincare"], ref="o-1"),
        row("ana", purchase, 40, amount_minor=7_000, categories=["makeup"], ref="o-2"),
        row("ana", purchase, 200, amount_minor=12_000, categories=["makeup", "skincare"]),
        row("ana", redemption, 5, category="gifts", ref="perk-gift", points=100),
        row("ana", ActivityKind.POST, 100, ref="post-1"),
        row("bo", purchase, 95, amount_minor=3_000, categories=["fragrance"], ref="o-3"),
        row("bo", redemption, 300, category="skincare", ref="perk-serum", points=50),
        row("di", purchase, 61, amount_minor=90_000, categories=["skincare"], ref="o-4"),
        row("di", purchase, 80, amount_minor=60_000, categories=["skincare"], ref="o-5"),
        row("di", ActivityKind.RETURN, 70, amount_minor=10_000, categories=["skincare"]),
        row("ed", purchase, 20, amount_minor=8_000, categories=["hair"], ref="o-6"),
        row("ed", ActivityKind.COMMENT, 20, ref="post-1"),
        row("ed", ActivityKind.REACTION, 25, ref="post-1"),
    ]


_BLANK: dict[str, Any] = {
    "external_id": None,
    "email": None,
    "display_name": None,
    "birthday": None,
    "status": None,
    "locale": None,
    "tier": None,
    "tier_id": None,
    "churn_probability": None,
    "spend_lifetime_minor": 0,
    "time_zone": None,
}


async def build_world(session: AsyncSession, brand_id: uuid.UUID, now: datetime) -> World:
    world = World(brand_id, now)
    rows = [{**_BLANK, **m, "brand_id": brand_id, "refreshed_at": now} for m in _members(world)]
    await session.execute(insert(MemberView), rows)
    await session.execute(insert(JournalEntry), _journal(world))
    await session.flush()
    return world


def names(ids: Any) -> set[str]:
    """Member ids (UUIDs or their text) as the world's names."""
    return {NAMES[uuid.UUID(str(i)).int - 1] for i in ids}


async def outbox_events(session: AsyncSession, brand_id: uuid.UUID) -> list[dict[str, Any]]:
    """Marketing's outbox rows for the brand, as payloads, in the order they were written."""
    table = OUTBOX.table
    rows = await session.scalars(
        select(table.c.payload).where(table.c.brand_id == brand_id).order_by(table.c.id)
    )
    return list(rows)


async def create(
    client: httpx.AsyncClient,
    brand: BrandFixture,
    rule: dict[str, Any],
    *,
    purpose: str = "analytics",
    refresh: str = "manual",
    name: str = "segment",
) -> dict[str, Any]:
    response = await client.post(
        "/marketing/v1/segments",
        json={"name": name, "rule": rule, "purpose": purpose, "refresh": refresh},
        headers=brand.headers,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def preview(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    rule: dict[str, Any],
    purpose: str = "analytics",
) -> httpx.Response:
    return await client.post(
        "/marketing/v1/segments/preview", json={"rule": rule, "purpose": purpose}, headers=headers
    )
