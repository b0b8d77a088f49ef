"""Redemptions racing for the last units, on committed data through the HTTP API.

Unlike most rewards tests these commit (each request is its own transaction on the pooled engine),
under a brand of their own that is purged at the end.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select

from services.kernel.auth import MemberTokenCodec
from services.kernel.db import Database
from services.kernel.settings import Settings
from services.members import service as members_service
from services.registry import SERVICES
from services.rewards.ledger import service as ledger
from services.rewards.ledger.repository import LedgerRepository
from services.rewards.models import Account, EntryKind, LedgerEntry, Perk, PerkCode, Redemption
from tests.conftest import app_for, bearer, make_runtime, purge_brand
from tests.rewards.conftest import DEFAULT_PROGRAM
from tests.rewards.perk_helpers import give, perk_body

# The engine's pool is 10 + 10 connections: stay under it so requests queue on rows, not on it.
CONCURRENCY = 16


@dataclass(frozen=True)
class Race:
    client: httpx.AsyncClient
    brand_id: uuid.UUID
    staff: dict[str, str]
    database: Database
    tokens: MemberTokenCodec

    async def members(self, count: int, points: int) -> list[tuple[uuid.UUID, dict[str, str]]]:
        """Members known to rewards (as the projection writes them), each with `points`."""
        made = []
        async with self.database.unit_of_work() as session:
            program = await ledger.program_for(session, self.brand_id)
            repository = LedgerRepository(session)
            for n in range(count):
                member_id = uuid.uuid4()
                await repository.upsert_account(
                    brand_id=self.brand_id,
                    member_id=member_id,
                    external_id=f"racer-{n}",
                    birthday=None,
                    member_status="active",
                )
                await give(session, program, member_id, points)
                token = self.tokens.issue(self.brand_id, member_id, timedelta(minutes=10))
                made.append((member_id, bearer(token)))
        return made

    async def perk(self, **changes: Any) -> str:
        response = await self.client.post(
            "/rewards/v1/perks", json=perk_body(**changes), headers=self.staff
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def redeem_all(self, attempts: list[tuple[dict[str, str], str]]) -> list[httpx.Response]:
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(headers: dict[str, str], perk_id: str) -> httpx.Response:
            async with gate:
                return await self.client.post(
                    "/rewards/v1/me/redemptions",
                    json={"perk_id": perk_id},
                    headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
                )

        return await asyncio.gather(*(one(h, p) for h, p in attempts))


@pytest.fixture
async def race(
    base_settings: Settings, engine_database: Database, redis: Redis
) -> AsyncIterator[Race]:
    app = app_for(SERVICES, base_settings, make_runtime(base_settings, engine_database, redis))
    async with engine_database.unit_of_work() as session:
        brand, key = await members_service.create_brand(session, f"Race {uuid.uuid4().hex[:6]}")
        await ledger.configure_program(session, brand.id, DEFAULT_PROGRAM)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://kinfolk.test") as client:
            yield Race(
                client, brand.id, bearer(key), engine_database, MemberTokenCodec(base_settings)
            )
    finally:
        await purge_brand(engine_database, brand.id)


def outcomes(responses: list[httpx.Response]) -> Counter[tuple[int, str]]:
    return Counter(
        (r.status_code, "created" if r.status_code == 201 else r.json()["error"]) for r in responses
    )


async def test_200_members_racing_for_10_units_get_exactly_10(race: Race) -> None:
    perk_id = await race.perk(cost_points=100, inventory_total=10)
    members = await race.members(200, points=150)

    responses = await race.redeem_all([(headers, perk_id) for _, headers in members])

    assert outcomes(responses) == {(201, "created"): 10, (409, "OutOfStock"): 190}
    winners = {uuid.UUID(r.json()["member_id"]) for r in responses if r.status_code == 201}
    assert len(winners) == 10
    async with race.database.unit_of_work() as session:
        perk = await session.get(Perk, uuid.UUID(perk_id))
        assert perk is not None
        assert perk.inventory_remaining == 0
        redemptions = await session.scalars(
            select(Redemption.member_id).where(Redemption.perk_id == perk.id)
        )
        assert sorted(redemptions) == sorted(winners)
        charged = await session.execute(
            select(LedgerEntry.member_id, func.count(), func.sum(LedgerEntry.points))
            .where(LedgerEntry.brand_id == race.brand_id, LedgerEntry.kind == EntryKind.REDEEM)
            .group_by(LedgerEntry.member_id)
        )
        assert {row[0]: (row[1], row[2]) for row in charged} == dict.fromkeys(winners, (1, -100))
        balances = await session.execute(
            select(Account.member_id, Account.available).where(Account.brand_id == race.brand_id)
        )
        assert dict(balances.all()) == {m: 50 if m in winners else 150 for m, _ in members}
        for member_id, _ in members:
            assert await ledger.ledger_matches(session, member_id)


async def test_one_member_racing_20_redemptions_gets_exactly_the_limit(race: Race) -> None:
    perk_id = await race.perk(cost_points=100, per_member_limit=2)
    [(member_id, headers)] = await race.members(1, points=300)  # enough for 3

    responses = await race.redeem_all([(headers, perk_id)] * 20)

    assert outcomes(responses) == {(201, "created"): 2, (409, "RedemptionLimitReached"): 18}
    async with race.database.unit_of_work() as session:
        count = await session.scalar(select(func.count()).where(Redemption.member_id == member_id))
        assert count == 2
        account = await session.get(Account, member_id)
        assert account is not None
        assert account.available == 100
        assert await ledger.ledger_matches(session, member_id)


async def test_members_racing_for_a_pool_of_codes_each_get_a_different_one(race: Race) -> None:
    perk_id = await race.perk(kind="discount_code", cost_points=10)
    uploaded = await race.client.post(
        f"/rewards/v1/perks/{perk_id}/codes",
        json={"codes": [f"CODE-{n}" for n in range(10)]},
        headers=race.staff,
    )
    assert uploaded.json()["available"] == 10
    members = await race.members(40, points=10)

    responses = await race.redeem_all([(headers, perk_id) for _, headers in members])

    assert outcomes(responses) == {(201, "created"): 10, (409, "OutOfStock"): 30}
    codes = sorted(r.json()["code"] for r in responses if r.status_code == 201)
    assert codes == sorted(f"CODE-{n}" for n in range(10))
    async with race.database.unit_of_work() as session:
        free = await session.scalar(
            select(func.count()).where(
                PerkCode.perk_id == uuid.UUID(perk_id), PerkCode.redemption_id.is_(None)
            )
        )
        assert free == 0
        for member_id, _ in members:
            assert await ledger.ledger_matches(session, member_id)
