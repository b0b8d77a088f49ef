"""Helpers for the perks, redemptions, drops and birthday tests."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.kernel.ids import new_id
from services.rewards.models import (
    Account,
    Perk,
    Program,
    Redemption,
    Tier,
)
from tests.conftest import BrandFixture, MemberFixture
from tests.rewards.points_helpers import move


def perk_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Free tote bag",
        "category": "gifts",
        "kind": "free_product",
        "cost_points": 100,
    }
    body.update(changes)
    return body


async def create_perk(
    client: httpx.AsyncClient, brand: BrandFixture, **changes: Any
) -> dict[str, Any]:
    response = await client.post(
        "/rewards/v1/perks", json=perk_body(**changes), headers=brand.headers
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def give(session: AsyncSession, program: Program, member_id: uuid.UUID, points: int) -> None:
    """Points the member can spend at once."""
    await move(session, program, member_id, points, utcnow() - timedelta(days=1))


async def make_tier(session: AsyncSession, brand_id: uuid.UUID, name: str, rank: int) -> uuid.UUID:
    tier = Tier(
        id=new_id(),
        brand_id=brand_id,
        name=name,
        rank=rank,
        threshold_minor=rank * 100_000,
    )
    session.add(tier)
    await session.flush()
    return tier.id


async def set_tier(session: AsyncSession, member_id: uuid.UUID, tier_id: uuid.UUID | None) -> None:
    await session.execute(
        update(Account).where(Account.member_id == member_id).values(tier_id=tier_id)
    )


async def redeem(
    client: httpx.AsyncClient, member: MemberFixture, perk_id: Any, key: str | None = None
) -> httpx.Response:
    return await client.post(
        "/rewards/v1/me/redemptions",
        json={"perk_id": str(perk_id)},
        headers={**member.headers, "Idempotency-Key": key or uuid.uuid4().hex},
    )


async def balance(session: AsyncSession, member_id: uuid.UUID) -> int:
    account = await session.get(Account, member_id, populate_existing=True)
    assert account is not None
    return account.available


async def remaining(session: AsyncSession, perk_id: Any) -> int | None:
    perk = await session.get(Perk, uuid.UUID(str(perk_id)), populate_existing=True)
    assert perk is not None
    return perk.inventory_remaining


async def redemption_count(session: AsyncSession, **where: Any) -> int:
    statement = select(func.count()).select_from(Redemption)
    for column, value in where.items():
        statement = statement.where(getattr(Redemption, column) == value)
    return int(await session.scalar(statement) or 0)


def error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]
