"""Redeeming perks (members and staff), every refusal, codes, listings and cancellation."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.rewards.errors import NotCancellable
from services.rewards.ledger.service import ledger_matches
from services.rewards.models import (
    Drop,
    DropMethod,
    DropStatus,
    LedgerEntry,
    PerkCode,
    Program,
    Redemption,
)
from services.rewards.perks import service
from tests.conftest import BrandFixture, MemberFixture, bearer
from tests.rewards.conftest import MakeMember, rewards_events, sync_members
from tests.rewards.perk_helpers import (
    balance,
    create_perk,
    error,
    give,
    make_tier,
    redeem,
    redemption_count,
    remaining,
    set_tier,
)


async def perk_events(session: AsyncSession) -> list[tuple[str, dict[str, Any]]]:
    return [(t, d) for t, d in await rewards_events(session) if not t.startswith("member.")]


async def test_a_member_redeems_a_perk_once_per_key(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    program: Program,
) -> None:
    perk = await create_perk(client, brand, name="Tote", cost_points=300, inventory_total=5)
    await give(session, program, member.id, 1_000)
    before = len(await perk_events(session))

    first = await redeem(client, member, perk["id"], key="r-1")
    assert first.status_code == 201, first.text
    body = first.json()
    assert body == {
        "id": body["id"],
        "member_id": str(member.id),
        "perk_id": perk["id"],
        "points": 300,
        "status": "completed",
        "has_code": False,
        "code": None,
        "drop_id": None,
        "created_at": body["created_at"],
        "cancelled_at": None,
    }
    assert await balance(session, member.id) == 700
    assert await remaining(session, perk["id"]) == 4
    events = (await perk_events(session))[before:]
    assert [t for t, _ in events] == ["points.redeemed", "perk.redeemed"]
    assert events[0][1]["points"] == -300
    assert events[0][1]["reason"] == "Redeemed: Tote"
    assert events[0][1]["source_id"] == body["id"]
    assert events[1][1] == {
        "member_id": str(member.id),
        "redemption_id": body["id"],
        "perk_id": perk["id"],
        "perk_name": "Tote",
        "category": "gifts",
        "points": 300,
        "drop_id": None,
    }

    replay = await redeem(client, member, perk["id"], key="r-1")
    assert replay.status_code == 201
    assert replay.content == first.content
    assert replay.headers["Idempotent-Replayed"] == "true"
    other_perk = await create_perk(client, brand)
    reused = await redeem(client, member, other_perk["id"], key="r-1")
    assert error(reused) == (409, "IdempotencyKeyReused")
    assert await redemption_count(session) == 1
    assert await balance(session, member.id) == 700
    assert await ledger_matches(session, member.id)


async def test_two_members_with_the_same_key_do_not_meet(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    make_member: MakeMember,
    program: Program,
) -> None:
    other = await make_member("crm-2")
    perk = await create_perk(client, brand)
    for someone in (member, other):
        await give(session, program, someone.id, 100)
    mine = await redeem(client, member, perk["id"], key="same")
    theirs = await redeem(client, other, perk["id"], key="same")
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert theirs.json()["member_id"] == str(other.id)
    assert mine.json()["id"] != theirs.json()["id"]


async def test_a_redemption_needs_an_idempotency_key(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    program: Program,
) -> None:
    perk = await create_perk(client, brand)
    await give(session, program, member.id, 100)
    response = await client.post(
        "/rewards/v1/me/redemptions", json={"perk_id": perk["id"]}, headers=member.headers
    )
    assert error(response) == (422, "ValidationError")
    assert [d["loc"] for d in response.json()["detail"]] == [["header", "Idempotency-Key"]]
    bad_body = await client.post(
        "/rewards/v1/me/redemptions",
        json={"perk_id": perk["id"], "quantity": 2},
        headers={**member.headers, "Idempotency-Key": "k"},
    )
    assert error(bad_body) == (422, "ValidationError")
    assert await redemption_count(session) == 0


REFUSALS: list[tuple[str, dict[str, Any], tuple[int, str]]] = [
    ("not yet open", {"valid_from": "+1d"}, (409, "PerkNotAvailable")),
    ("expired", {"valid_from": "-2d", "valid_until": "-1d"}, (409, "PerkNotAvailable")),
    ("out of stock", {"inventory_total": 0}, (409, "OutOfStock")),
    ("empty code pool", {"kind": "discount_code"}, (409, "OutOfStock")),
    ("above the tier", {"tier_ids": "gold"}, (403, "TierNotEligible")),
    ("insufficient points", {"cost_points": 1_001}, (409, "InsufficientPoints")),
    ("inactive", {"active": False}, (404, "PerkNotFound")),
    ("birthday gift", {"is_birthday_gift": True}, (409, "BirthdayGiftOnly")),
    ("drop only", {"inventory_total": 3, "drop": True}, (409, "DropOnly")),
]


@pytest.mark.parametrize(("case", "changes", "expected"), REFUSALS, ids=[r[0] for r in REFUSALS])
async def test_each_refusal_has_its_code_and_writes_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    program: Program,
    case: str,
    changes: dict[str, Any],
    expected: tuple[int, str],
) -> None:
    now = utcnow()
    changes = dict(changes)
    for field in ("valid_from", "valid_until"):
        if field in changes:
            days = int(changes[field][:-1])
            changes[field] = (now + timedelta(days=days)).isoformat()
    if changes.get("tier_ids") == "gold":
        changes["tier_ids"] = [str(await make_tier(session, brand.id, "Gold", 1))]
    drop = changes.pop("drop", False)
    perk = await create_perk(client, brand, **changes)
    if drop:
        session.add(
            Drop(
                id=uuid.uuid4(),
                brand_id=brand.id,
                perk_id=uuid.UUID(perk["id"]),
                method=DropMethod.QUEUE,
                units=1,
                opens_at=now,
                closes_at=now + timedelta(hours=1),
                seed="x" * 16,
                status=DropStatus.SCHEDULED,
                early_tier_ids=[],
            )
        )
        await session.flush()
    await give(session, program, member.id, 1_000)
    entries_before = await session.scalar(select(func.count()).select_from(LedgerEntry))
    events_before = len(await perk_events(session))

    response = await redeem(client, member, perk["id"])
    assert error(response) == expected
    if case in ("not yet open", "expired"):
        detail = response.json()["detail"]
        assert set(detail) == {"message", "valid_from", "valid_until"}
        assert datetime.fromisoformat(detail["valid_from"]) == datetime.fromisoformat(
            changes["valid_from"]
        )
        assert detail["message"].startswith(
            "This perk opens at " if case == "not yet open" else "This perk expired at "
        )
    assert await redemption_count(session) == 0
    assert await balance(session, member.id) == 1_000
    assert await remaining(session, perk["id"]) == changes.get("inventory_total")
    assert await session.scalar(select(func.count()).select_from(LedgerEntry)) == entries_before
    assert len(await perk_events(session)) == events_before


async def test_the_per_member_limit_and_an_unknown_perk(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
    member: MemberFixture,
    program: Program,
) -> None:
    perk = await create_perk(client, brand, per_member_limit=2, cost_points=10)
    await give(session, program, member.id, 100)
    for _ in range(2):
        assert (await redeem(client, member, perk["id"])).status_code == 201
    third = await redeem(client, member, perk["id"])
    assert error(third) == (409, "RedemptionLimitReached")
    assert third.json()["detail"] == (
        "This perk allows 2 redemptions per member; the member has 2."
    )
    assert await balance(session, member.id) == 80

    unknown = await redeem(client, member, uuid.uuid4())
    assert error(unknown) == (404, "PerkNotFound")
    foreign = await client.post(
        "/rewards/v1/perks",
        json={"name": "x", "category": "x", "kind": "custom", "cost_points": 1},
        headers=other_brand.headers,
    )
    assert error(await redeem(client, member, foreign.json()["id"])) == (404, "PerkNotFound")
    assert await redemption_count(session) == 2


async def test_tiers_that_may_redeem(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    program: Program,
) -> None:
    gold = await make_tier(session, brand.id, "Gold", 2)
    silver = await make_tier(session, brand.id, "Silver", 1)
    perk = await create_perk(client, brand, tier_ids=[str(gold)])
    await give(session, program, member.id, 500)
    no_tier = await redeem(client, member, perk["id"])
    assert no_tier.json()["detail"] == (
        "Only members of these tiers may redeem this perk: Gold; the member has no tier yet."
    )
    await set_tier(session, member.id, silver)
    assert error(await redeem(client, member, perk["id"])) == (403, "TierNotEligible")
    await set_tier(session, member.id, gold)
    assert (await redeem(client, member, perk["id"])).status_code == 201


async def test_a_suspended_member_cannot_redeem(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    program: Program,
) -> None:
    perk = await create_perk(client, brand)
    await give(session, program, member.id, 500)
    await client.post(f"/members/v1/members/{member.id}/suspend", headers=brand.headers)
    await sync_members(session)
    assert error(await redeem(client, member, perk["id"])) == (403, "MemberSuspended")
    await client.post(f"/members/v1/members/{member.id}/erase", headers=brand.headers)
    await sync_members(session)
    assert error(await redeem(client, member, perk["id"])) == (404, "MemberNotFound")
    assert await redemption_count(session) == 0


async def test_discount_codes_come_from_the_pool_one_each(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    program: Program,
) -> None:
    perk = await create_perk(
        client, brand, kind="discount_code", inventory_total=10, cost_points=10
    )
    await client.post(
        f"/rewards/v1/perks/{perk['id']}/codes",
        json={"codes": ["C-1", "C-2"]},
        headers=brand.headers,
    )
    await give(session, program, member.id, 100)
    first = await redeem(client, member, perk["id"])
    second = await redeem(client, member, perk["id"])
    assert [(r.json()["code"], r.json()["has_code"]) for r in (first, second)] == [
        ("C-1", True),
        ("C-2", True),
    ]
    empty = await redeem(client, member, perk["id"])
    assert error(empty) == (409, "OutOfStock")
    assert empty.json()["detail"] == "This perk has no discount codes left."
    assert await remaining(session, perk["id"]) == 8  # the third take was rolled back
    assert await balance(session, member.id) == 80
    holders = await session.execute(
        select(PerkCode.code, Redemption.member_id)
        .join(Redemption, Redemption.id == PerkCode.redemption_id)
        .order_by(PerkCode.code)
    )
    assert [tuple(r) for r in holders] == [("C-1", member.id), ("C-2", member.id)]


async def test_staff_redeem_for_a_member_and_list_redemptions(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    make_member: MakeMember,
    program: Program,
) -> None:
    perk = await create_perk(client, brand, cost_points=10)
    other = await make_member("crm-2")
    await give(session, program, member.id, 100)
    await give(session, program, other.id, 100)
    url = f"/rewards/v1/members/{member.id}/redemptions"
    headers = {**brand.headers, "Idempotency-Key": "staff-1"}
    made = await client.post(url, json={"perk_id": perk["id"]}, headers=headers)
    assert made.status_code == 201, made.text
    replay = await client.post(url, json={"perk_id": perk["id"]}, headers=headers)
    assert replay.content == made.content
    missing_key = await client.post(url, json={"perk_id": perk["id"]}, headers=brand.headers)
    assert error(missing_key) == (422, "ValidationError")
    as_member = await client.post(
        url, json={"perk_id": perk["id"]}, headers={**member.headers, "Idempotency-Key": "m"}
    )
    assert error(as_member) == (403, "Forbidden")
    unknown = await client.post(
        f"/rewards/v1/members/{uuid.uuid4()}/redemptions",
        json={"perk_id": perk["id"]},
        headers={**brand.headers, "Idempotency-Key": "staff-2"},
    )
    assert error(unknown) == (404, "MemberNotFound")

    second = await redeem(client, member, perk["id"])
    await redeem(client, other, perk["id"])
    cancelled = await client.post(
        f"/rewards/v1/redemptions/{made.json()['id']}/cancel", headers=brand.headers
    )
    assert cancelled.status_code == 200

    mine = await client.get("/rewards/v1/me/redemptions", headers=member.headers)
    assert [r["id"] for r in mine.json()["items"]] == [second.json()["id"], made.json()["id"]]
    page = await client.get(
        "/rewards/v1/me/redemptions", params={"limit": 1}, headers=member.headers
    )
    older = await client.get(
        "/rewards/v1/me/redemptions",
        params={"limit": 1, "after": page.json()["next"]},
        headers=member.headers,
    )
    assert [r["id"] for r in older.json()["items"]] == [made.json()["id"]]
    completed = await client.get(url, params={"status": "completed"}, headers=brand.headers)
    assert [r["id"] for r in completed.json()["items"]] == [second.json()["id"]]
    staff_all = await client.get(url, headers=brand.headers)
    assert [r["status"] for r in staff_all.json()["items"]] == ["completed", "cancelled"]


async def test_staff_cancel_refunds_returns_the_unit_and_twice_changes_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    program: Program,
) -> None:
    perk = await create_perk(client, brand, name="Tote", cost_points=250, inventory_total=3)
    await give(session, program, member.id, 1_000)
    made = (await redeem(client, member, perk["id"])).json()
    assert (await balance(session, member.id), await remaining(session, perk["id"])) == (750, 2)
    before = len(await perk_events(session))

    url = f"/rewards/v1/redemptions/{made['id']}/cancel"
    cancelled = await client.post(url, headers=brand.headers)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["cancelled_at"] is not None
    assert (await balance(session, member.id), await remaining(session, perk["id"])) == (1_000, 3)
    events = (await perk_events(session))[before:]
    assert [t for t, _ in events] == ["points.adjusted", "perk.redemption_cancelled"]
    assert (events[0][1]["kind"], events[0][1]["points"], events[0][1]["reason"]) == (
        "refund",
        250,
        "Refund: Tote cancelled",
    )
    assert events[1][1]["redemption_id"] == made["id"]

    again = await client.post(url, headers=brand.headers)
    assert again.status_code == 200
    assert again.json() == cancelled.json()
    assert (await balance(session, member.id), await remaining(session, perk["id"])) == (1_000, 3)
    assert len(await perk_events(session)) == before + 2
    assert await ledger_matches(session, member.id)
    missing = await client.post(
        f"/rewards/v1/redemptions/{uuid.uuid4()}/cancel", headers=brand.headers
    )
    assert error(missing) == (404, "RedemptionNotFound")
    by_member = await client.post(url, headers=member.headers)
    assert error(by_member) == (403, "Forbidden")


async def test_a_cancelled_code_returns_to_the_pool_only_if_never_revealed(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    program: Program,
) -> None:
    perk = await create_perk(client, brand, kind="discount_code", cost_points=10)
    await client.post(
        f"/rewards/v1/perks/{perk['id']}/codes", json={"codes": ["A", "B"]}, headers=brand.headers
    )
    await give(session, program, member.id, 100)
    revealed = (await redeem(client, member, perk["id"])).json()
    assert revealed["code"] == "A"
    await client.post(f"/rewards/v1/redemptions/{revealed['id']}/cancel", headers=brand.headers)
    free = select(PerkCode.code).where(PerkCode.redemption_id.is_(None))
    assert list(await session.scalars(free)) == ["B"]  # A was shown: retired

    # A code granted by the system (a drop win, a gift) stays hidden until the member reveals it.
    hidden = await service.redeem(
        session,
        brand.id,
        member.id,
        uuid.UUID(perk["id"]),
        channel=service.Channel.DROP,
        members=None,
    )
    assert hidden.code == "B"
    listed = await client.get("/rewards/v1/me/redemptions", headers=member.headers)
    assert (listed.json()["items"][0]["has_code"], listed.json()["items"][0]["code"]) == (
        True,
        None,
    )
    await client.post(f"/rewards/v1/redemptions/{hidden.id}/cancel", headers=brand.headers)
    assert list(await session.scalars(free)) == ["B"]  # never shown: back in the pool
    after_cancel = await client.post(
        f"/rewards/v1/me/redemptions/{hidden.id}/reveal", headers=member.headers
    )
    assert after_cancel.json()["code"] is None  # a pooled code is never shown again

    again = await service.redeem(
        session,
        brand.id,
        member.id,
        uuid.UUID(perk["id"]),
        channel=service.Channel.DROP,
        members=None,
    )
    shown = await client.post(
        f"/rewards/v1/me/redemptions/{again.id}/reveal", headers=member.headers
    )
    assert (shown.status_code, shown.json()["code"]) == (200, "B")
    listed = await client.get("/rewards/v1/me/redemptions", headers=member.headers)
    assert listed.json()["items"][0]["code"] == "B"
    await client.post(f"/rewards/v1/redemptions/{again.id}/cancel", headers=brand.headers)
    assert list(await session.scalars(free)) == []


async def test_a_member_cancels_their_own_within_the_window(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    make_member: MakeMember,
    program: Program,
) -> None:
    perk = await create_perk(client, brand, cost_points=100, inventory_total=5)
    other = await make_member("crm-2")
    await give(session, program, member.id, 1_000)
    made = (await redeem(client, member, perk["id"])).json()
    theirs = await client.post(
        f"/rewards/v1/me/redemptions/{made['id']}/cancel", headers=other.headers
    )
    assert error(theirs) == (404, "RedemptionNotFound")
    mine = await client.post(
        f"/rewards/v1/me/redemptions/{made['id']}/cancel", headers=member.headers
    )
    assert (mine.status_code, mine.json()["status"]) == (200, "cancelled")
    assert await balance(session, member.id) == 1_000

    late = (await redeem(client, member, perk["id"])).json()
    created = (await session.get(Redemption, uuid.UUID(late["id"]))).created_at  # type: ignore[union-attr]
    with pytest.raises(NotCancellable) as refused:
        await service.cancel_redemption(
            session,
            brand.id,
            uuid.UUID(late["id"]),
            member_id=member.id,
            now=created + service.MEMBER_CANCEL_WINDOW + timedelta(seconds=1),
        )
    assert (
        refused.value.detail["cancellable_until"]
        == (created + service.MEMBER_CANCEL_WINDOW).isoformat()
    )
    in_time = await service.cancel_redemption(
        session,
        brand.id,
        uuid.UUID(late["id"]),
        member_id=member.id,
        now=created + service.MEMBER_CANCEL_WINDOW,
    )
    assert in_time.status.value == "cancelled"

    codes = await create_perk(client, brand, kind="discount_code", cost_points=10)
    await client.post(
        f"/rewards/v1/perks/{codes['id']}/codes", json={"codes": ["Z"]}, headers=brand.headers
    )
    coded = (await redeem(client, member, codes["id"])).json()
    shown = await client.post(
        f"/rewards/v1/me/redemptions/{coded['id']}/cancel", headers=member.headers
    )
    assert error(shown) == (409, "NotCancellable")
    assert shown.json()["detail"] == (
        "Its discount code has been shown and may be in use; ask the brand's staff."
    )
    won = await service.redeem(
        session,
        brand.id,
        member.id,
        uuid.UUID(perk["id"]),
        channel=service.Channel.DROP,
        drop_id=uuid.uuid4(),
        members=None,
    )
    from_drop = await client.post(
        f"/rewards/v1/me/redemptions/{won.id}/cancel", headers=member.headers
    )
    assert error(from_drop) == (409, "NotCancellable")
    assert await balance(session, member.id) == 1_000 - 10 - 100
    assert await ledger_matches(session, member.id)


async def test_a_brand_never_reaches_another_brands_redemptions(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
    member: MemberFixture,
    program: Program,
) -> None:
    perk = await create_perk(client, brand)
    await give(session, program, member.id, 100)
    made = (await redeem(client, member, perk["id"])).json()
    cancel = await client.post(
        f"/rewards/v1/redemptions/{made['id']}/cancel", headers=other_brand.headers
    )
    assert error(cancel) == (404, "RedemptionNotFound")
    listed = await client.get(
        f"/rewards/v1/members/{member.id}/redemptions", headers=other_brand.headers
    )
    assert error(listed) == (404, "MemberNotFound")
    anonymous = await client.get("/rewards/v1/me/redemptions", headers=bearer("nope"))
    assert anonymous.status_code == 401
    assert await redemption_count(session, status="completed") == 1


async def test_idempotency_keys_belong_to_their_sender(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    program: Program,
) -> None:
    # A staff caller sending what looks like a member's namespaced key claims nothing of theirs.
    perk = await create_perk(client, brand, cost_points=10)
    await give(session, program, member.id, 100)
    staff = await client.post(
        f"/rewards/v1/members/{member.id}/redemptions",
        json={"perk_id": perk["id"]},
        headers={**brand.headers, "Idempotency-Key": f"member:{member.id}:k"},
    )
    mine = await redeem(client, member, perk["id"], key="k")
    assert (staff.status_code, mine.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in mine.headers
    assert staff.json()["id"] != mine.json()["id"]
    assert await balance(session, member.id) == 80
