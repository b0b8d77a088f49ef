"""The home-screen query over GraphQL from concurrent clients: requests per second, p50 and p99,
against a bare strawberry schema answering `{ hello }` on the same server in the same run.

The brand is `kinfolk dev`'s demo brand, seeded by the simulator (MEMBERS members, DAYS days),
with its events delivered, a model trained and every member's lists folded in, as the dev
server's workers would have done. The server is `benchmarks.graphql_server`: Kinfolk's app as
`kinfolk serve all --workers 2` builds it, plus the bare schema at `/bare/graphql` in the same
app (same middleware, workers and parser/validation caches).

CLIENTS clients, each with one keep-alive connection (spread evenly over the workers), send
requests back to back for SECONDS; each client asks as a different member (their own token).
Rounds alternate bare, shape and home-screen ROUNDS times; the figures are the medians over
rounds, and the CPU time per request of the server, of PostgreSQL and of this load generator
says where time went. "Shape" is the home-screen query answered from memory on the same server
(`benchmarks/_home_shape.py`: no service, no database, no exposure logged): the floor of any
backend behind this gateway, printed with its own ratio to the bare schema.

Target (issue #7): the home screen at no less than a third of the bare schema's throughput,
p99 under 100 ms.

Run: python3 -m uv run --frozen python -m benchmarks.graphql
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import httpx

from benchmarks import _home_shape as home_shape
from benchmarks._harness import (
    CpuMeter,
    CpuPerRequest,
    closed_loop,
    free_port,
    ms,
    open_balanced_connections,
    report,
    scratch_database,
    servers,
    wait_ready,
)
from benchmarks._http import Connection
from services.demo.seed import ensure_demo_brand, settle
from services.kernel.app import build_app
from services.kernel.auth import MemberTokenCodec
from services.kernel.logging import configure_logging
from services.kernel.runtime import Runtime
from services.kernel.settings import Settings
from services.registry import SERVICES

MEMBERS = int(os.environ.get("KINFOLK_BENCH_MEMBERS", "2000"))
DAYS = int(os.environ.get("KINFOLK_BENCH_DAYS", "90"))
CLIENTS = int(os.environ.get("KINFOLK_BENCH_CLIENTS", "8"))
SECONDS = float(os.environ.get("KINFOLK_BENCH_SECONDS", "10"))
ROUNDS = int(os.environ.get("KINFOLK_BENCH_ROUNDS", "3"))
WORKERS = 2

HOME_QUERY = """
query Home {
  me {
    displayName
    tierStatus { tier { name } spendMinor nextTier { tier { name } remainingMinor } }
    points { available pending expiringSoon { points } }
    recommendedPerks(first: 10) { reason exposureId item { id name costPoints redeemable } }
    recommendedPrompts(first: 10) { reason exposureId item { id title } }
    forYou(first: 10) { reason exposureId item { id body author { displayName } } }
  }
}
"""
BARE_QUERY = "{ hello }"


async def seed(settings: Settings, url: str, redis_url: str) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """The demo brand with lists for every member; returns the brand and its member ids."""
    async with Runtime.open(settings, SERVICES, database_url=url, redis_url=redis_url) as runtime:
        app = build_app(SERVICES, settings, runtime)
        started = time.perf_counter()
        demo = await ensure_demo_brand(settings, runtime, app, size=MEMBERS, days=DAYS)
        print(f"seed: demo brand in {time.perf_counter() - started:.1f} s", flush=True)
        started = time.perf_counter()
        await settle(runtime, demo.brand_id, "bench-graphql")
        print(f"seed: events, model and lists in {time.perf_counter() - started:.1f} s", flush=True)
        members: list[uuid.UUID] = []
        staff = {"Authorization": f"Bearer {demo.api_key}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://kinfolk") as client:
            after: str | None = None
            while len(members) < 500:
                page = (
                    await client.get(
                        "/members/v1/members",
                        params={"limit": 100, **({"after": after} if after else {})},
                        headers=staff,
                    )
                ).json()
                members += [uuid.UUID(m["id"]) for m in page["items"]]
                after = page.get("next")
                if after is None:
                    break
        return demo.brand_id, members


def start_server(url: str, redis_url: str, port: int, jwt_secret: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KINFOLK_DATABASE_URL": url,
        "KINFOLK_REDIS_URL": redis_url,
        "KINFOLK_JWT_SECRET": jwt_secret,
        "KINFOLK_LOG_LEVEL": "WARNING",
        # The limiter runs (its Redis round trip is part of each request's cost), but a load
        # generator's few members and one key must not be held to one person's budget.
        "KINFOLK_RATE_LIMIT_MEMBER_PER_MINUTE": str(10**9),
        "KINFOLK_RATE_LIMIT_API_KEY_PER_MINUTE": str(10**9),
    }
    command = [sys.executable, "-m", "benchmarks.graphql_server"]
    return subprocess.Popen([*command, "--port", str(port), "--workers", str(WORKERS)], env=env)


async def run(url: str, redis_url: str, data_dir: Path) -> None:
    jwt_secret = secrets.token_urlsafe(48)
    settings = Settings(jwt_secret=jwt_secret, data_dir=data_dir, log_level="WARNING")
    configure_logging(settings)  # the seed's thousands of requests would bury the figures
    brand_id, members = await seed(settings, url, redis_url)
    codec = MemberTokenCodec(settings)
    tokens = [
        {"Authorization": f"Bearer {codec.issue(brand_id, m, timedelta(hours=2))}"} for m in members
    ]
    failures: list[str] = []
    counts: list[int] = []

    async def home(client: Connection, i: int) -> None:
        response = await client.post(
            "/graphql", json={"query": HOME_QUERY}, headers=tokens[i % len(tokens)]
        )
        body: dict[str, Any] = response.json() if response.status_code == 200 else {}
        if response.status_code != 200 or body.get("errors"):
            failures.append(f"{response.status_code} {response.text[:300]}")
            return
        me = body["data"]["me"]
        counts.append(
            len(me["recommendedPerks"]) + len(me["recommendedPrompts"]) + len(me["forYou"])
        )

    async def shape(client: Connection, i: int) -> None:
        response = await client.post("/shape/graphql", json={"query": HOME_QUERY})
        body: dict[str, Any] = response.json() if response.status_code == 200 else {}
        if (
            response.status_code != 200
            or body.get("errors")
            or len(body["data"]["me"]["forYou"]) != home_shape.POSTS
        ):
            failures.append(f"shape {response.status_code} {response.text[:200]}")

    async def bare(client: Connection, i: int) -> None:
        response = await client.post("/bare/graphql", json={"query": BARE_QUERY})
        if response.status_code != 200 or response.json() != {"data": {"hello": "world"}}:
            failures.append(f"bare {response.status_code} {response.text[:200]}")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(url, redis_url, port, jwt_secret)
    try:
        await wait_ready(base, server)
        clients, spread = await open_balanced_connections(base, server.pid, CLIENTS, WORKERS)
        print(f"clients: {CLIENTS}, connections per worker: {spread}", flush=True)
        try:
            await closed_loop(clients, home, 3.0)  # warm both workers, pools and caches
            await closed_loop(clients, bare, 2.0)
            await closed_loop(clients, shape, 2.0)
            if failures:
                sys.exit(f"the home-screen query failed: {failures[:2]}")
            print(
                f"home screen: {statistics.mean(counts):.1f} recommended items per answer",
                flush=True,
            )
            cpu = CpuMeter(server.pid)
            results: dict[str, list[tuple[list[float], float, CpuPerRequest]]] = {
                "bare": [],
                "shape": [],
                "home": [],
            }
            for round_no in range(1, ROUNDS + 1):
                for name, send in (("bare", bare), ("shape", shape), ("home", home)):
                    cpu.start()
                    latencies, rps = await closed_loop(clients, send, SECONDS)
                    used = cpu.per_request_ms(len(latencies))
                    results[name].append((latencies, rps, used))
                    print(
                        f"round {round_no} {name}: {rps:.0f} requests/s, p50 "
                        f"{ms(latencies, 50):.1f} ms, p99 {ms(latencies, 99):.1f} ms; CPU per "
                        f"request: {used.describe()}",
                        flush=True,
                    )
        finally:
            for client in clients:
                await client.aclose()
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    if failures:
        sys.exit(f"{len(failures)} requests failed, e.g. {failures[:3]}")

    def med(name: str, pick: Callable[[tuple[list[float], float, CpuPerRequest]], float]) -> float:
        return statistics.median(pick(r) for r in results[name])

    home_rps, bare_rps = med("home", lambda r: r[1]), med("bare", lambda r: r[1])
    shape_rps = med("shape", lambda r: r[1])
    print(
        f"the home screen's shape from memory: {shape_rps:.0f} requests/s, "
        f"{shape_rps / bare_rps:.3f} of the bare schema's: no backend behind this gateway "
        "can take the home screen past that",
        flush=True,
    )
    report(
        "graphql_home_screen",
        value=home_rps,
        unit="requests/s",
        anchor="bare strawberry schema `{ hello }` on the same server",
        anchor_value=bare_rps,
        target="ratio >= 0.333 and p99 < 100 ms",
        p50_ms=round(med("home", lambda r: ms(r[0], 50)), 2),
        p99_ms=round(med("home", lambda r: ms(r[0], 99)), 2),
        anchor_p50_ms=round(med("bare", lambda r: ms(r[0], 50)), 2),
        anchor_p99_ms=round(med("bare", lambda r: ms(r[0], 99)), 2),
        server_cpu_ms=round(med("home", lambda r: r[2].server), 2),
        anchor_server_cpu_ms=round(med("bare", lambda r: r[2].server), 2),
        generator_cpu_ms=round(med("home", lambda r: r[2].generator), 2),
        postgresql_cpu_ms=round(med("home", lambda r: r[2].postgresql), 2),
        shape_rps=round(shape_rps, 1),
        shape_ratio=round(shape_rps / bare_rps, 4),
        shape_p99_ms=round(med("shape", lambda r: ms(r[0], 99)), 2),
        shape_server_cpu_ms=round(med("shape", lambda r: r[2].server), 2),
        clients=CLIENTS,
        seconds=SECONDS,
        rounds=ROUNDS,
        members=MEMBERS,
        connections_per_worker=spread,
    )


async def main() -> None:
    with servers() as urls, TemporaryDirectory() as data_dir:
        name = f"kinfolk_bench_graphql_{os.getpid()}"
        async with scratch_database(urls.database_url, name) as url:
            await run(url, urls.redis_url, Path(data_dir))


if __name__ == "__main__":
    try:
        import uvloop  # keeps the load generator light (uvicorn serves on it too)
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
