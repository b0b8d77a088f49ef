"""Staff adjustments, balances and history over REST, for staff and for the member themself."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.rewards.models import LedgerEntry, Program
from tests.conftest import BrandFixture, MemberFixture, bearer
from tests.rewards.conftest import MakeMember, rewards_events


def adjustments(member_id: uuid.UUID) -> str:
    return f"/rewards/v1/members/{member_id}/adjustments"


async def entries(session: AsyncSession) -> int:
    return await session.scalar(select(func.count()).select_from(LedgerEntry)) or 0


async def test_staff_adjust_and_the_member_sees_balance_and_history_newest_first(
    client: httpx.AsyncClient, brand: BrandFixture, member: MemberFixture
) -> None:
    first = await client.post(
        adjustments(member.id),
        json={"points": 250, "reason": "Welcome bonus"},
        headers=brand.headers,
    )
    assert first.status_code == 201
    assert first.json()["balance"] == {
        "member_id": str(member.id),
        "available": 250,
        "pending": 0,
        "lifetime_earned": 0,
    }
    second = await client.post(
        adjustments(member.id),
        json={"points": -50, "reason": "Goodwill points granted twice"},
        headers=brand.headers,
    )
    assert second.json()["balance"]["available"] == 200

    mine = await client.get("/rewards/v1/me/balance", headers=member.headers)
    assert mine.json() == second.json()["balance"]
    history = await client.get("/rewards/v1/me/ledger", params={"limit": 1}, headers=member.headers)
    assert [(e["points"], e["reason"], e["kind"]) for e in history.json()["items"]] == [
        (-50, "Goodwill points granted twice", "adjust")
    ]
    older = await client.get(
        "/rewards/v1/me/ledger",
        params={"limit": 1, "after": history.json()["next"]},
        headers=member.headers,
    )
    assert [e["points"] for e in older.json()["items"]] == [250]
    assert older.json()["next"] is None
    staff_view = await client.get(f"/rewards/v1/members/{member.id}/ledger", headers=brand.headers)
    assert [e["points"] for e in staff_view.json()["items"]] == [-50, 250]


async def test_an_adjustment_replayed_with_its_key_happens_once(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    headers = {**brand.headers, "Idempotency-Key": "adj-1"}
    body = {"points": 10, "reason": "Survey answered"}
    first = await client.post(adjustments(member.id), json=body, headers=headers)
    replay = await client.post(adjustments(member.id), json=body, headers=headers)
    assert replay.status_code == 201
    assert replay.content == first.content
    assert replay.headers["Idempotent-Replayed"] == "true"
    reused = await client.post(adjustments(member.id), json={**body, "points": 11}, headers=headers)
    assert (reused.status_code, reused.json()["error"]) == (409, "IdempotencyKeyReused")
    assert await entries(session) == 1


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"points": -1, "reason": "Oops, too many"}, 409, "InsufficientPoints"),
        ({"points": 0, "reason": "Nothing at all"}, 422, "ValidationError"),
        ({"points": 5}, 422, "ValidationError"),
        ({"points": 5, "reason": "ok"}, 422, "ValidationError"),
        ({"points": "five", "reason": "Five points"}, 422, "ValidationError"),
        ({"points": 5, "reason": "Five points", "extra": 1}, 422, "ValidationError"),
        ({"points": 10**10, "reason": "Too many points"}, 422, "ValidationError"),
    ],
)
async def test_bad_adjustments_are_refused_and_write_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    response = await client.post(adjustments(member.id), json=body, headers=brand.headers)
    assert (response.status_code, response.json()["error"]) == (status, code)
    assert await entries(session) == 0
    assert await rewards_events(session) == []


async def test_no_one_reaches_another_brands_member_or_writes_as_a_member(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
    member: MemberFixture,
    make_member: MakeMember,
) -> None:
    body = {"points": 10, "reason": "Cross-brand attempt"}
    cross = await client.post(adjustments(member.id), json=body, headers=other_brand.headers)
    assert (cross.status_code, cross.json()["error"]) == (404, "MemberNotFound")
    unknown = await client.post(adjustments(uuid.uuid4()), json=body, headers=brand.headers)
    assert (unknown.status_code, unknown.json()["error"]) == (404, "MemberNotFound")
    as_member = await client.post(adjustments(member.id), json=body, headers=member.headers)
    assert as_member.status_code == 403
    peer = await make_member("crm-2")
    peek = await client.get(f"/rewards/v1/members/{member.id}/balance", headers=peer.headers)
    assert peek.status_code == 403
    assert await entries(session) == 0


async def test_without_a_program_nothing_can_be_adjusted(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, make_member: MakeMember
) -> None:
    member = await make_member("crm-3")
    response = await client.post(
        adjustments(member.id), json={"points": 5, "reason": "Early bird"}, headers=brand.headers
    )
    assert (response.status_code, response.json()["error"]) == (409, "ProgramNotConfigured")
    assert await entries(session) == 0


async def test_an_erased_member_is_gone_from_rewards_but_the_ledger_stays(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    program: Program,
) -> None:
    from tests.rewards.conftest import sync_members

    await client.post(
        adjustments(member.id), json={"points": 10, "reason": "Thanks"}, headers=brand.headers
    )
    erased = await client.post(f"/members/v1/members/{member.id}/erase", headers=brand.headers)
    assert erased.status_code == 200
    await sync_members(session)
    gone = await client.get(f"/rewards/v1/members/{member.id}/balance", headers=brand.headers)
    assert (gone.status_code, gone.json()["error"]) == (404, "MemberNotFound")
    assert await entries(session) == 1
    token_after = await client.get("/rewards/v1/me/balance", headers=bearer(member.token))
    assert token_after.status_code == 404
