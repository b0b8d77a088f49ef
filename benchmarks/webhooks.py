"""Webhook deliveries: 50,000 events through the real outbox to 5 local endpoints, then a steady
500 events per second.

Five event types (member.updated, points.earned, tier.changed, post.created, reaction.added),
each written to its own service's outbox in committed transactions, as the services write them;
each endpoint wants one of the types, so each event is one delivery (KINFOLK_BENCH_FANOUT=5
makes every endpoint want every type: five deliveries an event). The system runs as in
production, each part in its own process: the outbox relay (`kinfolk relay`), the webhooks
intake (`kinfolk worker --service webhooks --only consumers`) and the delivery loop
(`kinfolk worker --service webhooks --only webhooks.deliveries`). The receivers
(`benchmarks._webhook_receivers`) are plain asyncio servers in their own process that answer
204 at once and log each `webhook-id` with its arrival time.

Printed: deliveries per second over the backlog, and the anchor: the same receivers driven
directly by a plain httpx loop (signed bodies of the same size; the better of 4 and of as many
requests in flight per endpoint as an endpoint allows by default) in this run, the transport
limit; their ratio. For
comparison it also prints a plain aiohttp loop (the client the delivery loop uses). Then, at a
steady 500 events per second for 20 s, p50 and p99 from each event's commit to its arrival at
each endpoint.

Targets (issue #9): at least half the httpx loop's deliveries per second; p99 under 1 s at 500
events per second.
Run: python -m benchmarks.webhooks   (KINFOLK_BENCH_EVENTS=5000 for a quick check)
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import aiohttp
import httpx
from redis.asyncio import Redis
from sqlalchemy import func, select

from benchmarks._harness import ROOT, free_port, median, ms, report, scratch_database, servers
from services.community.models import OUTBOX as COMMUNITY_OUTBOX
from services.community.posts.events import PostCreated, ReactionAdded
from services.kernel.clock import utcnow
from services.kernel.db import Database
from services.kernel.event_examples import example_event
from services.kernel.events import Event
from services.kernel.ids import new_id
from services.kernel.outbox import Outbox
from services.kernel.settings import Settings
from services.members import service as members_service
from services.members.events import MemberUpdated
from services.members.models import OUTBOX as MEMBERS_OUTBOX
from services.rewards.events import PointsEarned, TierChanged
from services.rewards.models import OUTBOX as REWARDS_OUTBOX
from services.webhooks import signing
from services.webhooks.endpoints import service as endpoints
from services.webhooks.endpoints.schemas import EndpointCreate
from services.webhooks.models import Delivery, DeliveryStatus, Message

EVENTS = int(os.environ.get("KINFOLK_BENCH_EVENTS", "50000"))
FANOUT = int(os.environ.get("KINFOLK_BENCH_FANOUT", "1"))  # 1: one endpoint an event; 5: all
# Each type with the outbox of the service that publishes it.
TYPES: list[tuple[type[Event], Outbox]] = [
    (MemberUpdated, MEMBERS_OUTBOX),
    (PointsEarned, REWARDS_OUTBOX),
    (TierChanged, REWARDS_OUTBOX),
    (PostCreated, COMMUNITY_OUTBOX),
    (ReactionAdded, COMMUNITY_OUTBOX),
]
ENDPOINTS = len(TYPES)
# Requests in flight per endpoint: an endpoint's default concurrency limit, for both the
# endpoints and the anchor loops.
IN_FLIGHT_PER_ENDPOINT = int(
    os.environ.get(
        "KINFOLK_BENCH_CONCURRENCY", str(EndpointCreate.model_fields["max_concurrency"].default)
    )
)
MEMBERS = 10_000
BATCH = 1_000  # events per transaction while filling the backlog
RATE = 500  # events per second in the latency phase
RATE_SECONDS = float(os.environ.get("KINFOLK_BENCH_SECONDS", "20"))
RATE_TICK = 0.02
ANCHOR_REQUESTS = 10_000
ANCHOR_FEW_IN_FLIGHT = 4
REDIS_DB = 14  # the benchmark's own Redis database, emptied first
TARGET_RATIO = 0.5
TARGET_P99_MS = 1_000.0


def _redis_url(url: str) -> str:
    """The same Redis server, database REDIS_DB."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = {**parse_qs(parts.query), "db": [str(REDIS_DB)]}
        return urlunsplit(parts._replace(query=urlencode(query, doseq=True)))
    return urlunsplit(parts._replace(path=f"/{REDIS_DB}"))


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env)


def _body() -> bytes:
    return json.dumps(example_event(PointsEarned).model_dump(mode="json")).encode()


async def _httpx_loop(ports: list[int], secret: str, per_endpoint: int) -> float:
    """Requests per second of a plain httpx loop: the same bodies, signed, `per_endpoint` in
    flight at each endpoint."""
    body = _body()
    in_flight = ENDPOINTS * per_endpoint
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=in_flight)) as client:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(ANCHOR_REQUESTS):
            queue.put_nowait(ports[i % len(ports)])

        async def sender() -> None:
            while not queue.empty():
                port = queue.get_nowait()
                message_id = str(uuid.uuid4())
                headers = signing.headers([secret], message_id, utcnow(), body)
                response = await client.post(
                    f"http://127.0.0.1:{port}/hook", content=body, headers=headers
                )
                assert response.status_code == 204

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(in_flight)))
        return ANCHOR_REQUESTS / (time.perf_counter() - started)


async def _aiohttp_loop(ports: list[int], secret: str) -> float:
    body = _body()
    connector = aiohttp.TCPConnector(limit=ENDPOINTS * IN_FLIGHT_PER_ENDPOINT)
    async with aiohttp.ClientSession(connector=connector) as client:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(ANCHOR_REQUESTS):
            queue.put_nowait(ports[i % len(ports)])

        async def sender() -> None:
            while not queue.empty():
                port = queue.get_nowait()
                headers = signing.headers([secret], str(uuid.uuid4()), utcnow(), body)
                async with client.post(
                    f"http://127.0.0.1:{port}/hook", data=body, headers=headers
                ) as response:
                    assert response.status == 204

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(ENDPOINTS * IN_FLIGHT_PER_ENDPOINT)))
        return ANCHOR_REQUESTS / (time.perf_counter() - started)


class Emitter:
    """Writes events to their services' outboxes and keeps each one's commit time."""

    def __init__(self, database: Database, brand_id: uuid.UUID) -> None:
        self.database = database
        self.brand_id = brand_id
        self.templates = [(example_event(cls), outbox) for cls, outbox in TYPES]
        self.members = [uuid.uuid4() for _ in range(MEMBERS)]
        self.committed: dict[str, float] = {}
        self.count = 0

    async def emit(self, n: int) -> None:
        batches: dict[int, tuple[Outbox, list[Event]]] = {}
        for _ in range(n):
            template, outbox = self.templates[self.count % len(self.templates)]
            member = self.members[self.count % MEMBERS]
            self.count += 1
            event = template.model_copy(
                update={"id": new_id(), "brand_id": self.brand_id, "subject_id": member}
            )
            batches.setdefault(id(outbox), (outbox, []))[1].append(event)
        async with self.database.unit_of_work() as session:
            for outbox, events in batches.values():
                await outbox.copy_many(session, events)
        at = time.time()
        for _, events in batches.values():
            for event in events:
                self.committed[str(event.id)] = at


def _first_arrivals(log_path: Path) -> dict[tuple[int, str], float]:
    """When each (endpoint port, webhook-id) first arrived."""
    first: dict[tuple[int, str], float] = {}
    for line in log_path.read_text().splitlines():
        port, webhook_id, at = line.split()
        first.setdefault((int(port), webhook_id), float(at))
    return first


async def _drained(database: Database, messages: int) -> None:
    """Until every event is a message and no delivery is pending."""
    while True:
        async with database.unit_of_work() as session:
            made = await session.scalar(select(func.count()).select_from(Message))
            pending = await session.scalar(
                select(func.count())
                .select_from(Delivery)
                .where(Delivery.status == DeliveryStatus.PENDING)
            )
        print(f"  messages {made:,}/{messages:,}, deliveries pending {pending:,}", flush=True)
        if made == messages and pending == 0:
            return
        await asyncio.sleep(2.0)


async def run(url: str, redis_url: str, data_dir: Path) -> None:
    redis = Redis.from_url(redis_url)
    await redis.flushdb()
    await redis.aclose()
    settings = Settings(
        database_url=url,
        redis_url=redis_url,
        data_dir=data_dir,
        log_level="WARNING",
        webhooks_allowed_networks=["127.0.0.0/8"],
    )
    database = Database(url)
    ports = [free_port() for _ in range(ENDPOINTS)]
    log_path = data_dir / "arrivals.log"
    receivers = _start(
        ["-m", "benchmarks._webhook_receivers", str(log_path), *map(str, ports)], dict(os.environ)
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("KINFOLK_")}
    env.update(
        KINFOLK_DATABASE_URL=url,
        KINFOLK_REDIS_URL=redis_url,
        KINFOLK_DATA_DIR=str(data_dir),
        KINFOLK_LOG_LEVEL="WARNING",
        KINFOLK_WEBHOOKS_ALLOWED_NETWORKS='["127.0.0.0/8"]',
    )
    pipeline: list[subprocess.Popen[bytes]] = []
    try:
        await asyncio.sleep(2.0)  # the receivers' imports are light; give them a moment
        secret = signing.new_secret()
        # The transport limit: httpx at its best, with a few or as many requests in flight as
        # the endpoints allow (more connections cost httpx more than they gain it).
        anchors = {}
        for per_endpoint in sorted({ANCHOR_FEW_IN_FLIGHT, IN_FLIGHT_PER_ENDPOINT}):
            anchors[per_endpoint] = await _httpx_loop(ports, secret, per_endpoint)
            print(
                f"plain httpx loop, {per_endpoint} in flight per endpoint: "
                f"{anchors[per_endpoint]:,.0f} requests/s",
                flush=True,
            )
        anchor = max(anchors.values())
        fast = await _aiohttp_loop(ports, secret)
        print(f"plain aiohttp loop (for comparison): {fast:,.0f} requests/s", flush=True)

        async with database.unit_of_work() as session:
            brand, _ = await members_service.create_brand(session, "Webhooks benchmark")
            for port, (cls, _) in zip(ports, TYPES, strict=True):
                wanted = [c.event_type() for c, _ in TYPES] if FANOUT > 1 else [cls.event_type()]
                await endpoints.create_endpoint(
                    session,
                    settings,
                    brand.id,
                    EndpointCreate(
                        url=f"http://127.0.0.1:{port}/crm",
                        event_types=wanted,
                        max_concurrency=IN_FLIGHT_PER_ENDPOINT,
                    ),
                )
        emitter = Emitter(database, brand.id)
        pipeline = [
            _start(["-m", "services.cli", "relay"], env),
            _start(
                ["-m", "services.cli", "worker", "--service", "webhooks", "--only", "consumers"],
                env,
            ),
            _start(
                [
                    "-m",
                    "services.cli",
                    "worker",
                    "--service",
                    "webhooks",
                    "--only",
                    "webhooks.deliveries",
                ],
                env,
            ),
        ]
        await asyncio.sleep(8.0)  # the processes import every service before they start

        print(f"backlog: {EVENTS:,} events, {EVENTS * FANOUT:,} deliveries", flush=True)
        backlog_started = time.time()
        for start in range(0, EVENTS, BATCH):
            await emitter.emit(min(BATCH, EVENTS - start))
        print(f"  emitted in {time.time() - backlog_started:.1f} s", flush=True)
        await _drained(database, EVENTS)
        backlog_ids = set(emitter.committed)

        print(f"steady: {RATE} events/s for {RATE_SECONDS:.0f} s", flush=True)
        steady_started = time.monotonic()
        ticks = int(RATE_SECONDS / RATE_TICK)
        for tick in range(ticks):
            await emitter.emit(int(RATE * RATE_TICK))
            delay = steady_started + (tick + 1) * RATE_TICK - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        achieved = emitter.count - EVENTS
        print(f"  emitted {achieved:,} in {time.monotonic() - steady_started:.1f} s", flush=True)
        await _drained(database, emitter.count)
    finally:
        for process in pipeline:
            process.terminate()
        receivers.terminate()
        for process in [*pipeline, receivers]:
            process.wait(timeout=60)
        await database.dispose()

    first = _first_arrivals(log_path)
    backlog_arrivals = [at for (_, i), at in first.items() if i in backlog_ids]
    assert len(backlog_arrivals) == EVENTS * FANOUT, "a delivery is missing"
    rate = len(backlog_arrivals) / (max(backlog_arrivals) - backlog_started)
    latencies = [
        at - emitter.committed[i]
        for (_, i), at in first.items()
        if i in emitter.committed and i not in backlog_ids
    ]
    assert len(latencies) == achieved * FANOUT, "a delivery is missing"
    print(
        f"deliveries: {rate:,.0f}/s against the httpx loop's {anchor:,.0f}/s "
        f"(ratio {rate / anchor:.2f}); at {RATE} events/s: p50 {ms(latencies, 50):.0f} ms, "
        f"p99 {ms(latencies, 99):.0f} ms, median {median(latencies) * 1000:.0f} ms",
        flush=True,
    )
    report(
        "webhooks",
        value=rate,
        unit="deliveries/s",
        anchor="plain httpx loop to the same receivers",
        anchor_value=anchor,
        target=f"ratio >= {TARGET_RATIO}; p99 < {TARGET_P99_MS:.0f} ms at {RATE} events/s",
        p50_ms=round(ms(latencies, 50), 1),
        p99_ms=round(ms(latencies, 99), 1),
        aiohttp_loop=round(fast, 1),
        steady_events_per_second=round(achieved / RATE_SECONDS, 1),
        deliveries_per_event=FANOUT,
    )


async def main() -> None:
    with servers() as urls, tempfile.TemporaryDirectory() as data_dir:
        async with scratch_database(urls.database_url, "kinfolk_bench_webhooks") as url:
            await run(url, _redis_url(urls.redis_url), Path(data_dir))


if __name__ == "__main__":
    asyncio.run(main())
