"""Helpers for the purchases, returns, earning rules, campaigns and tiers suites."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.rewards.models import (
    OUTBOX,
    Account,
    Campaign,
    EarningRule,
    LedgerEntry,
    Lot,
    Purchase,
    Return,
    Tier,
    TierChange,
)
from tests.conftest import BrandFixture, MemberFixture

TABLES = {
    "purchases": Purchase,
    "returns": Return,
    "ledger_entries": LedgerEntry,
    "lots": Lot,
    "tier_changes": TierChange,
    "earning_rules": EarningRule,
    "campaigns": Campaign,
    "tiers": Tier,
}


async def counts(session: AsyncSession) -> dict[str, int]:
    """Rows in every table these features write, and in the outbox: to assert nothing moved."""
    found: dict[str, int] = {}
    for name, model in TABLES.items():
        found[name] = int(await session.scalar(select(func.count()).select_from(model)) or 0)
    found["outbox"] = int(await session.scalar(select(func.count()).select_from(OUTBOX.table)) or 0)
    return found


async def balance(session: AsyncSession, member_id: uuid.UUID) -> tuple[int, int]:
    """(available, pending) as committed now."""
    row = (
        await session.execute(
            select(Account.available, Account.pending).where(Account.member_id == member_id)
        )
    ).one()
    return int(row.available), int(row.pending)


async def tier_of(session: AsyncSession, member_id: uuid.UUID) -> uuid.UUID | None:
    return await session.scalar(select(Account.tier_id).where(Account.member_id == member_id))


def purchase(
    member: MemberFixture,
    order_id: str,
    amount_minor: int,
    *,
    lines: Sequence[dict[str, Any]] = (),
    occurred_at: datetime | None = None,
    currency: str = "EUR",
    by: str = "external_id",
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "order_id": order_id,
        "amount_minor": amount_minor,
        "currency": currency,
        "lines": list(lines),
        "occurred_at": (occurred_at or utcnow() - timedelta(seconds=1)).isoformat(),
    }
    if by == "external_id":
        body["external_id"] = member.external_id
    else:
        body["member_id"] = str(member.id)
    return body


def line(
    sku: str, amount_minor: int, category: str | None = None, quantity: int = 1
) -> dict[str, Any]:
    return {"sku": sku, "category": category, "quantity": quantity, "amount_minor": amount_minor}


async def buy(
    client: httpx.AsyncClient, brand: BrandFixture, body: dict[str, Any], status: int = 201
) -> dict[str, Any]:
    response = await client.post("/rewards/v1/purchases", json=body, headers=brand.headers)
    assert response.status_code == status, response.text
    result: dict[str, Any] = response.json()
    return result


async def give_back(
    client: httpx.AsyncClient, brand: BrandFixture, body: dict[str, Any], status: int = 201
) -> dict[str, Any]:
    response = await client.post("/rewards/v1/returns", json=body, headers=brand.headers)
    assert response.status_code == status, response.text
    result: dict[str, Any] = response.json()
    return result


def returned(
    order_id: str,
    return_id: str,
    amount_minor: int | None = None,
    *,
    lines: Sequence[dict[str, Any]] = (),
    occurred_at: datetime | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "order_id": order_id,
        "return_id": return_id,
        "occurred_at": (occurred_at or utcnow()).isoformat(),
    }
    if amount_minor is not None:
        body["amount_minor"] = amount_minor
    if lines:
        body["lines"] = list(lines)
    return body


async def make_tier(
    client: httpx.AsyncClient,
    brand: BrandFixture,
    name: str,
    rank: int,
    threshold: int,
    **fields: Any,
) -> dict[str, Any]:
    body = {"name": name, "rank": rank, "threshold_minor": threshold, **fields}
    response = await client.post("/rewards/v1/tiers", json=body, headers=brand.headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def make_rule(client: httpx.AsyncClient, brand: BrandFixture, **body: Any) -> dict[str, Any]:
    response = await client.post("/rewards/v1/rules", json=body, headers=brand.headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def make_campaign(
    client: httpx.AsyncClient, brand: BrandFixture, **fields: Any
) -> dict[str, Any]:
    now = utcnow()
    body = {
        "name": "Double points week",
        "starts_at": (now - timedelta(days=1)).isoformat(),
        "ends_at": (now + timedelta(days=6)).isoformat(),
        **fields,
    }
    response = await client.post("/rewards/v1/campaigns", json=body, headers=brand.headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result
