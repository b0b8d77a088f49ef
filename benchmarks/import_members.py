"""Members imported per second through the bulk import API, against PostgreSQL's own COPY.

For 100,000 members of the simulator's world (`simulator.world`, a seed per round), three
rounds: each round imports the rows as NDJSON through
`POST /members/v1/members/import` (validation, the members table with its indexes, one
`member.created` outbox event per member, all in one transaction), and COPYs the same rows as CSV
into a plain table shaped like the members table (same columns and indexes: the anchor). Rounds
alternate the order; the medians and their ratio are reported.

Run: python3 -m uv run --frozen python -m benchmarks.import_members
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import sys
import time
from datetime import date

import httpx
import orjson
from sqlalchemy import text

from benchmarks._harness import median, report, scratch_database, servers
from services.kernel.app import build_app
from services.kernel.db import Database
from services.kernel.logging import configure_logging
from services.kernel.runtime import Runtime
from services.kernel.settings import Settings
from services.members import service as members_service
from services.registry import SERVICES
from simulator import world
from simulator.records import member_ndjson

MEMBERS = int(os.environ.get("KINFOLK_BENCH_MEMBERS", "100000"))
ROUNDS = 3


def rows(count: int, seed: int) -> list[dict[str, object]]:
    """`count` members of the simulator's world for `seed` (each round its own seed, so its own
    external ids), as the import file would carry them."""
    params = world.WorldParams(members=count, days=365, seed=seed, start=date(2025, 1, 1))
    ndjson = member_ndjson(params, world.make_members(params), 0, count)
    return [orjson.loads(line) for line in ndjson.splitlines()]


def as_ndjson(members: list[dict[str, object]]) -> bytes:
    return b"\n".join(orjson.dumps(m) for m in members)


def as_csv(members: list[dict[str, object]], brand_id: str) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for m in members:
        writer.writerow(
            [
                brand_id,
                m["external_id"],
                m["email"],
                m["display_name"],
                m["birthday"],
                m["locale"],
                m["time_zone"],
                json.dumps(m["traits"]),
                "{" + ",".join(f'"{i}"' for i in m["interests"]) + "}",  # type: ignore[attr-defined]
            ]
        )
    return buffer.getvalue().encode()


async def timed_import(client: httpx.AsyncClient, api_key: str, body: bytes) -> float:
    started = time.perf_counter()
    response = await client.post(
        "/members/v1/members/import",
        content=body,
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/x-ndjson"},
        timeout=600,
    )
    elapsed = time.perf_counter() - started
    result = response.json()
    if response.status_code != 200 or result["imported"] != MEMBERS:
        sys.exit(f"import failed: {response.status_code} {str(result)[:500]}")
    return elapsed


async def timed_copy(database: Database, body: bytes) -> float:
    async with database.engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        await conn.execute(text("TRUNCATE bench.members_copy"))
        await conn.commit()
        started = time.perf_counter()
        await raw.copy_to_table(
            "members_copy",
            schema_name="bench",
            source=io.BytesIO(body),
            format="csv",
            columns=COPY_COLUMNS,
        )
        return time.perf_counter() - started


COPY_COLUMNS = [
    "brand_id", "external_id", "email", "display_name", "birthday",
    "locale", "time_zone", "traits", "interests",
]  # fmt: skip


async def create_anchor_table(database: Database) -> None:
    """The anchor's table: the members table's columns, defaults and indexes."""
    async with database.engine.begin() as conn:
        await conn.execute(text("CREATE SCHEMA IF NOT EXISTS bench"))
        await conn.execute(
            text("CREATE TABLE bench.members_copy (LIKE members.members INCLUDING ALL)")
        )
        await conn.execute(
            text("ALTER TABLE bench.members_copy ALTER COLUMN id SET DEFAULT gen_random_uuid()")
        )


async def run_rounds(
    runtime: Runtime, client: httpx.AsyncClient
) -> tuple[list[float], list[float]]:
    import_rates: list[float] = []
    copy_rates: list[float] = []
    for round_ in range(ROUNDS):
        async with runtime.database.unit_of_work() as session:
            brand, api_key = await members_service.create_brand(session, f"Bench {round_}")
        members = rows(MEMBERS, seed=round_ + 1)
        ndjson, csv_body = as_ndjson(members), as_csv(members, str(brand.id))
        # Alternate which goes first, so neither always meets a warmer cache.
        order = ["import", "copy"] if round_ % 2 == 0 else ["copy", "import"]
        for kind in order:
            if kind == "import":
                seconds = await timed_import(client, api_key, ndjson)
                import_rates.append(MEMBERS / seconds)
            else:
                seconds = await timed_copy(runtime.database, csv_body)
                copy_rates.append(MEMBERS / seconds)
            rate = MEMBERS / seconds
            print(
                f"round {round_ + 1}: {kind:6s} {MEMBERS} rows in {seconds:6.2f} s = {rate:9.0f}/s"
            )
    return import_rates, copy_rates


async def main() -> None:
    with servers() as urls:
        name = f"kinfolk_bench_import_{os.getpid()}"
        async with scratch_database(urls.database_url, name) as url:
            settings = Settings(database_url=url, redis_url=urls.redis_url, log_level="WARNING")
            configure_logging(settings)
            async with Runtime.open(
                settings, SERVICES, database_url=url, redis_url=urls.redis_url
            ) as runtime:
                await create_anchor_table(runtime.database)
                app = build_app(SERVICES, settings, runtime)
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://bench"
                ) as client:
                    import_rates, copy_rates = await run_rounds(runtime, client)
    report(
        "import_members",
        value=median(import_rates),
        unit="members/s",
        anchor="postgres_copy_csv_same_rows",
        anchor_value=median(copy_rates),
        target="thousands of members/s (>= 5000/s) and >= 0.1 of COPY",
        members=MEMBERS,
        rounds=ROUNDS,
    )


if __name__ == "__main__":
    asyncio.run(main())
