"""`perk.updated`: every change to the catalog (create, update, delete) is told in the same
transaction with the perk's whole catalog view; a refused change tells nothing."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.rewards.models import OUTBOX, Program
from tests.conftest import BrandFixture, MemberFixture
from tests.rewards.perk_helpers import create_perk, error, give, make_tier, redeem


async def catalog_events(session: AsyncSession) -> list[dict[str, Any]]:
    """The `perk.updated` envelopes written so far, oldest first."""
    table = OUTBOX.table
    rows = await session.execute(
        select(table.c.payload).where(table.c.type == "perk.updated").order_by(table.c.id)
    )
    return [payload for (payload,) in rows]


async def test_creating_a_perk_tells_its_whole_catalog_view(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture
) -> None:
    gold = await make_tier(session, brand.id, "Gold", 1)
    opens = utcnow() + timedelta(days=1)
    perk = await create_perk(
        client,
        brand,
        name="Spa day",
        description="A day at the spa",
        category="wellness",
        tags=["Spa", "relax"],
        kind="experience_access",
        cost_points=2_000,
        tier_ids=[str(gold)],
        valid_from=opens.isoformat(),
        inventory_total=3,
        per_member_limit=1,
        fulfilment={"partner": "Spa Co"},
    )
    [event] = await catalog_events(session)
    assert (event["type"], event["version"], event["brand_id"], event["subject_id"]) == (
        "perk.updated",
        1,
        str(brand.id),
        None,
    )
    assert datetime.fromisoformat(event["occurred_at"]) == datetime.fromisoformat(
        perk["created_at"]
    )
    # The catalog view: no image or fulfilment settings (those are the brand's business).
    assert event["data"] == {
        "perk_id": perk["id"],
        "name": "Spa day",
        "description": "A day at the spa",
        "category": "wellness",
        "tags": ["spa", "relax"],
        "kind": "experience_access",
        "cost_points": 2_000,
        "tier_ids": [str(gold)],
        "valid_from": perk["valid_from"],
        "valid_until": None,
        "inventory_remaining": 3,
        "per_member_limit": 1,
        "is_birthday_gift": False,
        "active": True,
    }


async def test_an_update_tells_the_perk_as_it_is_after_it(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    program: Program,
    member: MemberFixture,
) -> None:
    perk = await create_perk(client, brand, inventory_total=5)
    await give(session, program, member.id, 500)
    assert (await redeem(client, member, perk["id"])).status_code == 201
    changed = await client.patch(
        f"/rewards/v1/perks/{perk['id']}",
        json={"inventory_total": 8, "tags": ["Tote"], "active": False},
        headers=brand.headers,
    )
    assert changed.status_code == 200, changed.text
    created, updated = await catalog_events(session)
    assert created["data"]["inventory_remaining"] == 5
    assert {k: updated["data"][k] for k in ("inventory_remaining", "tags", "active", "name")} == {
        "inventory_remaining": 7,  # the new total less the unit the redemption holds
        "tags": ["tote"],
        "active": False,
        "name": "Free tote bag",
    }


async def test_refused_changes_tell_nothing(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture
) -> None:
    perk = await create_perk(client, brand)
    now = utcnow().isoformat()
    for body in (
        {"valid_from": now, "valid_until": now},
        {"tier_ids": ["00000000-0000-0000-0000-000000000001"]},
        {"name": None},
    ):
        response = await client.patch(
            f"/rewards/v1/perks/{perk['id']}", json=body, headers=brand.headers
        )
        assert response.status_code == 422, response.text
    refused = await client.post(
        "/rewards/v1/perks", json={"name": "No category"}, headers=brand.headers
    )
    assert refused.status_code == 422
    assert [e["data"]["perk_id"] for e in await catalog_events(session)] == [perk["id"]]


async def test_deleting_tells_the_perk_is_gone_and_a_refused_delete_tells_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    program: Program,
    member: MemberFixture,
) -> None:
    unused = await create_perk(client, brand, name="Unused")
    used = await create_perk(client, brand, name="Used")
    await give(session, program, member.id, 500)
    assert (await redeem(client, member, used["id"])).status_code == 201

    kept = await client.delete(f"/rewards/v1/perks/{used['id']}", headers=brand.headers)
    assert error(kept) == (409, "PerkInUse")
    deleted = await client.delete(f"/rewards/v1/perks/{unused['id']}", headers=brand.headers)
    assert deleted.status_code == 204
    events = await catalog_events(session)
    assert [(e["data"]["name"], e["data"]["active"]) for e in events] == [
        ("Unused", True),
        ("Used", True),
        ("Unused", False),
    ]
    assert {k: v for k, v in events[2]["data"].items() if k != "active"} == {
        k: v for k, v in events[0]["data"].items() if k != "active"
    }
