"""Returns: full or partial, by amount or by line; points reversed in proportion, exactly in
total; from pending while pending, else from available even below zero; idempotent by return id.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.rewards.ledger import service as ledger
from services.rewards.ledger.service import Movement
from services.rewards.models import Bucket, EntryKind, LedgerEntry, Lot, Program
from tests.conftest import BrandFixture, MemberFixture
from tests.rewards.conftest import rewards_events
from tests.rewards.points_helpers import set_program
from tests.rewards.purchase_helpers import (
    balance,
    buy,
    counts,
    give_back,
    line,
    make_rule,
    make_tier,
    purchase,
    returned,
)


async def test_returning_everything_in_parts_reverses_exactly_what_was_earned(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    await set_program(session, brand.id, points_per_unit=7)
    # 100.00 EUR x 7 = 700 pts; thirds of 33.33 / 33.33 / 33.34 EUR.
    await buy(client, brand, purchase(member, "A-1", 10_000))
    first = await give_back(client, brand, returned("A-1", "R-1", 3_333))
    assert first["points_reversed"] == 233  # floor(700 x 3333 / 10000) = floor(233.31)
    second = await give_back(client, brand, returned("A-1", "R-2", 3_333))
    assert second["points_reversed"] == 233  # floor(700 x 6666 / 10000) = 466, less 233
    third = await give_back(client, brand, returned("A-1", "R-3", 3_334))
    assert third["points_reversed"] == 234  # the last return reverses exactly the rest
    assert first["points_reversed"] + second["points_reversed"] + third["points_reversed"] == 700
    assert await balance(session, member.id) == (0, 0)
    assert await ledger.ledger_matches(session, member.id)
    read = (await client.get("/rewards/v1/purchases/A-1", headers=brand.headers)).json()
    assert (read["returned_minor"], read["returned_points"]) == (10_000, 700)
    assert [r["return_id"] for r in read["returns"]] == ["R-1", "R-2", "R-3"]


async def test_a_return_says_why_and_emits_purchase_returned(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    await buy(client, brand, purchase(member, "A-1", 12_000))
    result = await give_back(client, brand, returned("A-1", "R-1", 3_000))
    assert result["points_reversed"] == 30
    assert result["reversed_from"] == "available"
    assert result["currency"] == "EUR"
    entry = (
        await session.scalars(select(LedgerEntry).where(LedgerEntry.source_type == "return"))
    ).one()
    assert (entry.kind, entry.points, entry.source_id) == ("reverse", -30, "R-1")
    assert entry.reason == (
        "Return R-1 of order A-1: 30.00 EUR back (30.00 EUR of 120.00 EUR returned),"
        " 30 pts reversed"
    )
    events = await rewards_events(session)
    assert [t for t, _ in events][-2:] == ["points.adjusted", "purchase.returned"]
    data = events[-1][1]
    assert (data["return_id"], data["amount_minor"], data["points_reversed"]) == ("R-1", 3_000, 30)


async def test_a_line_return_reverses_that_line_s_share_of_the_points(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    await make_rule(
        client, brand, kind="sku_multiplier", name="Serum x3", sku="SERUM", multiplier=3
    )
    lines = [line("SERUM", 4_000, "skincare"), line("SOAP", 6_000, "body", quantity=2)]
    result = await buy(client, brand, purchase(member, "A-1", 10_000, lines=lines))
    assert result["points"] == 180  # 40 x 3 + 60
    # Returning the serum takes back its 120 points, not 40% of 180 (72).
    serum = await give_back(
        client, brand, returned("A-1", "R-1", lines=[line("SERUM", 4_000, "skincare")])
    )
    assert (serum["points_reversed"], serum["amount_minor"]) == (120, 4_000)
    # One of the two soaps: half of that line's 60 points.
    soap = await give_back(
        client, brand, returned("A-1", "R-2", 3_000, lines=[line("SOAP", 3_000, quantity=1)])
    )
    assert soap["points_reversed"] == 30
    last = await give_back(client, brand, returned("A-1", "R-3", 3_000))
    assert last["points_reversed"] == 30
    assert await balance(session, member.id) == (0, 0)


async def test_a_return_after_the_points_were_spent_leaves_a_negative_balance_paid_back_first(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    program: Program,
) -> None:
    await buy(client, brand, purchase(member, "A-1", 10_000))  # 100 pts
    await ledger.post(
        session,
        brand.id,
        program,
        Movement(
            member_id=member.id,
            kind=EntryKind.REDEEM,
            bucket=Bucket.AVAILABLE,
            points=-80,
            reason="Perk: tote bag",
            source_type="redemption",
            source_id="x",
            occurred_at=utcnow(),
        ),
    )
    assert await balance(session, member.id) == (20, 0)
    result = await give_back(client, brand, returned("A-1", "R-1", 10_000))
    assert result["points_reversed"] == 100
    assert await balance(session, member.id) == (-80, 0)
    assert await session.scalar(select(Lot.remaining).where(Lot.member_id == member.id)) == 0
    view = await client.get(f"/rewards/v1/members/{member.id}/balance", headers=brand.headers)
    assert view.json()["available"] == -80  # shown as such

    # Later earnings pay the debt back before any spendable lot forms.
    await buy(client, brand, purchase(member, "A-2", 5_000))
    assert await balance(session, member.id) == (-30, 0)
    open_lots = (
        await session.scalars(select(Lot).where(Lot.member_id == member.id, Lot.remaining > 0))
    ).all()
    assert open_lots == []
    await buy(client, brand, purchase(member, "A-3", 5_000))
    assert await balance(session, member.id) == (20, 0)
    open_lots = (
        await session.scalars(select(Lot).where(Lot.member_id == member.id, Lot.remaining > 0))
    ).all()
    assert [(lot.points, lot.remaining) for lot in open_lots] == [(20, 20)]
    assert await ledger.ledger_matches(session, member.id)


async def test_a_replayed_return_answers_the_first_result_and_reverses_nothing_twice(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    await buy(client, brand, purchase(member, "A-1", 10_000))
    body = returned("A-1", "R-1", 10_000)
    first = await client.post("/rewards/v1/returns", json=body, headers=brand.headers)
    assert first.status_code == 201
    before = await counts(session)
    again = await client.post("/rewards/v1/returns", json=body, headers=brand.headers)
    assert (again.status_code, again.content) == (200, first.content)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await counts(session) == before
    assert await balance(session, member.id) == (0, 0)
    reused = await client.post(
        "/rewards/v1/returns", json={**body, "amount_minor": 5_000}, headers=brand.headers
    )
    assert (reused.status_code, reused.json()["error"]) == (409, "ReturnIdReused")
    assert "amount_minor" in reused.json()["detail"]
    assert await counts(session) == before


async def test_return_ids_name_one_return_across_orders(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    await buy(client, brand, purchase(member, "A-1", 10_000))
    await buy(client, brand, purchase(member, "A-2", 10_000))
    await give_back(client, brand, returned("A-1", "R-1", 1_000))
    before = await counts(session)
    other = await client.post(
        "/rewards/v1/returns", json=returned("A-2", "R-1", 1_000), headers=brand.headers
    )
    assert (other.status_code, other.json()["error"]) == (409, "ReturnIdReused")
    assert "order_id" in other.json()["detail"]
    assert await counts(session) == before


def _return(**fields: Any) -> dict[str, Any]:
    body = {"order_id": "A-1", "return_id": "R-9", "amount_minor": 100, **fields}
    body.setdefault("occurred_at", utcnow().isoformat())
    return {key: value for key, value in body.items() if value is not None}


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ({"amount_minor": 10_001}, 422, "ReturnExceedsPurchase"),
        ({"amount_minor": 0}, 422, "ValidationError"),
        ({"amount_minor": -100}, 422, "ValidationError"),
        ({"amount_minor": "100"}, 422, "ValidationError"),
        ({"amount_minor": None}, 422, "ValidationError"),
        ({"order_id": "NOPE"}, 404, "PurchaseNotFound"),
        ({"amount_minor": None, "lines": [line("GHOST", 100)]}, 422, "ReturnLineNotInPurchase"),
        ({"amount_minor": None, "lines": [line("LIP", 6_001)]}, 422, "ReturnExceedsPurchase"),
        (
            {"amount_minor": None, "lines": [line("LIP", 100, quantity=3)]},
            422,
            "ReturnExceedsPurchase",
        ),
        ({"amount_minor": 500, "lines": [line("LIP", 100)]}, 422, "LinesDoNotAddUp"),
        ({"occurred_at": "2020-01-01T00:00:00Z"}, 422, "ReturnBeforePurchase"),
        ({"occurred_at": "2020-01-01T00:00:00"}, 422, "ValidationError"),
        ({"return_id": ""}, 422, "ValidationError"),
        ({"reason": "broken"}, 422, "ValidationError"),
    ],
)
async def test_bad_returns_are_refused_and_nothing_is_written(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    fields: dict[str, Any],
    status: int,
    code: str,
) -> None:
    lines = [line("LIP", 6_000, "makeup", quantity=2), line("SOAP", 4_000, "body")]
    await buy(client, brand, purchase(member, "A-1", 10_000, lines=lines))
    before = await counts(session)
    response = await client.post(
        "/rewards/v1/returns", json=_return(**fields), headers=brand.headers
    )
    assert response.status_code == status, response.text
    assert response.json()["error"] == code
    assert response.json()["detail"]
    assert await counts(session) == before
    assert await balance(session, member.id) == (100, 0)


async def test_a_return_larger_than_what_remains_is_refused_and_says_how_much_remains(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    await buy(client, brand, purchase(member, "A-1", 10_000))
    await give_back(client, brand, returned("A-1", "R-1", 7_000))
    before = await counts(session)
    response = await client.post(
        "/rewards/v1/returns", json=returned("A-1", "R-2", 3_001), headers=brand.headers
    )
    assert (response.status_code, response.json()["error"]) == (422, "ReturnExceedsPurchase")
    assert response.json()["detail"] == (
        "Order A-1 has 30.00 EUR left to return (of 100.00 EUR); this return is 30.01 EUR."
    )
    assert await counts(session) == before
    assert await balance(session, member.id) == (30, 0)


async def test_a_return_while_points_are_pending_takes_them_from_pending(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    await set_program(session, brand.id, pending_days=14)
    await buy(client, brand, purchase(member, "A-1", 10_000))
    assert await balance(session, member.id) == (0, 100)
    result = await give_back(client, brand, returned("A-1", "R-1", 10_000))
    assert (result["points_reversed"], result["reversed_from"]) == (100, "pending")
    assert await balance(session, member.id) == (0, 0)
    assert await ledger.ledger_matches(session, member.id)


async def test_returns_lower_qualifying_spend_but_never_downgrade_at_once(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    await make_tier(client, brand, "Insider", 0, 0)
    gold = await make_tier(client, brand, "Gold", 1, 50_000)
    await buy(client, brand, purchase(member, "A-1", 60_000))
    status = (
        await client.get(f"/rewards/v1/members/{member.id}/tier", headers=brand.headers)
    ).json()
    assert (status["tier"]["id"], status["spend_minor"]) == (gold["id"], 60_000)
    await give_back(client, brand, returned("A-1", "R-1", 20_000))
    status = (
        await client.get(f"/rewards/v1/members/{member.id}/tier", headers=brand.headers)
    ).json()
    assert status["spend_minor"] == 40_000
    assert status["tier"]["id"] == gold["id"]  # until the review
    assert status["keep"]["remaining_minor"] == 10_000
    assert [t for t, _ in await rewards_events(session)].count("tier.changed") == 1


async def test_returns_need_rewards_write(
    client: httpx.AsyncClient, brand: BrandFixture, member: MemberFixture
) -> None:
    await buy(client, brand, purchase(member, "A-1", 10_000))
    response = await client.post(
        "/rewards/v1/returns", json=returned("A-1", "R-1", 100), headers=member.headers
    )
    assert response.status_code == 403
    assert (
        await client.post("/rewards/v1/returns", json=returned("A-1", "R-1", 100))
    ).status_code == 401
