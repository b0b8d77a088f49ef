"""Purchases per second through `POST /rewards/v1/purchases`, against pgbench on the same server.

The members and their baskets (1 to 5 lines with skus, categories and amounts) come from the
simulator's world; the clients replay its orders round-robin as purchases happening now.

A real server (`kinfolk serve all --workers 2`, a subprocess) takes purchases from CLIENTS
concurrent HTTP clients (one keep-alive connection each, spread evenly over the workers as a
load balancer would; see `_harness.open_balanced_connections`) for DURATION seconds; pgbench runs
its built-in TPC-B-like script with the same number of clients on the same PostgreSQL, in the
same run. Two rounds in alternating order; medians, with the CPU a purchase took in the server
and in PostgreSQL (pgbench's own connections end with its run, so /proc cannot tell its share
of PostgreSQL's). As context it prints what the same clients reach against `GET /healthz` (the
load generator shares the machine's cores with the server and PostgreSQL; pgbench's client is
C, ours writes requests as bytes and reads answers with httptools, `benchmarks/_http.py`). At
the end every member's cached balance must equal the sum of their ledger entries and the points
of all accepted purchases (zero drift).

Run: python3 -m uv run --frozen python -m benchmarks.ledger
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import httpx
from sqlalchemy import text

from benchmarks._harness import (
    CpuMeter,
    closed_loop,
    free_port,
    median,
    open_balanced_connections,
    pgbench_args,
    pgbench_binary,
    report,
    scratch_database,
    servers,
    wait_ready,
)
from benchmarks._http import Connection
from services.demo.members import CATEGORIES
from services.kernel.consumer import ConsumerRunner
from services.kernel.db import Database
from services.kernel.logging import configure_logging
from services.kernel.relay import Relay
from services.kernel.settings import Settings
from services.members import service as members_service
from services.registry import SERVICES
from services.rewards.ledger.projection import MEMBERS_PROJECTION
from services.rewards.ledger.repository import LedgerRepository
from simulator import world
from simulator.records import member_ndjson

CLIENTS = int(os.environ.get("KINFOLK_BENCH_CLIENTS", "16"))
DURATION = float(os.environ.get("KINFOLK_BENCH_SECONDS", "20"))
MEMBERS = int(os.environ.get("KINFOLK_BENCH_MEMBERS", "2000"))
ROUNDS = 2
# The members and their orders come from the simulator's world.
WORLD = world.WorldParams(members=MEMBERS, days=365, seed=42, start=date(2025, 1, 1))
WORKERS = 2


async def seed(database_url: str, redis_url: str, settings: Settings) -> str:
    """A brand with a program and the simulated world's MEMBERS members, known to rewards
    through the real projection."""
    from services.kernel.app import build_app
    from services.kernel.runtime import Runtime

    async with Runtime.open(
        settings, SERVICES, database_url=database_url, redis_url=redis_url
    ) as rt:
        async with rt.database.unit_of_work() as session:
            _, api_key = await members_service.create_brand(session, "Ledger bench")
        app = build_app(SERVICES, settings, rt)
        headers = {"Authorization": f"Bearer {api_key}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            program = {"currency": "EUR", "points_per_unit": 1}
            (
                await client.put("/rewards/v1/program", json=program, headers=headers)
            ).raise_for_status()
            body = member_ndjson(WORLD, world.make_members(WORLD), 0, MEMBERS)
            imported = await client.post(
                "/members/v1/members/import",
                content=body,
                headers={**headers, "Content-Type": "application/x-ndjson"},
                timeout=300,
            )
            imported.raise_for_status()
        # Members reach rewards as they do in production: relay, stream, projection consumer.
        await Relay(rt.database, rt.redis, SERVICES, settings).publish_pending()
        runner = ConsumerRunner(rt.database, rt.redis, [MEMBERS_PROJECTION], settings, "bench")
        while await runner.process_once():
            pass
    return api_key


Basket = tuple[str, int, list[dict[str, object]]]  # external id, amount, lines


def baskets() -> list[Basket]:
    """The simulated world's orders (member, amount, lines), replayed by the clients as new
    purchases happening now, round-robin."""
    members = world.make_members(WORLD)
    catalog = world.make_catalog(WORLD)
    skus = catalog.sku.tolist()
    found: list[Basket] = []
    for chunk in range(WORLD.chunks):
        batch = world.purchases(WORLD, members, catalog, chunk)
        bounds = batch.line_start.tolist()
        for k, (member, amount) in enumerate(
            zip(batch.member.tolist(), batch.amount_minor.tolist(), strict=True)
        ):
            lines: list[dict[str, object]] = [
                {
                    "sku": skus[int(batch.sku[j])],
                    "category": CATEGORIES[int(batch.category[j])],
                    "quantity": int(batch.quantity[j]),
                    "amount_minor": int(batch.line_amount_minor[j]),
                }
                for j in range(bounds[k], bounds[k + 1])
            ]
            found.append((world.external_id(WORLD.seed, member), amount, lines))
    return found


async def healthz_rate(clients: list[Connection], seconds: float) -> float:
    """Requests/s of the same clients against GET /healthz: the ceiling the HTTP client and
    the framework leave on this machine, printed as context."""

    async def healthz(client: Connection, _: int) -> None:
        answer = await client.get("/healthz")
        if answer.status_code != 200:
            sys.exit(f"GET /healthz answered {answer.status_code}")

    return (await closed_loop(clients, healthz, seconds))[1]


async def drive(
    clients: list[Connection], api_key: str, orders: list[Basket], seconds: float
) -> list[float]:
    """CLIENTS loops posting purchases with fresh order ids; returns each request's latency."""
    latencies: list[float] = []
    failures = 0
    order = itertools.count()
    deadline = time.perf_counter() + seconds
    headers = {"Authorization": f"Bearer {api_key}"}
    run = uuid.uuid4().hex[:6]

    async def client_loop(client: Connection) -> None:
        nonlocal failures
        while time.perf_counter() < deadline:
            n = next(order)
            external_id, amount, lines = orders[n % len(orders)]
            body = {
                "external_id": external_id,
                "order_id": f"{run}-{n}",
                "amount_minor": amount,
                "currency": "EUR",
                "lines": lines,
                "occurred_at": datetime.now(UTC).isoformat(),
            }
            started = time.perf_counter()
            response = await client.post("/rewards/v1/purchases", json=body, headers=headers)
            latencies.append(time.perf_counter() - started)
            if response.status_code not in (200, 201):
                failures += 1
                if failures <= 3:
                    print(f"purchase failed: {response.status_code} {response.text[:300]}")

    await asyncio.gather(*(client_loop(client) for client in clients))
    if failures:
        sys.exit(f"{failures} purchases failed")
    return latencies


def init_pgbench(url: str) -> None:
    command = [pgbench_binary(), "-i", "-q", "-s", "10", *pgbench_args(url)]
    subprocess.run(command, check=True, capture_output=True)


def run_pgbench(url: str, seconds: float) -> float:
    command = [pgbench_binary(), "-n", "-c", str(CLIENTS), "-j", "2", "-T", str(int(seconds))]
    result = subprocess.run(
        [*command, *pgbench_args(url)], capture_output=True, text=True, check=True
    )
    match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", result.stdout)
    assert match, result.stdout
    return float(match.group(1))


async def drift(database_url: str) -> int:
    """Members whose cached balance differs from their entries, plus purchases whose points
    differ from what their ledger lines say: must be zero."""
    database = Database(database_url)
    try:
        async with database.unit_of_work() as session:
            balances = len(await LedgerRepository(session).drifted_accounts())
            purchases = await session.scalar(
                text(
                    """SELECT abs(
                         (SELECT coalesce(sum(points), 0) FROM rewards.purchases) -
                         (SELECT coalesce(sum(points), 0) FROM rewards.ledger_entries
                          WHERE source_type = 'purchase' AND kind = 'earn'))"""
                )
            )
        return balances + int(purchases or 0)
    finally:
        await database.dispose()


def start_server(database_url: str, redis_url: str, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KINFOLK_DATABASE_URL": database_url,
        "KINFOLK_REDIS_URL": redis_url,
        "KINFOLK_LOG_LEVEL": "WARNING",
        # The limiter runs (its Redis round trip is part of each request's cost), but a load
        # generator's few members and one key must not be held to one person's budget.
        "KINFOLK_RATE_LIMIT_MEMBER_PER_MINUTE": str(10**9),
        "KINFOLK_RATE_LIMIT_API_KEY_PER_MINUTE": str(10**9),
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.cli",
            "serve",
            "all",
            "--port",
            str(port),
            "--workers",
            str(WORKERS),
        ],
        env=env,
    )


@dataclass(slots=True)
class Rounds:
    ours: list[float] = field(default_factory=list)  # purchases/s per round
    theirs: list[float] = field(default_factory=list)  # pgbench's tps per round
    latencies: list[float] = field(default_factory=list)
    server_cpu_ms: list[float] = field(default_factory=list)  # a purchase, per round
    postgresql_cpu_ms: list[float] = field(default_factory=list)  # a purchase, per round


async def run_rounds(
    clients: list[Connection], api_key: str, orders: list[Basket], pgbench_url: str, cpu: CpuMeter
) -> Rounds:
    """Alternating rounds of our load and pgbench; ours with the CPU a purchase took."""
    rounds = Rounds()
    for round_ in range(ROUNDS):
        order = ("kinfolk", "pgbench") if round_ % 2 == 0 else ("pgbench", "kinfolk")
        for which in order:
            if which == "pgbench":
                tps = await asyncio.to_thread(run_pgbench, pgbench_url, DURATION)
                rounds.theirs.append(tps)
                print(f"round {round_ + 1}: pgbench {tps:8.0f} tps", flush=True)
                continue
            cpu.start()
            started = time.perf_counter()
            measured = await drive(clients, api_key, orders, DURATION)
            rate = len(measured) / (time.perf_counter() - started)
            used = cpu.per_request_ms(len(measured))
            rounds.ours.append(rate)
            rounds.latencies += measured
            rounds.server_cpu_ms.append(used.server)
            rounds.postgresql_cpu_ms.append(used.postgresql)
            p99 = statistics.quantiles(measured, n=100)[98] * 1000
            print(
                f"round {round_ + 1}: kinfolk {rate:8.0f} purchases/s, p99 {p99:.1f} ms; CPU a "
                f"purchase: {used.describe()}",
                flush=True,
            )
    return rounds


async def main() -> None:
    with servers() as urls:
        pid = os.getpid()
        async with (
            scratch_database(urls.database_url, f"kinfolk_bench_ledger_{pid}") as url,
            scratch_database(urls.database_url, f"kinfolk_bench_pgbench_{pid}") as pgbench_url,
        ):
            settings = Settings(database_url=url, redis_url=urls.redis_url, log_level="WARNING")
            configure_logging(settings)
            api_key = await seed(url, urls.redis_url, settings)
            orders = baskets()
            await asyncio.to_thread(init_pgbench, pgbench_url)
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            server = start_server(url, urls.redis_url, port)
            try:
                await wait_ready(base, server)
                clients, spread = await open_balanced_connections(
                    base, server.pid, CLIENTS, WORKERS
                )
                print(f"connections per worker: {spread}", flush=True)
                try:
                    await drive(clients, api_key, orders, 2.0)  # warm up both workers
                    healthz = await healthz_rate(clients, 5.0)
                    print(
                        f"context: GET /healthz with the same clients: {healthz:.0f}/s", flush=True
                    )
                    rounds = await run_rounds(
                        clients, api_key, orders, pgbench_url, CpuMeter(server.pid)
                    )
                finally:
                    for client in clients:
                        await client.aclose()
            finally:
                server.send_signal(signal.SIGINT)
                server.wait(timeout=30)
            drifted = await drift(url)
            print(f"balance drift after the run: {drifted}")
    cuts = statistics.quantiles(rounds.latencies, n=100)
    report(
        "ledger_purchases",
        value=median(rounds.ours),
        unit="purchases/s",
        anchor=f"pgbench_tpcb_{CLIENTS}_clients",
        anchor_value=median(rounds.theirs),
        target=">= 0.5 of pgbench, p99 < 50 ms, zero drift",
        p50_ms=round(statistics.median(rounds.latencies) * 1000, 2),
        p99_ms=round(cuts[98] * 1000, 2),
        drift=drifted,
        server_cpu_ms=round(median(rounds.server_cpu_ms), 2),
        postgresql_cpu_ms=round(median(rounds.postgresql_cpu_ms), 2),
        healthz_rps=round(healthz, 1),
        connections_per_worker=spread,
        clients=CLIENTS,
        seconds=DURATION,
    )


if __name__ == "__main__":
    asyncio.run(main())
