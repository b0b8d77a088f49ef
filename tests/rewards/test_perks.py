"""The perks catalog (staff CRUD, codes) and the member's view of what they can redeem now."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.auth import MemberTokenCodec
from services.kernel.clock import utcnow
from services.rewards.models import Drop, DropMethod, DropStatus, Perk, PerkCode, Program
from tests.conftest import BrandFixture, MemberFixture, bearer
from tests.rewards.conftest import MakeMember
from tests.rewards.perk_helpers import (
    create_perk,
    error,
    give,
    make_tier,
    perk_body,
    redeem,
    remaining,
    set_tier,
)


async def perk_count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Perk)) or 0)


async def test_staff_create_read_and_list_perks_with_filters_and_pages(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, program: Program
) -> None:
    gold = await make_tier(session, brand.id, "Gold", 1)
    body = perk_body(
        name="Spa day",
        description="A day at the spa",
        image_url="https://cdn.example.com/spa.png",
        category="experiences",
        tags=["Spa", " relax  time ", "spa"],
        kind="experience_access",
        cost_points=5000,
        tier_ids=[str(gold)],
        valid_from="2030-01-01T00:00:00Z",
        valid_until="2030-02-01T00:00:00+01:00",
        inventory_total=20,
        per_member_limit=1,
        fulfilment={"experience_id": "exp-42", "seats": 2},
    )
    created = await client.post("/rewards/v1/perks", json=body, headers=brand.headers)
    assert created.status_code == 201, created.text
    perk = created.json()
    assert perk == {
        "id": perk["id"],
        "name": "Spa day",
        "description": "A day at the spa",
        "image_url": "https://cdn.example.com/spa.png",
        "category": "experiences",
        "tags": ["spa", "relax time"],
        "kind": "experience_access",
        "cost_points": 5000,
        "tier_ids": [str(gold)],
        "valid_from": "2030-01-01T00:00:00Z",
        "valid_until": "2030-01-31T23:00:00Z",
        "inventory_total": 20,
        "inventory_remaining": 20,
        "per_member_limit": 1,
        "is_birthday_gift": False,
        "fulfilment": {"experience_id": "exp-42", "seats": 2},
        "active": True,
        "created_at": perk["created_at"],
    }
    fetched = await client.get(f"/rewards/v1/perks/{perk['id']}", headers=brand.headers)
    assert fetched.json() == perk

    code_perk = await create_perk(client, brand, kind="discount_code", category="discounts")
    off = await create_perk(client, brand, active=False)
    listed = await client.get("/rewards/v1/perks", params={"limit": 2}, headers=brand.headers)
    assert [p["id"] for p in listed.json()["items"]] == [perk["id"], code_perk["id"]]
    rest = await client.get(
        "/rewards/v1/perks", params={"after": listed.json()["next"]}, headers=brand.headers
    )
    assert [p["id"] for p in rest.json()["items"]] == [off["id"]]
    assert rest.json()["next"] is None

    async def ids(**params: Any) -> list[str]:
        response = await client.get("/rewards/v1/perks", params=params, headers=brand.headers)
        return [p["id"] for p in response.json()["items"]]

    assert await ids(category="discounts") == [code_perk["id"]]
    assert await ids(kind="experience_access") == [perk["id"]]
    assert await ids(active="false") == [off["id"]]
    assert await ids(active="true", category="gifts") == []


@pytest.mark.parametrize(
    ("change", "location"),
    [
        ({"cost_points": 0}, ["body", "cost_points"]),
        ({"cost_points": -5}, ["body", "cost_points"]),
        ({"cost_points": "100"}, ["body", "cost_points"]),
        ({"cost_points": 10.5}, ["body", "cost_points"]),
        ({"image_url": "ftp://example.com/a.png"}, ["body", "image_url"]),
        ({"image_url": "not a url"}, ["body", "image_url"]),
        (
            {"valid_from": "2030-02-01T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z"},
            ["body", "valid_until"],
        ),
        ({"valid_from": "2030-02-01T00:00:00"}, ["body", "valid_from"]),
        ({"kind": "voucher"}, ["body", "kind"]),
        ({"inventory_total": -1}, ["body", "inventory_total"]),
        ({"per_member_limit": 0}, ["body", "per_member_limit"]),
        ({"name": ""}, ["body", "name"]),
        ({"tier_ids": ["gold"]}, ["body", "tier_ids", 0]),
        ({"colour": "red"}, ["body", "colour"]),
    ],
)
async def test_bad_perks_are_refused_and_nothing_is_written(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    change: dict[str, Any],
    location: list[Any],
) -> None:
    response = await client.post(
        "/rewards/v1/perks", json=perk_body(**change), headers=brand.headers
    )
    assert error(response) == (422, "ValidationError")
    assert [d["loc"] for d in response.json()["detail"]] == [location]
    assert await perk_count(session) == 0


async def test_unknown_or_foreign_tiers_are_refused(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
) -> None:
    theirs = await make_tier(session, other_brand.id, "Gold", 1)
    unknown = uuid.uuid4()
    response = await client.post(
        "/rewards/v1/perks",
        json=perk_body(tier_ids=[str(theirs), str(unknown)]),
        headers=brand.headers,
    )
    assert error(response) == (422, "UnknownTier")
    detail = response.json()["detail"]
    assert detail[0]["loc"] == ["body", "tier_ids"]
    assert str(theirs) in detail[0]["msg"]
    assert str(unknown) in detail[0]["msg"]
    assert await perk_count(session) == 0


async def test_patch_changes_fields_and_recomputes_the_remaining_inventory(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    program: Program,
) -> None:
    perk = await create_perk(client, brand, inventory_total=10)
    await give(session, program, member.id, 1_000)
    for _ in range(2):
        assert (await redeem(client, member, perk["id"])).status_code == 201
    assert await remaining(session, perk["id"]) == 8
    url = f"/rewards/v1/perks/{perk['id']}"

    changed = await client.patch(
        url,
        json={"name": "Big tote", "inventory_total": 5, "tags": ["Bags"], "image_url": None},
        headers=brand.headers,
    )
    assert changed.status_code == 200, changed.text
    assert {k: changed.json()[k] for k in ("name", "inventory_total", "inventory_remaining")} == {
        "name": "Big tote",
        "inventory_total": 5,
        "inventory_remaining": 3,
    }
    assert changed.json()["tags"] == ["bags"]

    too_low = await client.patch(url, json={"inventory_total": 1}, headers=brand.headers)
    assert error(too_low) == (422, "InventoryTooLow")
    assert too_low.json()["detail"][0]["loc"] == ["body", "inventory_total"]
    assert "2 units are already redeemed" in too_low.json()["detail"][0]["msg"]

    unlimited = await client.patch(url, json={"inventory_total": None}, headers=brand.headers)
    assert (unlimited.json()["inventory_total"], unlimited.json()["inventory_remaining"]) == (
        None,
        None,
    )
    again = await client.patch(url, json={"inventory_total": 2}, headers=brand.headers)
    assert again.json()["inventory_remaining"] == 0

    window = await client.patch(
        url, json={"valid_from": "2030-01-01T00:00:00Z"}, headers=brand.headers
    )
    assert window.status_code == 200
    inverted = await client.patch(
        url, json={"valid_until": "2029-12-31T00:00:00Z"}, headers=brand.headers
    )
    assert error(inverted) == (422, "ValidationError")
    assert inverted.json()["detail"][0]["loc"] == ["body", "valid_until"]

    for bad, loc in [
        ({"name": None}, ["body", "name"]),
        ({"cost_points": 0}, ["body", "cost_points"]),
        ({"kind": "donation"}, ["body", "kind"]),
    ]:
        refused = await client.patch(url, json=bad, headers=brand.headers)
        assert error(refused) == (422, "ValidationError")
        assert refused.json()["detail"][0]["loc"] == loc
    unknown_tier = await client.patch(
        url, json={"tier_ids": [str(uuid.uuid4())]}, headers=brand.headers
    )
    assert error(unknown_tier) == (422, "UnknownTier")

    final = (await client.get(url, headers=brand.headers)).json()
    assert (final["name"], final["valid_until"], final["tier_ids"], final["cost_points"]) == (
        "Big tote",
        None,
        [],
        100,
    )


async def test_delete_only_an_unused_perk(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    program: Program,
) -> None:
    unused = await create_perk(client, brand)
    gone = await client.delete(f"/rewards/v1/perks/{unused['id']}", headers=brand.headers)
    assert gone.status_code == 204
    missing = await client.get(f"/rewards/v1/perks/{unused['id']}", headers=brand.headers)
    assert error(missing) == (404, "PerkNotFound")

    used = await create_perk(client, brand)
    await give(session, program, member.id, 100)
    assert (await redeem(client, member, used["id"])).status_code == 201
    refused = await client.delete(f"/rewards/v1/perks/{used['id']}", headers=brand.headers)
    assert error(refused) == (409, "PerkInUse")
    assert await perk_count(session) == 1


async def test_codes_go_to_a_discount_perk_pool_once_each(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture
) -> None:
    product = await create_perk(client, brand)
    refused = await client.post(
        f"/rewards/v1/perks/{product['id']}/codes", json={"codes": ["A"]}, headers=brand.headers
    )
    assert error(refused) == (409, "PerkKindMismatch")

    perk = await create_perk(client, brand, kind="discount_code")
    url = f"/rewards/v1/perks/{perk['id']}/codes"
    first = await client.post(
        url, json={"codes": ["SAVE-1", "SAVE-2", "SAVE-1"]}, headers=brand.headers
    )
    assert first.json() == {"added": 2, "duplicates": 1, "total": 2, "available": 2}
    second = await client.post(url, json={"codes": ["SAVE-2", " SAVE-3 "]}, headers=brand.headers)
    assert second.json() == {"added": 1, "duplicates": 1, "total": 3, "available": 3}
    codes = await session.scalars(select(PerkCode.code).order_by(PerkCode.code))
    assert list(codes) == ["SAVE-1", "SAVE-2", "SAVE-3"]

    for bad in ({"codes": []}, {"codes": [""]}, {"codes": ["x" * 101]}, {"code": "A"}):
        response = await client.post(url, json=bad, headers=brand.headers)
        assert error(response) == (422, "ValidationError")
    unknown = await client.post(
        f"/rewards/v1/perks/{uuid.uuid4()}/codes", json={"codes": ["A"]}, headers=brand.headers
    )
    assert error(unknown) == (404, "PerkNotFound")


async def test_a_full_upload_of_ten_thousand_codes_goes_in(
    client: httpx.AsyncClient, brand: BrandFixture
) -> None:
    perk = await create_perk(client, brand, kind="discount_code")
    url = f"/rewards/v1/perks/{perk['id']}/codes"
    codes = [f"BIG-{n:05d}" for n in range(10_000)]
    first = await client.post(url, json={"codes": codes}, headers=brand.headers)
    assert first.json() == {"added": 10_000, "duplicates": 0, "total": 10_000, "available": 10_000}
    too_many = await client.post(url, json={"codes": [*codes, "ONE-MORE"]}, headers=brand.headers)
    assert error(too_many) == (422, "ValidationError")


async def test_only_staff_with_the_right_scope_run_the_catalog_and_brands_stay_apart(
    client: httpx.AsyncClient,
    brand: BrandFixture,
    other_brand: BrandFixture,
    member: MemberFixture,
) -> None:
    created = await client.post(
        "/members/v1/api-keys",
        json={"name": "reader", "scopes": ["rewards:read"]},
        headers=brand.headers,
    )
    reader = bearer(created.json()["key"])
    refused = await client.post("/rewards/v1/perks", json=perk_body(), headers=reader)
    assert error(refused) == (403, "Forbidden")
    as_member = await client.post("/rewards/v1/perks", json=perk_body(), headers=member.headers)
    assert error(as_member) == (403, "Forbidden")
    assert (await client.post("/rewards/v1/perks", json=perk_body())).status_code == 401

    perk = await create_perk(client, brand)
    assert (await client.get("/rewards/v1/perks", headers=reader)).status_code == 200
    theirs = await client.get(f"/rewards/v1/perks/{perk['id']}", headers=other_brand.headers)
    assert error(theirs) == (404, "PerkNotFound")
    patched = await client.patch(
        f"/rewards/v1/perks/{perk['id']}", json={"name": "Mine"}, headers=other_brand.headers
    )
    assert error(patched) == (404, "PerkNotFound")
    listed = await client.get("/rewards/v1/perks", headers=other_brand.headers)
    assert listed.json()["items"] == []


async def test_the_member_sees_what_they_can_redeem_now_and_why_not_the_rest(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    program: Program,
) -> None:
    now = utcnow()
    gold = await make_tier(session, brand.id, "Gold", 1)
    silver = await make_tier(session, brand.id, "Silver", 0)
    await set_tier(session, member.id, silver)
    await give(session, program, member.id, 500)

    async def perk(**changes: Any) -> str:
        return str((await create_perk(client, brand, **changes))["id"])

    ok = await perk(name="ok", cost_points=500)
    birthday = await perk(name="birthday", is_birthday_gift=True)
    dropped = await perk(name="dropped", inventory_total=5)
    later = await perk(name="later", valid_from=(now + timedelta(days=1)).isoformat())
    expired = await perk(
        name="expired",
        valid_from=(now - timedelta(days=10)).isoformat(),
        valid_until=(now - timedelta(days=1)).isoformat(),
    )
    gold_only = await perk(name="gold only", tier_ids=[str(gold)])
    limited = await perk(name="limited", per_member_limit=1, cost_points=10)
    sold_out = await perk(name="sold out", inventory_total=0)
    no_codes = await perk(name="no codes", kind="discount_code")
    pricey = await perk(name="pricey", cost_points=501)
    await create_perk(client, brand, name="hidden", active=False)

    session.add(
        Drop(
            id=uuid.uuid4(),
            brand_id=brand.id,
            perk_id=uuid.UUID(dropped),
            method=DropMethod.DRAW,
            units=1,
            opens_at=now + timedelta(days=1),
            closes_at=now + timedelta(days=2),
            seed="s" * 16,
            status=DropStatus.SCHEDULED,
            early_tier_ids=[],
        )
    )
    await session.flush()
    assert (await redeem(client, member, limited)).status_code == 201  # 490 points left

    mine = await client.get("/rewards/v1/me/perks", headers=member.headers)
    assert mine.status_code == 200
    assert [p["name"] for p in mine.json()["items"]] == []  # 490 < 500: even "ok" is out now

    await give(session, program, member.id, 10)  # back to 500
    mine = await client.get("/rewards/v1/me/perks", headers=member.headers)
    assert [(p["id"], p["redeemable"], p["reason"]) for p in mine.json()["items"]] == [
        (ok, True, None)
    ]

    everything = await client.get(
        "/rewards/v1/me/perks", params={"all": "true"}, headers=member.headers
    )
    reasons = {p["id"]: (p["redeemable"], p["reason"]) for p in everything.json()["items"]}
    assert reasons == {
        ok: (True, None),
        birthday: (False, "BirthdayGiftOnly"),
        dropped: (False, "DropOnly"),
        later: (False, "PerkNotAvailable"),
        expired: (False, "PerkNotAvailable"),
        gold_only: (False, "TierNotEligible"),
        limited: (False, "RedemptionLimitReached"),
        sold_out: (False, "OutOfStock"),
        no_codes: (False, "OutOfStock"),
        pricey: (False, "InsufficientPoints"),
    }
    details = {p["id"]: p["reason_detail"] for p in everything.json()["items"]}
    assert details[gold_only] == (
        "Only members of these tiers may redeem this perk: Gold; the member's tier is Silver."
    )
    assert details[pricey] == "This perk costs 501 points; the member has 500 available."
    assert details[later].startswith("This perk opens at ")
    by_id = {p["id"]: p for p in everything.json()["items"]}
    assert by_id[limited]["redeemed_by_me"] == 1

    await set_tier(session, member.id, gold)
    await session.execute(update(Perk).where(Perk.id == uuid.UUID(pricey)).values(cost_points=5))
    paged = await client.get("/rewards/v1/me/perks", params={"limit": 1}, headers=member.headers)
    assert [p["id"] for p in paged.json()["items"]] == [ok]
    tail = await client.get(
        "/rewards/v1/me/perks",
        params={"limit": 1, "after": paged.json()["next"]},
        headers=member.headers,
    )
    assert [p["id"] for p in tail.json()["items"]] == [gold_only]
    last = await client.get(
        "/rewards/v1/me/perks",
        params={"limit": 5, "after": tail.json()["next"]},
        headers=member.headers,
    )
    assert [p["id"] for p in last.json()["items"]] == [pricey]
    assert last.json()["next"] is None


async def test_a_staff_key_cannot_browse_as_a_member_and_an_unknown_member_gets_404(
    client: httpx.AsyncClient,
    brand: BrandFixture,
    make_member: MakeMember,
    program: Program,
    tokens: MemberTokenCodec,
) -> None:
    refused = await client.get("/rewards/v1/me/perks", headers=brand.headers)
    assert error(refused) == (403, "Forbidden")
    stranger = tokens.issue(brand.id, uuid.uuid4(), timedelta(minutes=5))
    missing = await client.get("/rewards/v1/me/perks", headers=bearer(stranger))
    assert error(missing) == (404, "MemberNotFound")
