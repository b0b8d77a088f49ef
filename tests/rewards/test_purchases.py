"""Purchases: points at the base rate in the program's currency, idempotent by order id, pending
while the return window is open, released by a job; every bad input refused with nothing written.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.rewards.ledger import service as ledger
from services.rewards.models import LedgerEntry, Purchase
from services.rewards.purchases.service import release_due
from tests.conftest import BrandFixture, MemberFixture
from tests.rewards.conftest import MakeMember, rewards_events
from tests.rewards.points_helpers import set_program
from tests.rewards.purchase_helpers import (
    balance,
    buy,
    counts,
    give_back,
    line,
    purchase,
    returned,
)

BOUGHT_AT = datetime(2026, 3, 14, 15, 9, 26, tzinfo=UTC)


async def test_a_purchase_earns_the_base_rate_and_says_why(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    body = purchase(member, "A-1", 12_050, occurred_at=BOUGHT_AT)
    result = await buy(client, brand, body)
    assert result["points"] == 120  # 120.50 EUR x 1 pt/EUR = 120.5, rounded down
    assert result["points_bucket"] == "available"
    assert result["pending_until"] is None
    assert result["member_id"] == str(member.id)
    assert result["occurred_at"] == "2026-03-14T15:09:26Z"
    assert result["breakdown"]["exact_points"] == "120.5"
    assert result["breakdown"]["reason"] == "Order A-1: 120.50 EUR \u00d7 1 pt/EUR = 120 pts"
    assert await balance(session, member.id) == (120, 0)

    entry = (await session.scalars(select(LedgerEntry))).one()
    assert (entry.kind, entry.bucket, entry.points) == ("earn", "available", 120)
    assert (entry.source_type, entry.source_id) == ("purchase", "A-1")
    assert entry.reason == result["breakdown"]["reason"]
    events = await rewards_events(session)
    assert [t for t, _ in events] == ["points.earned", "purchase.recorded"]
    recorded = events[1][1]
    assert recorded["order_id"] == "A-1"
    assert recorded["points"] == 120
    assert recorded["amount_minor"] == 12_050
    assert await ledger.ledger_matches(session, member.id)


async def test_a_member_is_named_by_id_or_by_external_id(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    await buy(client, brand, purchase(member, "A-1", 1_000, by="member_id"))
    await buy(client, brand, purchase(member, "A-2", 2_000, by="external_id"))
    assert await balance(session, member.id) == (30, 0)


@pytest.mark.parametrize(
    ("currency", "points_per_unit", "amount_minor", "expected"),
    [
        ("EUR", 1, 999, 9),  # 9.99 EUR
        ("EUR", 3, 1_050, 31),  # 10.50 EUR x 3 = 31.5
        ("JPY", 1, 1_500, 1_500),  # no minor unit
        ("KWD", 10, 12_345, 123),  # thousandths: 12.345 KWD x 10 = 123.45
        ("CLF", 100, 12_345, 123),  # ten-thousandths: 1.2345 CLF x 100 = 123.45
    ],
)
async def test_minor_units_follow_the_currency_s_iso_4217_exponent(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    currency: str,
    points_per_unit: int,
    amount_minor: int,
    expected: int,
) -> None:
    await set_program(session, brand.id, currency=currency, points_per_unit=points_per_unit)
    result = await buy(client, brand, purchase(member, "A-1", amount_minor, currency=currency))
    assert result["points"] == expected
    assert await balance(session, member.id) == (expected, 0)


async def test_points_are_rounded_down_once_on_the_total_not_per_line(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    # Three lines of 0.50 EUR: 0 points each if rounded per line, 1 point on the total.
    lines = [line(f"S-{n}", 50) for n in range(3)]
    result = await buy(client, brand, purchase(member, "A-1", 150, lines=lines))
    assert [entry["points"] for entry in result["breakdown"]["lines"]] == ["0.5"] * 3
    assert result["breakdown"]["exact_points"] == "1.5"
    assert result["points"] == 1


async def test_a_replay_answers_200_with_the_first_answer_and_earns_nothing_twice(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    body = purchase(member, "A-1", 5_000, lines=[line("LIP-1", 5_000, "makeup")])
    first = await client.post("/rewards/v1/purchases", json=body, headers=brand.headers)
    assert first.status_code == 201
    before = await counts(session)
    again = await client.post("/rewards/v1/purchases", json=body, headers=brand.headers)
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    # The same member named by id instead of external id is the same purchase.
    by_id = {**body, "member_id": str(member.id)}
    del by_id["external_id"]
    third = await client.post("/rewards/v1/purchases", json=by_id, headers=brand.headers)
    assert (third.status_code, third.content) == (200, first.content)
    assert await counts(session) == before
    assert await balance(session, member.id) == (50, 0)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"amount_minor": 5_001, "lines": []}, "amount_minor"),
        (
            {
                "lines": [
                    {"sku": "LIP-2", "category": "makeup", "quantity": 1, "amount_minor": 5_000}
                ]
            },
            "lines",
        ),
        ({"occurred_at": "2026-01-01T00:00:00+00:00"}, "occurred_at"),
        ({"external_id": "someone-else"}, "member"),
    ],
)
async def test_an_order_id_reused_with_another_body_is_refused(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    make_member: MakeMember,
    change: dict[str, Any],
    named: str,
) -> None:
    await make_member("someone-else")
    body = purchase(member, "A-1", 5_000, lines=[line("LIP-1", 5_000, "makeup")])
    await buy(client, brand, body)
    before = await counts(session)
    response = await client.post(
        "/rewards/v1/purchases", json={**body, **change}, headers=brand.headers
    )
    assert response.status_code == 409
    assert response.json()["error"] == "OrderIdReused"
    assert named in response.json()["detail"]
    assert await counts(session) == before
    assert await balance(session, member.id) == (50, 0)


async def test_order_ids_are_per_brand(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
    member: MemberFixture,
    make_member: MakeMember,
) -> None:
    await set_program(session, other_brand.id)
    theirs = await make_member("crm-1", brand_fixture=other_brand)
    await buy(client, brand, purchase(member, "A-1", 1_000))
    await buy(client, other_brand, purchase(theirs, "A-1", 2_000))
    assert await balance(session, member.id) == (10, 0)
    assert await balance(session, theirs.id) == (20, 0)
    # A brand cannot reach another brand's member, by id or external id.
    response = await client.post(
        "/rewards/v1/purchases",
        json=purchase(theirs, "A-2", 1_000, by="member_id"),
        headers=brand.headers,
    )
    assert (response.status_code, response.json()["error"]) == (404, "MemberNotFound")


async def test_points_stay_pending_through_the_return_window_then_a_job_releases_them(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    await set_program(session, brand.id, pending_days=30)
    now = utcnow()
    bought = now - timedelta(days=1)
    result = await buy(client, brand, purchase(member, "A-1", 10_000, occurred_at=bought))
    assert result["points_bucket"] == "pending"
    assert datetime.fromisoformat(result["pending_until"]) == bought + timedelta(days=30)
    assert await balance(session, member.id) == (0, 100)
    # An old purchase, whose return window has passed, is available at once.
    old = await buy(
        client, brand, purchase(member, "A-0", 2_000, occurred_at=now - timedelta(days=45))
    )
    assert (old["points_bucket"], old["pending_until"]) == ("available", None)
    assert await balance(session, member.id) == (20, 100)

    # Not yet due: nothing moves.
    assert await release_due(session, now=now) == 0
    assert await balance(session, member.id) == (20, 100)
    # A partial return while pending takes from pending; the release gives only the rest.
    await give_back(client, brand, returned("A-1", "R-1", 2_500))
    assert await balance(session, member.id) == (20, 75)
    assert await release_due(session, now=bought + timedelta(days=30)) == 1
    assert await balance(session, member.id) == (95, 0)
    assert await release_due(session, now=bought + timedelta(days=31)) == 0  # idempotent
    assert await balance(session, member.id) == (95, 0)
    row = (await session.scalars(select(Purchase).where(Purchase.order_id == "A-1"))).one()
    await session.refresh(row)
    assert row.points_bucket == "available"
    kinds = [t for t, _ in await rewards_events(session)]
    assert kinds.count("points.pending") == 1
    assert kinds.count("points.adjusted") == 3  # the reversal from pending, and the release pair
    assert await ledger.ledger_matches(session, member.id)
    # The GET shows where the points are now, and the answer to the POST still says pending.
    read = await client.get("/rewards/v1/purchases/A-1", headers=brand.headers)
    assert read.json()["points_now_in"] == "available"
    assert read.json()["points_bucket"] == "pending"
    assert read.json()["returned_points"] == 25


async def test_a_purchase_too_small_for_a_point_is_recorded_with_none(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    result = await buy(client, brand, purchase(member, "A-1", 99))
    assert result["points"] == 0
    assert await balance(session, member.id) == (0, 0)
    assert [t for t, _ in await rewards_events(session)] == ["purchase.recorded"]


def _future() -> str:
    return (utcnow() + timedelta(hours=1)).isoformat()


@pytest.mark.parametrize(
    ("change", "status", "code", "location"),
    [
        ({"amount_minor": 0}, 422, "ValidationError", ["body", "amount_minor"]),
        ({"amount_minor": -500}, 422, "ValidationError", ["body", "amount_minor"]),
        ({"amount_minor": "500"}, 422, "ValidationError", ["body", "amount_minor"]),
        ({"amount_minor": 5.5}, 422, "ValidationError", ["body", "amount_minor"]),
        ({"currency": "XYZ"}, 422, "UnknownCurrency", None),
        ({"currency": "eur"}, 422, "UnknownCurrency", None),
        ({"currency": "USD"}, 422, "CurrencyMismatch", None),
        ({"lines": [line("A", 400), line("B", 500)]}, 422, "LinesDoNotAddUp", None),
        ({"lines": [line("A", 1_000, quantity=0)]}, 422, "ValidationError", None),
        ({"lines": [line("A", 0)]}, 422, "ValidationError", None),
        ({"lines": [line("A", -1_000)]}, 422, "ValidationError", None),
        ({"lines": [{"category": "x", "amount_minor": 1_000}]}, 422, "ValidationError", None),
        ({"occurred_at": "2026-03-14T15:09:26"}, 422, "ValidationError", ["body", "occurred_at"]),
        ({"occurred_at": "yesterday"}, 422, "ValidationError", ["body", "occurred_at"]),
        ({"order_id": ""}, 422, "ValidationError", ["body", "order_id"]),
        ({"colour": "red"}, 422, "ValidationError", ["body", "colour"]),
        ({"external_id": None}, 422, "ValidationError", ["body"]),
        ({"member_id": "not-a-uuid"}, 422, "ValidationError", ["body", "member_id"]),
        ({"external_id": "nobody"}, 404, "MemberNotFound", None),
    ],
)
async def test_bad_purchases_are_refused_and_nothing_is_written(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    change: dict[str, Any],
    status: int,
    code: str,
    location: list[str] | None,
) -> None:
    before = await counts(session)
    body = {**purchase(member, "A-1", 1_000), **change}
    response = await client.post("/rewards/v1/purchases", json=body, headers=brand.headers)
    assert response.status_code == status, response.text
    assert response.json()["error"] == code
    if location is not None:
        assert [d["loc"] for d in response.json()["detail"]] == [location]
    else:
        assert response.json()["detail"]  # says what to fix
    assert await counts(session) == before
    assert await balance(session, member.id) == (0, 0)


async def test_a_purchase_in_the_future_or_naming_two_members_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    before = await counts(session)
    future = await client.post(
        "/rewards/v1/purchases",
        json={**purchase(member, "A-1", 1_000), "occurred_at": _future()},
        headers=brand.headers,
    )
    assert future.status_code == 422
    assert "future" in future.json()["detail"][0]["msg"]
    both = await client.post(
        "/rewards/v1/purchases",
        json={**purchase(member, "A-1", 1_000), "member_id": str(member.id)},
        headers=brand.headers,
    )
    assert both.status_code == 422
    assert "exactly one of member_id or external_id" in both.json()["detail"][0]["msg"]
    # A few minutes of clock skew are accepted.
    skewed = utcnow() + timedelta(minutes=2)
    await buy(client, brand, purchase(member, "A-2", 1_000, occurred_at=skewed))
    assert (await counts(session))["purchases"] == before["purchases"] + 1


async def test_the_currency_errors_say_what_to_send(
    client: httpx.AsyncClient, brand: BrandFixture, member: MemberFixture
) -> None:
    unknown = await client.post(
        "/rewards/v1/purchases",
        json={**purchase(member, "A-1", 1_000), "currency": "XYZ"},
        headers=brand.headers,
    )
    assert unknown.json()["detail"] == (
        "'XYZ' is not an ISO 4217 currency code; this program's purchases are in EUR."
    )
    other = await client.post(
        "/rewards/v1/purchases",
        json={**purchase(member, "A-1", 1_000), "currency": "GBP"},
        headers=brand.headers,
    )
    assert "send amount_minor in EUR" in other.json()["detail"]


async def test_purchases_need_a_program_and_a_staff_key_with_rewards_write(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    make_member: MakeMember,
) -> None:
    someone = await make_member("crm-9")
    body = purchase(someone, "A-1", 1_000)
    no_program = await client.post("/rewards/v1/purchases", json=body, headers=brand.headers)
    assert (no_program.status_code, no_program.json()["error"]) == (409, "ProgramNotConfigured")
    await set_program(session, brand.id)
    created = await client.post(
        "/members/v1/api-keys",
        json={"name": "reader", "scopes": ["rewards:read"]},
        headers=brand.headers,
    )
    reader = {"Authorization": f"Bearer {created.json()['key']}"}
    refused = await client.post("/rewards/v1/purchases", json=body, headers=reader)
    assert (refused.status_code, refused.json()["error"]) == (403, "Forbidden")
    as_member = await client.post("/rewards/v1/purchases", json=body, headers=someone.headers)
    assert as_member.status_code == 403
    assert (await client.post("/rewards/v1/purchases", json=body)).status_code == 401
    assert (await counts(session))["purchases"] == 0
    missing = await client.get("/rewards/v1/purchases/nope", headers=reader)
    assert (missing.status_code, missing.json()["error"]) == (404, "PurchaseNotFound")


async def test_a_purchase_is_read_back_by_its_order_id_even_with_a_slash(
    client: httpx.AsyncClient, brand: BrandFixture, member: MemberFixture
) -> None:
    recorded = await buy(client, brand, purchase(member, "2026/03/A-1", 2_500))
    read = await client.get("/rewards/v1/purchases/2026/03/A-1", headers=brand.headers)
    assert read.status_code == 200, read.text
    body = read.json()
    assert {k: body[k] for k in recorded} == recorded
    assert (body["returned_minor"], body["returns"], body["points_now_in"]) == (0, [], "available")
