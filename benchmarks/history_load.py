"""Purchases per second through the bulk history loader, against COPY of the rows it writes.

MEMBERS members (rewards accounts), PURCHASES_PER_MEMBER simple purchases each over the last
year (one line, a category rule, three tiers, a campaign, 14 pending days: every purchase earns
pending points, most are released, tiers go up), loaded by `rewards.history.load_history` in
batches of BATCH members, one transaction and commit per batch, end to end (the Python replay,
COPY of every table, the accounts update, the outbox). The anchor: the same rows (purchases,
ledger entries, lots, tier changes, outbox) read back and COPYed alone into tables shaped like
theirs, i.e. what the writes cost without any of the replay.

Run: python3 -m uv run --frozen python -m benchmarks.history_load
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from datetime import timedelta

import orjson
from sqlalchemy import text

from benchmarks._harness import report, scratch_database, servers
from services.kernel.clock import utcnow
from services.kernel.db import Database
from services.kernel.ids import new_id
from services.kernel.logging import configure_logging
from services.kernel.settings import Settings
from services.members import service as members_service
from services.rewards.earning.schemas import CampaignCreate, CategoryRuleCreate
from services.rewards.earning.service import create_campaign, create_rule
from services.rewards.history.schemas import HistoricLine, HistoricPurchase
from services.rewards.history.service import load_history
from services.rewards.ledger import service as ledger
from services.rewards.ledger.schemas import ProgramSettings
from services.rewards.tiers.schemas import TierCreate
from services.rewards.tiers.service import create_tier

MEMBERS = int(os.environ.get("KINFOLK_BENCH_MEMBERS", "30000"))
PURCHASES_PER_MEMBER = int(os.environ.get("KINFOLK_BENCH_PURCHASES", "3"))
BATCH = int(os.environ.get("KINFOLK_BENCH_BATCH", "10000"))
TABLES = ("purchases", "ledger_entries", "lots", "tier_changes", "outbox")


async def seed(database: Database) -> tuple[uuid.UUID, list[uuid.UUID]]:
    async with database.sessionmaker() as session:
        brand, _ = await members_service.create_brand(session, "Bench")
        await ledger.configure_program(
            session, brand.id, ProgramSettings(currency="EUR", points_per_unit=1, pending_days=14)
        )
        for name, rank, threshold in (("Bronze", 0, 0), ("Silver", 1, 20_000), ("Gold", 2, 60_000)):
            await create_tier(
                session, brand.id, TierCreate(name=name, rank=rank, threshold_minor=threshold)
            )
        await create_rule(
            session,
            brand.id,
            CategoryRuleCreate(
                kind="category_multiplier", name="Skin", category="skincare", multiplier=2
            ),
        )
        now = utcnow()
        await create_campaign(
            session,
            brand.id,
            CampaignCreate(
                name="Spring",
                starts_at=now - timedelta(days=200),
                ends_at=now - timedelta(days=170),
                multiplier=2,
            ),
        )
        members = [new_id() for _ in range(MEMBERS)]
        # The accounts as the members projection would have made them (setup, not measured).
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        await driver.copy_records_to_table(
            "accounts",
            schema_name="rewards",
            columns=["member_id", "brand_id", "external_id"],
            records=[(m, brand.id, f"m-{i}") for i, m in enumerate(members)],
        )
        await session.commit()
        return brand.id, members


def history(members: list[uuid.UUID]) -> list[HistoricPurchase]:
    rng = random.Random(1)
    now = utcnow()
    bought = []
    for member in members:
        for n in range(PURCHASES_PER_MEMBER):
            amount = rng.randrange(1_000, 30_000)
            bought.append(
                HistoricPurchase(
                    member_id=member,
                    order_id=f"{member.hex}-{n}",
                    occurred_at=now - timedelta(seconds=rng.randrange(60, 365 * 86_400)),
                    currency="EUR",
                    amount_minor=amount,
                    lines=(
                        HistoricLine(
                            sku=f"SKU-{rng.randrange(50)}",
                            category=rng.choice(("skincare", "makeup", "hair")),
                            quantity=1,
                            amount_minor=amount,
                        ),
                    ),
                )
            )
    return bought


async def load(database: Database, brand_id: uuid.UUID, members: list[uuid.UUID]) -> float:
    start = time.perf_counter()
    purchases = 0
    for at in range(0, len(members), BATCH):
        batch = history(members[at : at + BATCH])
        async with database.sessionmaker() as session:
            result = await load_history(session, brand_id, batch)
            await session.commit()
        purchases += result.purchases
    elapsed = time.perf_counter() - start
    return purchases / elapsed


async def anchor(database: Database, purchases: int) -> float:
    """COPY of the rows the load wrote, read back first (not timed)."""
    async with database.engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        rows: dict[str, list[tuple[object, ...]]] = {}
        for table in TABLES:
            await driver.execute(
                f"CREATE TABLE public.copy_{table} (LIKE rewards.{table} INCLUDING ALL)"
            )
            # JSON columns come back decoded; COPY takes them as text, as the load sent them.
            rows[table] = [
                tuple(
                    orjson.dumps(value).decode() if isinstance(value, list | dict) else value
                    for value in row
                )
                for row in await driver.fetch(f"SELECT * FROM rewards.{table}")
            ]
        start = time.perf_counter()
        for table in TABLES:
            await driver.copy_records_to_table(
                f"copy_{table}", schema_name="public", records=rows[table]
            )
        elapsed = time.perf_counter() - start
        await connection.commit()
    return purchases / elapsed


async def main() -> None:
    with servers() as urls:
        async with scratch_database(
            urls.database_url, f"kinfolk_bench_history_{os.getpid()}"
        ) as url:
            settings = Settings(database_url=url, redis_url=urls.redis_url, log_level="WARNING")
            configure_logging(settings)
            database = Database(url)
            try:
                brand_id, members = await seed(database)
                rate = await load(database, brand_id, members)
                async with database.engine.connect() as connection:
                    counts = {
                        table: (
                            await connection.execute(text(f"SELECT count(*) FROM rewards.{table}"))
                        ).scalar_one()
                        for table in TABLES
                    }
                copy_rate = await anchor(database, counts["purchases"])
            finally:
                await database.dispose()
    report(
        "history_load",
        value=rate,
        unit="purchases/s",
        anchor="postgres_copy_of_the_same_rows",
        anchor_value=copy_rate,
        target=">= 20000 purchases/s end to end",
        members=MEMBERS,
        rows=counts,
    )


if __name__ == "__main__":
    asyncio.run(main())
