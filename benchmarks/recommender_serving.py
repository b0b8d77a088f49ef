"""Recommendation lists served through `GET /recommender/v1/members/{id}/recommendations` at a
fixed 500 requests/s: the p50 and p99 latency, against `GET /healthz` at the same rate.

The brand (written straight to the recommender's tables with COPY: this measures serving, not
training) has MEMBERS members (three tiers and members without one, one in ten without the
personalisation consent) with a precomputed list of LIST_LENGTH items on each of the six surfaces,
the brand's non-personalised lists per tier, a catalog of ITEMS items (perks, prompts,
experiences with sessions, posts; some out of stock, expired or for one tier only, a few hundred
with little data for exploration) and about ten interactions per member (redemptions,
dismissals and purchases, which the rules read). Exploration runs at the setting's default share.

A real server (`kinfolk serve all --workers 2`, a subprocess) answers an open-loop load: request i
is due at start + i / RATE whatever happened before it, sent on one of CONNECTIONS keep-alive
connections spread evenly over the workers, each for a random member (with their own token) and
a random surface; latency runs from when the request was due, so a stall shows in every request
it delays. The anchor is the same load on `GET /healthz` of the same server: what the HTTP stack,
the load generator and this machine cost with no work behind the route, run for half the time
before the route's load and half after it. Each half is printed; the JSON's anchor is the half
before, because the half after also measures how the server recovers from the route's load
when the route did not keep up (a backlog of seconds). The route's load runs ROUNDS rounds of
DURATION seconds, each printed with its CPU time per request of the server's processes, of
PostgreSQL and of the load generator (from /proc), which says where the time went when the
machine is shared, with the share of the machine's cores those three kept busy (the latencies'
tail grows steeply as it nears 1), and with how evenly the machine ran (`MachineProbe`); the
JSON's figures are the medians of the rounds, each round's p99 and busy share beside them.

Run: python3 -m uv run --frozen python -m benchmarks.recommender_serving
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from benchmarks._harness import (
    CpuMeter,
    CpuPerRequest,
    MachineProbe,
    free_port,
    median,
    ms,
    open_balanced_connections,
    report,
    scratch_database,
    servers,
    wait_ready,
)
from benchmarks._http import Connection
from services.kernel.auth import MemberTokenCodec
from services.kernel.db import Database, libpq_url
from services.kernel.settings import Settings
from services.members import service as members_service

MEMBERS = int(os.environ.get("KINFOLK_BENCH_MEMBERS", "20000"))
ITEMS = int(os.environ.get("KINFOLK_BENCH_ITEMS", "4000"))
RATE = float(os.environ.get("KINFOLK_BENCH_RATE", "500"))
DURATION = float(os.environ.get("KINFOLK_BENCH_SECONDS", "20"))
CONNECTIONS = int(os.environ.get("KINFOLK_BENCH_CONNECTIONS", "32"))
ROUNDS = int(os.environ.get("KINFOLK_BENCH_ROUNDS", "3"))
WORKERS = 2
LIST_LENGTH = 60
LIMIT = 10
SURFACES = ("perks", "prompts", "experiences", "posts", "discover", "new")
CATEGORIES = ("skincare", "makeup", "fragrance", "hair", "body", "tools", "wellness", "nails")
NIL = uuid.UUID(int=0)


@dataclass(frozen=True, slots=True)
class Round:
    """One round of the route's load: its latencies and what it cost."""

    latencies: list[float]
    rate: float
    cpu: CpuPerRequest
    machine_slowest_second: float

    @property
    def p99(self) -> float:
        return ms(self.latencies, 99)

    @property
    def busy_share(self) -> float:
        return self.cpu.busy_share(self.rate)


class _Steps:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    def done(self, label: str) -> None:
        now = time.perf_counter()
        print(f"seed: {label} in {now - self.started:.1f} s", flush=True)
        self.started = now


def _catalog() -> dict[str, list[str]]:
    """Item ids by kind: 50% perks, 15% prompts, 15% experiences, 20% posts."""
    counts = {
        "perk": ITEMS // 2,
        "prompt": ITEMS * 15 // 100,
        "experience": ITEMS * 15 // 100,
        "post": ITEMS // 5,
    }
    return {kind: [f"{kind}:{n}" for n in range(count)] for kind, count in counts.items()}


async def seed(url: str, brand_id: uuid.UUID) -> list[uuid.UUID]:
    """Writes the brand's catalog, members, lists, interactions and item statistics with COPY;
    returns the member ids."""
    steps = _Steps()
    rng = random.Random(42)
    now = datetime.now(UTC)
    tiers = [uuid.uuid4() for _ in range(3)]
    catalog = _catalog()
    every = [item for items in catalog.values() for item in items]
    connection = await asyncpg.connect(libpq_url(url))
    try:
        items: list[tuple[object, ...]] = []
        for kind, ids in catalog.items():
            for item_id in ids:
                roll = rng.random()
                items.append(
                    (
                        brand_id,
                        item_id,
                        kind,
                        f"{kind.title()} {item_id.partition(':')[2]}",
                        "",
                        rng.choice(CATEGORIES),
                        [],
                        rng.randrange(100, 5000) if kind == "perk" else None,
                        [rng.choice(tiers)] if kind == "perk" and roll < 0.1 else [],
                        now - timedelta(days=30),
                        now - timedelta(days=1) if 0.1 <= roll < 0.15 else now + timedelta(days=60),
                        0 if kind == "perk" and 0.15 <= roll < 0.2 else None,
                        2 if kind == "perk" else None,
                        uuid.uuid4() if kind in ("post", "experience") else None,
                        True,
                        now - timedelta(days=rng.randrange(1, 365)),
                        now,
                    )
                )
        await connection.copy_records_to_table(
            "items",
            schema_name="recommender",
            columns=[
                "brand_id",
                "item_id",
                "kind",
                "title",
                "content",
                "category",
                "tags",
                "cost_points",
                "tier_ids",
                "valid_from",
                "valid_until",
                "stock",
                "per_member_limit",
                "author_id",
                "active",
                "created_at",
                "updated_at",
            ],
            records=items,
        )
        sessions = [
            (
                uuid.uuid4(),
                brand_id,
                item_id,
                now + timedelta(days=rng.randrange(-10, 30)),
                20,
                rng.randrange(0, 21),
                False,
            )
            for item_id in catalog["experience"]
            for _ in range(2)
        ]
        await connection.copy_records_to_table(
            "sessions",
            schema_name="recommender",
            columns=[
                "session_id",
                "brand_id",
                "item_id",
                "starts_at",
                "capacity",
                "booked",
                "cancelled",
            ],
            records=sessions,
        )
        # Most items have been shown plenty; a few hundred are new (exploration's candidates).
        stats = [
            (
                brand_id,
                item_id,
                rng.randrange(0, 100) if rng.random() < 0.08 else rng.randrange(100, 100_000),
                0,
                0,
            )
            for item_id in every
        ]
        stats = [(b, i, shown, shown // rng.randrange(5, 50), n) for b, i, shown, _, n in stats]
        await connection.copy_records_to_table(
            "item_stats",
            schema_name="recommender",
            columns=["brand_id", "item_id", "shown", "taken", "interactions"],
            records=stats,
        )
        steps.done(f"{len(items):,} items, {len(sessions):,} sessions")

        members = [uuid.uuid4() for _ in range(MEMBERS)]
        facts: list[tuple[object, ...]] = [
            (
                member,
                brand_id,
                rng.choice([*tiers, None]),
                rng.randrange(0, 10_000),
                [],
                rng.random() >= 0.1,
                False,
                now - timedelta(days=rng.randrange(1, 1000)),
            )
            for member in members
        ]
        await connection.copy_records_to_table(
            "members",
            schema_name="recommender",
            columns=[
                "member_id",
                "brand_id",
                "tier_id",
                "points_available",
                "interests",
                "personalised",
                "erased",
                "joined_at",
            ],
            records=facts,
        )
        by_surface = {
            "perks": catalog["perk"],
            "prompts": catalog["prompt"],
            "experiences": catalog["experience"],
            "posts": catalog["post"],
            "discover": every,
            "new": every,
        }
        version = uuid.uuid4()

        def row(member: uuid.UUID, surface: str, segment: str) -> tuple[object, ...]:
            chosen = rng.sample(by_surface[surface], LIST_LENGTH)
            return (
                brand_id,
                member,
                surface,
                segment,
                version,
                "",
                chosen,
                [1.0 - k / LIST_LENGTH for k in range(LIST_LENGTH)],
                [f"Because you liked {rng.choice(every)}" for _ in chosen],
                now,
            )

        columns = [
            "brand_id",
            "member_id",
            "surface",
            "segment",
            "version_id",
            "arm",
            "item_ids",
            "scores",
            "reasons",
            "computed_at",
        ]
        brand_rows = [
            row(NIL, surface, segment)
            for surface in SURFACES
            for segment in ["", *(str(t) for t in tiers)]
        ]
        await connection.copy_records_to_table(
            "recommendations", schema_name="recommender", columns=columns, records=brand_rows
        )
        for start in range(0, MEMBERS, 2000):
            rows = [row(m, s, "") for m in members[start : start + 2000] for s in SURFACES]
            await connection.copy_records_to_table(
                "recommendations", schema_name="recommender", columns=columns, records=rows
            )
        steps.done(f"{MEMBERS:,} members, {MEMBERS * len(SURFACES):,} lists")

        kinds = [("redemption", 3.0), ("dismiss", -2.0), ("purchase", 1.0), ("click", 0.5)]
        interactions = []
        for member in members:
            for _ in range(rng.randrange(0, 20)):
                kind, weight = rng.choice(kinds)
                item = rng.choice(catalog["perk"]) if kind == "redemption" else rng.choice(every)
                interactions.append(
                    (brand_id, member, item, kind, weight, now - timedelta(days=rng.random() * 300))
                )
        await connection.copy_records_to_table(
            "interactions",
            schema_name="recommender",
            columns=["brand_id", "member_id", "item_id", "kind", "weight", "occurred_at"],
            records=interactions,
        )
        steps.done(f"{len(interactions):,} interactions")
        await connection.execute("ANALYZE")
        steps.done("analyze")
    finally:
        await connection.close()
    return members


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
    command = [sys.executable, "-m", "services.cli", "serve", "all", "--workers", str(WORKERS)]
    return subprocess.Popen([*command, "--host", "127.0.0.1", "--port", str(port)], env=env)


Request = Callable[[Connection, int], Awaitable[None]]


async def open_loop(
    clients: list[Connection], send: Request, rate: float, seconds: float
) -> tuple[list[float], float]:
    """Request i is due at start + i / rate, on a free connection (the least recently used);
    returns every latency from when it was due, and the rate achieved.

    Each request's task is created when it falls due, not all at the start: creating and
    scheduling the run's ten thousand tasks at once took the generator a tenth of a second,
    during which the first requests fell due and waited, and showed as the server's latency."""
    total = int(rate * seconds)
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for client in clients:
        idle.put_nowait(client)
    latencies: list[float] = []
    running: set[asyncio.Task[None]] = set()

    async def one(i: int, due: float) -> None:
        client = await idle.get()
        try:
            await send(client, i)
        finally:
            idle.put_nowait(client)
        latencies.append(time.perf_counter() - due)

    start = time.perf_counter() + 0.1
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(i, due))
        running.add(task)
        task.add_done_callback(running.discard)
    await asyncio.gather(*running)
    elapsed = time.perf_counter() - start
    return latencies, total / elapsed


async def run(url: str, redis_url: str) -> None:
    jwt_secret = secrets.token_urlsafe(48)
    settings = Settings(jwt_secret=jwt_secret)
    database = Database(url)
    try:
        async with database.unit_of_work() as session:
            brand, _ = await members_service.create_brand(session, "Recommender serving bench")
    finally:
        await database.dispose()
    members = await seed(url, brand.id)
    codec = MemberTokenCodec(settings)
    tokens = [
        {"Authorization": f"Bearer {codec.issue(brand.id, m, timedelta(hours=2))}"} for m in members
    ]
    rng = random.Random(7)
    per_round = int(RATE * DURATION)
    # A part of its own for each round (after the warm-up's): a round that asked again what the
    # one before it asked would find the same rows in PostgreSQL's and the CPUs' caches.
    plan = [(rng.randrange(MEMBERS), rng.choice(SURFACES)) for _ in range(per_round * (ROUNDS + 1))]
    plan_offset = 0
    failures: list[str] = []
    rounds: list[Round] = []
    explored = 0
    served = 0

    async def recommend(client: Connection, i: int) -> None:
        nonlocal explored, served
        member, surface = plan[(plan_offset + i) % len(plan)]
        response = await client.get(
            f"/recommender/v1/members/{members[member]}/recommendations",
            params={"surface": surface, "limit": LIMIT},
            headers=tokens[member],
        )
        if response.status_code != 200:
            failures.append(f"{response.status_code} {response.text[:200]}")
            return
        items = response.json()["items"]
        served += len(items)
        explored += sum(item["explored"] for item in items)

    async def healthz(client: Connection, i: int) -> None:
        response = await client.get("/healthz")
        if response.status_code != 200:
            failures.append(f"healthz {response.status_code}")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(url, redis_url, port, jwt_secret)
    try:
        await wait_ready(base, server)
        clients, spread = await open_balanced_connections(base, server.pid, CONNECTIONS, WORKERS)
        print(f"connections per worker: {spread}", flush=True)
        try:
            # The machine's probe runs from before the warm-up: an interpreter starting up takes
            # tens of milliseconds of CPU, which, started with each round, landed on the round's
            # first requests (a third of a round's slowest fell in its first 0.3 s).
            with MachineProbe() as probe:
                await open_loop(clients, recommend, RATE, 3.0)  # warm up both workers and pools
                await open_loop(clients, healthz, RATE, 2.0)
                cpu = CpuMeter(server.pid)
                cpu.start()
                anchor, anchor_rate = await open_loop(clients, healthz, RATE, DURATION / 2)
                anchor_cpu = cpu.per_request_ms(len(anchor))
                print(
                    f"anchor GET /healthz: {anchor_rate:.0f}/s, p50 {ms(anchor, 50):.2f} ms, "
                    f"p99 {ms(anchor, 99):.2f} ms; CPU per request: {anchor_cpu.describe()}",
                    flush=True,
                )
                for round_ in range(ROUNDS):
                    served = explored = 0
                    plan_offset = (round_ + 1) * per_round
                    cpu.start()
                    started = time.time()
                    latencies, rate = await open_loop(clients, recommend, RATE, DURATION)
                    loop_ms, slowest = probe.slowest_second(started, time.time())
                    measured = Round(latencies, rate, cpu.per_request_ms(len(latencies)), slowest)
                    rounds.append(measured)
                    print(
                        f"round {round_ + 1} recommendations: {rate:.0f}/s, "
                        f"p50 {ms(latencies, 50):.2f} ms, p99 {measured.p99:.2f} ms, "
                        f"max {max(latencies) * 1000:.1f} ms, "
                        f"{served / len(latencies):.1f} items a list, "
                        f"{explored / max(served, 1):.1%} explored; CPU per request: "
                        f"{measured.cpu.describe()}",
                        flush=True,
                    )
                    print(
                        f"round {round_ + 1} machine: a fixed loop took {loop_ms} ms of CPU "
                        f"in the median second, {slowest}x that in the slowest (1x: the "
                        f"machine ran evenly); server, generator and PostgreSQL kept "
                        f"{measured.busy_share:.0%} of its cores busy",
                        flush=True,
                    )
                after, after_rate = await open_loop(clients, healthz, RATE, DURATION / 2)
                print(
                    f"anchor GET /healthz after: {after_rate:.0f}/s, p50 {ms(after, 50):.2f} ms, "
                    f"p99 {ms(after, 99):.2f} ms",
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
    # The figures are the medians of the rounds (each round's own are printed above): on a
    # shared machine one round's p99 says as much about its neighbours as about the route.
    p99s = [one.p99 for one in rounds]
    report(
        "recommender_serving",
        value=round(median(p99s), 2),
        unit="ms p99",
        anchor="GET /healthz at the same rate",
        anchor_value=ms(anchor, 99),
        target=f"p99 < 10 ms at {RATE:.0f} requests/s",
        p50_ms=round(median([ms(one.latencies, 50) for one in rounds]), 2),
        p99_ms=round(median(p99s), 2),
        p99_ms_rounds=[round(p99, 2) for p99 in p99s],
        achieved_rps=round(median([one.rate for one in rounds]), 1),
        anchor_p50_ms=round(ms(anchor, 50), 2),
        anchor_p99_ms=round(ms(anchor, 99), 2),
        anchor_rps=round(anchor_rate, 1),
        anchor_after_p50_ms=round(ms(after, 50), 2),
        anchor_after_p99_ms=round(ms(after, 99), 2),
        server_cpu_ms=median([one.cpu.server for one in rounds]),
        anchor_server_cpu_ms=anchor_cpu.server,
        generator_cpu_ms=median([one.cpu.generator for one in rounds]),
        postgresql_cpu_ms=median([one.cpu.postgresql for one in rounds]),
        rate=RATE,
        seconds=DURATION,
        rounds=ROUNDS,
        members=MEMBERS,
        items=ITEMS,
        limit=LIMIT,
        connections_per_worker=spread,
        exploration_share=Settings().recommender_exploration_share,
        machine_slowest_second=[one.machine_slowest_second for one in rounds],
        machine_busy_share=[round(one.busy_share, 3) for one in rounds],
    )


async def main() -> None:
    with servers() as urls:
        name = f"kinfolk_bench_recommender_serving_{os.getpid()}"
        async with scratch_database(urls.database_url, name) as url:
            await run(url, urls.redis_url)


if __name__ == "__main__":
    try:
        import uvloop  # keeps the load generator light (uvicorn serves on it too)
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
