"""The member's batch reads by id (`?ids=`) of perks, drops and redemptions, and the filters of
the member's catalog view, which narrow in SQL so that pages stay full."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.db import Database
from services.rewards.models import Program
from tests.conftest import BrandFixture, MemberFixture
from tests.rewards.conftest import MakeMember
from tests.rewards.perk_helpers import create_perk, give, make_tier, redeem, set_tier


@contextmanager
def statements(database: Database) -> Iterator[list[str]]:
    """Every SQL statement the app runs inside the block."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])

    engine = database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def ids_of(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def test_perks_by_id_are_exactly_those_asked_for_as_the_member_sees_them(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
    member: MemberFixture,
    program: Program,
    engine_database: Database,
) -> None:
    await give(session, program, member.id, 150)
    cheap = (await create_perk(client, brand, name="Cheap", cost_points=100))["id"]
    pricey = (await create_perk(client, brand, name="Pricey", cost_points=500))["id"]
    withdrawn = (await create_perk(client, brand, name="Gone", active=False))["id"]
    await create_perk(client, brand, name="Not asked for")
    foreign = (await create_perk(client, other_brand, name="Theirs"))["id"]

    asked = [pricey, foreign, str(uuid.uuid4()), withdrawn, cheap]
    response = await client.get(
        "/rewards/v1/me/perks", params={"ids": asked}, headers=member.headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next"] is None
    assert [(p["name"], p["redeemable"], p["reason"]) for p in body["items"]] == [
        ("Cheap", True, None),
        ("Pricey", False, "InsufficientPoints"),
        ("Gone", False, "PerkNotFound"),
    ]
    assert body["items"][2]["reason_detail"] == "This perk has been withdrawn from the catalog."

    # One read whatever the number of ids: the perks and the member's view of them in one query.
    with statements(engine_database) as one:
        await client.get("/rewards/v1/me/perks", params={"ids": [cheap]}, headers=member.headers)
    with statements(engine_database) as three:
        await client.get(
            "/rewards/v1/me/perks",
            params={"ids": [cheap, pricey, withdrawn]},
            headers=member.headers,
        )
    assert len(one) == len(three)
    assert sum("FROM rewards.perks" in s for s in three) == 1


async def test_more_than_a_hundred_ids_are_refused(
    client: httpx.AsyncClient, member: MemberFixture
) -> None:
    ids = [str(uuid.uuid4()) for _ in range(101)]
    for path in ("/rewards/v1/me/perks", "/rewards/v1/me/drops", "/rewards/v1/me/redemptions"):
        response = await client.get(path, params={"ids": ids}, headers=member.headers)
        assert (response.status_code, response.json()["error"]) == (422, "ValidationError")
        hundred = await client.get(path, params={"ids": ids[:100]}, headers=member.headers)
        assert hundred.json() == {"items": [], "next": None, "previous": None}


async def test_redemptions_and_drops_by_id_are_only_the_members_own_and_the_brands(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
    member: MemberFixture,
    make_member: MakeMember,
    program: Program,
) -> None:
    other = await make_member("crm-2")
    await give(session, program, member.id, 1_000)
    await give(session, program, other.id, 1_000)
    perk = (await create_perk(client, brand, cost_points=10))["id"]
    mine = (await redeem(client, member, perk)).json()["id"]
    theirs = (await redeem(client, other, perk)).json()["id"]
    response = await client.get(
        "/rewards/v1/me/redemptions", params={"ids": [theirs, mine]}, headers=member.headers
    )
    assert ids_of(response) == [mine]
    assert response.json()["items"][0]["points"] == 10

    now_perk = (await create_perk(client, brand, name="Scarce"))["id"]
    drop = await client.post(
        "/rewards/v1/drops",
        json={
            "perk_id": now_perk,
            "method": "queue",
            "units": 1,
            "opens_at": "2020-01-01T00:00:00Z",
            "closes_at": "2100-01-01T00:00:00Z",
        },
        headers=brand.headers,
    )
    assert drop.status_code == 201, drop.text
    drop_id = drop.json()["id"]
    entered = await client.post(f"/rewards/v1/me/drops/{drop_id}/entries", headers=member.headers)
    assert entered.status_code == 201, entered.text
    foreign_perk = (await create_perk(client, other_brand))["id"]
    foreign_drop = await client.post(
        "/rewards/v1/drops",
        json={
            "perk_id": foreign_perk,
            "method": "queue",
            "units": 1,
            "opens_at": "2020-01-01T00:00:00Z",
            "closes_at": "2100-01-01T00:00:00Z",
        },
        headers=other_brand.headers,
    )
    assert foreign_drop.status_code == 201
    response = await client.get(
        "/rewards/v1/me/drops",
        params={"ids": [foreign_drop.json()["id"], drop_id]},
        headers=member.headers,
    )
    assert ids_of(response) == [drop_id]
    assert response.json()["items"][0]["entry"]["member_id"] == str(member.id)
    theirs_view = await client.get(
        "/rewards/v1/me/drops", params={"ids": [drop_id]}, headers=other.headers
    )
    assert theirs_view.json()["items"][0]["entry"] is None


async def test_the_catalog_filters_by_category_affordability_and_tier_in_full_pages(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    program: Program,
) -> None:
    gold = await make_tier(session, brand.id, "Gold", 1)
    silver = await make_tier(session, brand.id, "Silver", 0)
    await set_tier(session, member.id, silver)
    await give(session, program, member.id, 200)
    names: dict[str, str] = {}
    for name, category, cost, tiers in [
        ("Tote", "gifts", 100, []),
        ("Mug", "gifts", 300, []),
        ("Lipstick", "makeup", 150, []),
        ("Gold tote", "gifts", 50, [str(gold)]),
        ("Pen", "gifts", 200, []),
    ]:
        created = await create_perk(
            client, brand, name=name, category=category, cost_points=cost, tier_ids=tiers
        )
        names[created["id"]] = name

    async def names_of(**params: Any) -> list[str]:
        response = await client.get("/rewards/v1/me/perks", params=params, headers=member.headers)
        return [names[i] for i in ids_of(response)]

    assert await names_of(all="true", category="gifts") == ["Tote", "Mug", "Gold tote", "Pen"]
    assert await names_of(all="true", affordable="true") == ["Tote", "Lipstick", "Gold tote", "Pen"]
    assert await names_of(all="true", affordable="false") == ["Mug"]
    assert await names_of(all="true", tier_id=str(gold)) == [
        "Tote",
        "Mug",
        "Lipstick",
        "Gold tote",
        "Pen",
    ]
    assert await names_of(all="true", tier_id=str(silver), category="gifts") == [
        "Tote",
        "Mug",
        "Pen",
    ]
    # Redeemable only (the default): the gold perk and the mug drop out, and a filtered page is
    # still full: the second gift the member can redeem comes on the first page of one.
    first = await client.get(
        "/rewards/v1/me/perks", params={"category": "gifts", "limit": 1}, headers=member.headers
    )
    assert [names[i] for i in ids_of(first)] == ["Tote"]
    second = await client.get(
        "/rewards/v1/me/perks",
        params={"category": "gifts", "limit": 1, "after": first.json()["next"]},
        headers=member.headers,
    )
    assert [names[i] for i in ids_of(second)] == ["Pen"]
    assert second.json()["next"] is None
