"""Purchases under concurrent load, on committed data: many requests at once, duplicates among
them, through the real app and a pooled database. Each test has a brand of its own, purged after.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select

from services.kernel.clock import utcnow
from services.kernel.db import Database
from services.kernel.events import parse_event
from services.kernel.settings import Settings
from services.members import service as members_service
from services.members.models import OUTBOX as MEMBERS_OUTBOX
from services.registry import SERVICES
from services.rewards.ledger import service as ledger
from services.rewards.ledger.projection import apply_member_event
from services.rewards.models import Account, LedgerEntry, Purchase, TierChange
from tests.conftest import app_for, make_runtime, purge_brand

CONCURRENCY = 16  # the pool has 10 + 10 connections


@dataclass
class Committed:
    client: httpx.AsyncClient
    brand_id: uuid.UUID
    headers: dict[str, str]
    database: Database

    async def members(self, count: int) -> list[str]:
        """`count` members, created through the members API and projected into rewards."""
        external_ids = [f"load-{n}" for n in range(count)]
        for external_id in external_ids:
            response = await self.client.post(
                "/members/v1/members", json={"external_id": external_id}, headers=self.headers
            )
            assert response.status_code == 201, response.text
        async with self.database.unit_of_work() as session:
            table = MEMBERS_OUTBOX.table
            rows = await session.execute(
                select(table.c.payload)
                .where(table.c.brand_id == self.brand_id)
                .order_by(table.c.id)
            )
            for (payload,) in rows:
                await apply_member_event(session, parse_event(orjson.dumps(payload)))
        return external_ids

    async def accounts(self) -> dict[str, Account]:
        async with self.database.unit_of_work() as session:
            rows = await session.scalars(select(Account).where(Account.brand_id == self.brand_id))
            return {account.external_id or "": account for account in rows}


@pytest.fixture
async def committed(
    base_settings: Settings, engine_database: Database, redis: Redis
) -> AsyncIterator[Committed]:
    app = app_for(SERVICES, base_settings, make_runtime(base_settings, engine_database, redis))
    async with engine_database.unit_of_work() as session:
        brand, key = await members_service.create_brand(session, f"Load {uuid.uuid4().hex[:6]}")
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    headers = {"Authorization": f"Bearer {key}"}
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://kinfolk.test", timeout=60
        ) as client:
            program = {"currency": "EUR", "points_per_unit": 1}
            response = await client.put("/rewards/v1/program", json=program, headers=headers)
            assert response.status_code == 200, response.text
            yield Committed(client, brand.id, headers, engine_database)
    finally:
        await purge_brand(engine_database, brand.id)


async def _post_all(committed: Committed, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def post(body: dict[str, Any]) -> httpx.Response:
        async with gate:
            return await committed.client.post(
                "/rewards/v1/purchases", json=body, headers=committed.headers
            )

    return await asyncio.gather(*(post(body) for body in bodies))


async def test_500_concurrent_purchases_with_20_percent_duplicates_give_the_exact_balance(
    committed: Committed,
) -> None:
    external_ids = await committed.members(10)
    rule = {
        "kind": "category_multiplier",
        "name": "Skincare x2",
        "category": "skincare",
        "multiplier": 2,
    }
    response = await committed.client.post(
        "/rewards/v1/rules", json=rule, headers=committed.headers
    )
    assert response.status_code == 201

    occurred_at = utcnow().isoformat()
    orders: list[dict[str, Any]] = []
    expected: Counter[str] = Counter()
    for n in range(400):
        member = external_ids[n % len(external_ids)]
        amount = 1_000 + (n % 37) * 100  # whole euros
        category = "skincare" if n % 3 == 0 else "body"
        orders.append(
            {
                "external_id": member,
                "order_id": f"L-{n}",
                "amount_minor": amount,
                "currency": "EUR",
                "lines": [
                    {"sku": f"S-{n}", "category": category, "quantity": 1, "amount_minor": amount}
                ],
                "occurred_at": occurred_at,
            }
        )
        expected[member] += amount // 100 * (2 if category == "skincare" else 1)
    shuffler = random.Random(20240601)
    duplicates = [dict(shuffler.choice(orders)) for _ in range(100)]  # some orders thrice or more
    bodies = orders + duplicates
    shuffler.shuffle(bodies)

    responses = await _post_all(committed, bodies)

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 400, 200: 100}, [r.text for r in responses if r.status_code >= 300][:3]
    first: dict[str, bytes] = {}
    for body, response in zip(bodies, responses, strict=True):
        if response.status_code == 201:
            first[body["order_id"]] = response.content
    for body, response in zip(bodies, responses, strict=True):
        assert response.content == first[body["order_id"]]  # every replay: the first answer
        if response.status_code == 200:
            assert response.headers["Idempotent-Replayed"] == "true"

    accounts = await committed.accounts()
    assert {e: accounts[e].available for e in external_ids} == dict(expected)
    assert {accounts[e].pending for e in external_ids} == {0}
    async with committed.database.unit_of_work() as session:
        for account in accounts.values():
            assert await ledger.ledger_matches(session, account.member_id)
        purchases = await session.scalar(
            select(func.count())
            .select_from(Purchase)
            .where(Purchase.brand_id == committed.brand_id)
        )
        earned = await session.scalar(
            select(func.sum(LedgerEntry.points)).where(
                LedgerEntry.brand_id == committed.brand_id, LedgerEntry.source_type == "purchase"
            )
        )
    assert purchases == 400
    assert earned == sum(expected.values())


async def test_concurrent_purchases_of_one_member_see_each_other_s_spend_for_tiers(
    committed: Committed,
) -> None:
    (member,) = await committed.members(1)
    for tier in (
        {"name": "Insider", "rank": 0, "threshold_minor": 0},
        {"name": "Gold", "rank": 1, "threshold_minor": 100_000, "multiplier": 2},
    ):
        response = await committed.client.post(
            "/rewards/v1/tiers", json=tier, headers=committed.headers
        )
        assert response.status_code == 201, response.text
    occurred_at = utcnow().isoformat()
    bodies = [
        {
            "external_id": member,
            "order_id": f"T-{n}",
            "amount_minor": 10_000,
            "currency": "EUR",
            "lines": [],
            "occurred_at": occurred_at,
        }
        for n in range(20)
    ]
    responses = await _post_all(committed, bodies)
    assert [r.status_code for r in responses] == [201] * 20
    # Purchases run one at a time per member: the first joins Insider, the tenth reaches Gold
    # (1,000 EUR), and the ten after it earn at Gold's x2, whatever order they ran in.
    accounts = await committed.accounts()
    assert accounts[member].available == 10 * 100 + 10 * 200
    async with committed.database.unit_of_work() as session:
        changes = (
            await session.scalars(
                select(TierChange.window_spend_minor)
                .where(TierChange.brand_id == committed.brand_id)
                .order_by(TierChange.changed_at)
            )
        ).all()
    assert list(changes) == [10_000, 100_000]
