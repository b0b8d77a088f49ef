"""The soak: a mixed workload against `kinfolk dev` for MINUTES minutes (10 by default), printing
every minute the throughput, p50 and p99 of each kind of request, the errors and the resident
memory of each of the server's processes. Memory must not grow.

The server is `python -m services.cli dev` as a developer runs it (every service, the relay and
the workers in one process, its demo brand seeded), on the configured servers
(KINFOLK_DATABASE_URL / KINFOLK_REDIS_URL) or embedded ones: a scratch database, and Redis
database REDIS_DB of the same server, emptied first. The rate limits are lifted, as in the other
benchmarks: one load generator is not one person.

MEMBERS of the demo brand's members (each given plenty of points) and the demo's staff key drive
the workload: CLIENTS loops, each with its own share of the members (so two loops never book or
redeem as the same member at once), send one request after another, each of a kind drawn by
WEIGHTS: purchases (staff key), redemptions of a 1-point perk, posts, comments and reactions on
recent posts, a booking of a session followed by its cancellation, and the apps' home screen over
GraphQL. A webhook endpoint on 127.0.0.1 (a receiver in this process that answers 204) wants the
events those writes publish, so the workers deliver webhooks all along.

Every minute: requests per second of each kind, p50 and p99, 5xx answers (any is a failure) and
4xx refusals, webhook deliveries, and VmRSS of the dev server and each of its descendants
(/proc). At the end, one JSON line: value = requests per second over the run; anchor = the
server's RSS at the end of minute 1, and `ratio` = RSS at the end of the last minute over that
(so `ratio` is the memory growth, not a throughput ratio); and the verdict: whether RSS grew more
than 5 % from the end of the warm-up (minute WARMUP_MINUTES, 12 by default) to the end. The
warm-up holds the server's start and the first round of each of its periodic jobs, which reach a
high-water mark and stay there (see GROWTH_LIMIT); a run needs 5 minutes after it for a verdict,
so the default 10 minutes gives the figures and no verdict: run 25 (KINFOLK_SOAK_MINUTES=25).
The run fails (exit 1) on any 5xx, any request without an answer, a verdict that memory grew,
or the server not exiting cleanly on SIGINT; whatever the server logged (at WARNING) is
printed.

Run: python -m benchmarks.soak   (KINFOLK_SOAK_MINUTES=2 for a quick check)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
from redis.asyncio import Redis

from benchmarks._harness import (
    ROOT,
    descendants,
    free_port,
    peak_rss_mb,
    report,
    scratch_database,
    servers,
)
from benchmarks._http_sink import HttpSink
from benchmarks.graphql import HOME_QUERY
from services.kernel.auth import MemberTokenCodec
from services.kernel.settings import Settings

MINUTES = int(os.environ.get("KINFOLK_SOAK_MINUTES", "10"))
# Only to try the script quickly: a "minute" of fewer seconds.
MINUTE_SECONDS = float(os.environ.get("KINFOLK_SOAK_MINUTE_SECONDS", "60"))
MEMBERS = int(os.environ.get("KINFOLK_SOAK_MEMBERS", "300"))
# Few loops: the server is one process, and the machine is shared (CI runs beside it).
CLIENTS = int(os.environ.get("KINFOLK_SOAK_CLIENTS", "6"))
REDIS_DB = 13  # the soak's own Redis database, emptied first
# RSS may not grow more than this from the end of the warm-up to the end of the run. The warm-up
# lasts until every periodic job of the dev server has run at least once, the longest period
# being the segments' refresh (every 10 minutes), and each has reached its high-water mark: the
# seed's backlog of events (some 10,000 webhooks, the first two or three minutes), the
# recommender's training of the young demo brand, its fold-ins, the segment refresh.
GROWTH_LIMIT = 0.05
WARMUP_MINUTES = int(os.environ.get("KINFOLK_SOAK_WARMUP_MINUTES", "12"))
# After the warm-up, this many minutes at least, or there is no verdict.
VERDICT_MINUTES = 5
STARTUP_SECONDS = 900  # migrations and the demo seed come before the server listens
DELIVERY_GRACE_SECONDS = 30.0  # after the load stops, for the last webhooks to arrive

# How often each kind is sent (a booking is two requests: book, then cancel).
WEIGHTS: dict[str, int] = {
    "home": 30,
    "purchase": 15,
    "reaction": 15,
    "post": 10,
    "comment": 10,
    "redemption": 10,
    "booking": 10,
}
# The events of the workload's writes that the webhook endpoint wants: one per successful
# purchase, post, redemption and booking.
WEBHOOK_EVENTS = {
    "purchase": "purchase.recorded",
    "post": "post.created",
    "redemption": "perk.redeemed",
    "booking": "experience.booked",
}
REACTIONS = ["love", "helpful", "wow", "support"]
SKUS = [("SKU-SERUM-01", "skincare"), ("SKU-LIP-10", "makeup"), ("SKU-EDP-20", "fragrance")]


def _redis_url(url: str) -> str:
    """The same Redis server, database REDIS_DB."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = {**parse_qs(parts.query), "db": [str(REDIS_DB)]}
        return urlunsplit(parts._replace(query=urlencode(query, doseq=True)))
    return urlunsplit(parts._replace(path=f"/{REDIS_DB}"))


# --- Measurements -----------------------------------------------------------------------------


@dataclass
class Window:
    """What one minute saw."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    server_errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # 5xx
    failures: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # no answer, ...
    refused: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # 4xx
    deliveries: int = 0


@dataclass
class Totals:
    requests: int = 0
    server_errors: int = 0
    failures: int = 0
    refused: int = 0
    succeeded: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    samples: list[str] = field(default_factory=list)  # a few error answers, to show


def _percentile_ms(latencies: list[float], percentile: int) -> float:
    if len(latencies) < 2:
        return max(latencies, default=0.0) * 1000
    return statistics.quantiles(latencies, n=100, method="inclusive")[percentile - 1] * 1000


def _vm_rss_mb(pid: int) -> tuple[str, float] | None:
    """(process name, VmRSS in MB), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            lines = status.read().splitlines()
    except OSError:
        return None
    name, rss = "?", None
    for line in lines:
        if line.startswith("Name:"):
            name = line.split(None, 1)[1]
        elif line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    return None if rss is None else (name, rss)  # a zombie has no VmRSS


def process_tree_rss(root: int) -> dict[int, tuple[str, float]]:
    found = {}
    for pid in sorted({root, *descendants(root)}):
        measured = _vm_rss_mb(pid)
        if measured is not None:
            found[pid] = measured
    return found


def _current_rss_mb() -> float:
    measured = _vm_rss_mb(os.getpid())
    return measured[1] if measured is not None else 0.0


# --- The webhook receiver ---------------------------------------------------------------------


class Receiver(HttpSink):
    """The soak's webhook endpoint: counts each `webhook-id` (a retry of the same message is
    counted once)."""

    def __init__(self, soak: Soak) -> None:
        super().__init__()
        self.soak = soak

    def received(self, headers: dict[bytes, bytes], body: bytes) -> None:
        self.soak.delivered(headers.get(b"webhook-id", b""), body)


# --- The workload -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    id: str
    external_id: str
    headers: dict[str, str]


class Soak:
    def __init__(
        self, client: httpx.AsyncClient, staff: dict[str, str], members: list[Member]
    ) -> None:
        self.client = client
        self.staff = staff
        self.members = members
        self.window = Window()
        self.totals = Totals()
        self.webhook_ids: set[bytes] = set()  # every delivery, the seed's backlog too
        self.ours: set[bytes] = set()  # deliveries of events of the soak's own requests
        self.since = datetime.max.replace(tzinfo=UTC)  # when the soak's requests began
        self.posts: deque[str] = deque(maxlen=500)  # recent posts, to comment and react on
        self.perk_id = ""
        self.session_id = ""

        self.expected: int | None = None  # deliveries to wait for once the load stops
        self.caught_up = asyncio.Event()

    def delivered(self, webhook_id: bytes, body: bytes) -> None:
        if webhook_id in self.webhook_ids:
            return  # a retry
        self.webhook_ids.add(webhook_id)
        self.window.deliveries += 1
        # `kinfolk dev` delivers its seed's backlog of events too (a simulated year of
        # purchases): only events that happened once the soak began are the soak's.
        try:
            occurred = datetime.fromisoformat(json.loads(body)["occurred_at"])
        except (ValueError, KeyError, TypeError):
            return
        if occurred >= self.since:
            self.ours.add(webhook_id)
        if self.expected is not None and len(self.ours) >= self.expected:
            self.caught_up.set()

    def expect(self, deliveries: int) -> None:
        self.expected = deliveries
        if len(self.ours) >= deliveries:
            self.caught_up.set()

    async def call(
        self,
        kind: str,
        method: str,
        path: str,
        headers: dict[str, str],
        body: dict[str, Any] | None = None,
    ) -> httpx.Response | None:
        """One request, timed and counted under `kind`; None when it failed."""
        window = self.window
        started = time.perf_counter()
        try:
            response = await self.client.request(method, path, headers=headers, json=body)
        except httpx.HTTPError as exc:
            window.latencies[kind].append(time.perf_counter() - started)
            window.failures[kind] += 1
            self._sample(f"{kind}: {type(exc).__name__} {exc}")
            return None
        window.latencies[kind].append(time.perf_counter() - started)
        if response.status_code >= 500:
            window.server_errors[kind] += 1
            self._sample(f"{kind}: {response.status_code} {response.text[:300]}")
            return None
        if response.status_code >= 400:
            window.refused[kind] += 1
            self._sample(f"{kind}: {response.status_code} {response.text[:300]}")
            return None
        return response

    def _sample(self, text: str) -> None:
        if len(self.totals.samples) < 20:
            self.totals.samples.append(text)

    def _ok(self, kind: str) -> None:
        self.totals.succeeded[kind] += 1

    # Each kind of request -------------------------------------------------------------------

    async def home(self, member: Member, rng: random.Random) -> None:
        response = await self.call(
            "home", "POST", "/graphql", member.headers, {"query": HOME_QUERY}
        )
        if response is None:
            return
        answer = response.json()
        if answer.get("errors") or not answer.get("data", {}).get("me"):
            self.window.failures["home"] += 1
            self._sample(f"home: {response.text[:300]}")
            return
        self._ok("home")

    async def purchase(self, member: Member, rng: random.Random) -> None:
        sku, category = rng.choice(SKUS)
        amount = rng.randrange(500, 20_000)
        body = {
            "external_id": member.external_id,
            "order_id": f"soak-{uuid.uuid4()}",
            "occurred_at": datetime.now(UTC).isoformat(),
            "amount_minor": amount,
            "currency": "EUR",
            "lines": [{"sku": sku, "category": category, "amount_minor": amount}],
        }
        if await self.call("purchase", "POST", "/rewards/v1/purchases", self.staff, body):
            self._ok("purchase")

    async def redemption(self, member: Member, rng: random.Random) -> None:
        headers = {**member.headers, "Idempotency-Key": str(uuid.uuid4())}
        body = {"perk_id": self.perk_id}
        if await self.call("redemption", "POST", "/rewards/v1/me/redemptions", headers, body):
            self._ok("redemption")

    async def post(self, member: Member, rng: random.Random) -> None:
        body = {
            "body": f"Soak post {uuid.uuid4().hex[:8]}: my routine this week, step by step.",
            "tags": [rng.choice(["skincare", "makeup", "hair"]), "routine"],
        }
        response = await self.call("post", "POST", "/community/v1/posts", member.headers, body)
        if response is not None:
            self.posts.append(response.json()["id"])
            self._ok("post")

    async def comment(self, member: Member, rng: random.Random) -> None:
        if not self.posts:  # nothing to comment on yet
            await self.post(member, rng)
            return
        path = f"/community/v1/posts/{rng.choice(self.posts)}/comments"
        body = {"body": f"Trying this tonight ({uuid.uuid4().hex[:6]})."}
        if await self.call("comment", "POST", path, member.headers, body):
            self._ok("comment")

    async def reaction(self, member: Member, rng: random.Random) -> None:
        if not self.posts:  # nothing to react to yet
            await self.post(member, rng)
            return
        path = f"/community/v1/posts/{rng.choice(self.posts)}/reactions"
        body = {"kind": rng.choice(REACTIONS)}
        if await self.call("reaction", "POST", path, member.headers, body):
            self._ok("reaction")

    async def booking(self, member: Member, rng: random.Random) -> None:
        """Book a seat, then cancel it: the member may book again later, and the session
        never fills."""
        headers = {**member.headers, "Idempotency-Key": str(uuid.uuid4())}
        path = f"/community/v1/sessions/{self.session_id}/bookings"
        booked = await self.call("booking", "POST", path, headers, {"seats": 1})
        if booked is None:
            return
        self._ok("booking")
        path = f"/community/v1/bookings/{booked.json()['id']}/cancel"
        if await self.call("booking cancel", "POST", path, member.headers):
            self._ok("booking cancel")


async def _json(response: httpx.Response, what: str) -> Any:
    if response.status_code >= 300:
        sys.exit(f"setup failed ({what}): {response.status_code} {response.text[:500]}")
    return response.json()


async def prepare(soak: Soak, receiver_port: int) -> str:
    """The soak's perk, session and webhook endpoint, and points for every member; returns the
    endpoint's id."""
    client, staff = soak.client, soak.staff
    perk = await _json(
        await client.post(
            "/rewards/v1/perks",
            json={
                "name": "Soak sample",
                "kind": "free_product",
                "category": "soak",
                "cost_points": 1,
            },
            headers=staff,
        ),
        "perk",
    )
    soak.perk_id = perk["id"]
    experience = await _json(
        await client.post(
            "/community/v1/experiences",
            json={"title": "Soak masterclass", "kind": "masterclass"},
            headers=staff,
        ),
        "experience",
    )
    starts = datetime.now(UTC) + timedelta(days=30)
    session = await _json(
        await client.post(
            f"/community/v1/experiences/{experience['id']}/sessions",
            json={
                "starts_at": starts.isoformat(),
                "ends_at": (starts + timedelta(hours=2)).isoformat(),
                "time_zone": "Europe/Paris",
                "place": {"kind": "online", "url": "https://live.example.com/soak"},
                "capacity": 10_000,
            },
            headers=staff,
        ),
        "session",
    )
    soak.session_id = session["id"]
    endpoint = await _json(
        await client.post(
            "/webhooks/v1/endpoints",
            json={
                "url": f"http://127.0.0.1:{receiver_port}/hook",
                "event_types": sorted(WEBHOOK_EVENTS.values()),
            },
            headers=staff,
        ),
        "webhook endpoint",
    )
    for member in soak.members:  # enough points for every redemption the soak can make
        await _json(
            await client.post(
                f"/rewards/v1/members/{member.id}/adjustments",
                json={"points": 10_000_000, "reason": "soak benchmark"},
                headers=staff,
            ),
            "points",
        )
    for member in soak.members[:20]:  # something to comment and react on from the start
        await soak.post(member, random.Random(member.id))
    soak.totals.succeeded.clear()
    soak.window = Window()
    soak.since = datetime.now(UTC)
    return str(endpoint["id"])


async def members_of(client: httpx.AsyncClient, staff: dict[str, str]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    after: str | None = None
    while len(found) < MEMBERS:
        params: dict[str, Any] = {"limit": 100, **({"after": after} if after else {})}
        page = await _json(
            await client.get("/members/v1/members", params=params, headers=staff), "members"
        )
        found += page["items"]
        after = page.get("next")
        if after is None:
            break
    return found[:MEMBERS]


# --- The run ----------------------------------------------------------------------------------


def start_dev(
    url: str, redis_url: str, data_dir: Path, port: int, jwt_secret: str, log: Path
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KINFOLK_")}
    env.update(
        KINFOLK_DATABASE_URL=url,
        KINFOLK_REDIS_URL=redis_url,
        KINFOLK_DATA_DIR=str(data_dir),
        KINFOLK_JWT_SECRET=jwt_secret,
        KINFOLK_LOG_LEVEL="WARNING",
        # The limiter runs (its Redis round trip is part of each request's cost), but a load
        # generator's few members and one key must not be held to one person's budget.
        KINFOLK_RATE_LIMIT_MEMBER_PER_MINUTE=str(10**9),
        KINFOLK_RATE_LIMIT_API_KEY_PER_MINUTE=str(10**9),
    )
    command = [sys.executable, "-m", "services.cli", "dev", "--port", str(port)]
    with log.open("wb") as out:
        return subprocess.Popen(
            [*command, "--host", "127.0.0.1"], cwd=ROOT, env=env, stdout=out, stderr=out
        )


async def wait_ready(base: str, server: subprocess.Popen[bytes], log: Path) -> None:
    """Until /readyz answers 200: `kinfolk dev` migrates and seeds its demo brand first."""
    deadline = time.monotonic() + STARTUP_SECONDS
    async with httpx.AsyncClient(base_url=base) as client:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                sys.exit(f"kinfolk dev exited while starting:\n{_tail(log)}")
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)
    sys.exit(f"kinfolk dev was not ready in {STARTUP_SECONDS} s:\n{_tail(log)}")


def _logged_problems(log: Path) -> list[str]:
    """The server log's lines that tell of a warning, an error or an exception."""
    lines = log.read_text(errors="replace").splitlines()
    return [
        line
        for line in lines
        if any(word in line.lower() for word in ("error", "warning", "traceback", "exception"))
    ]


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


def print_minute(
    minute: int, window: Window, seconds: float, rss: dict[int, tuple[str, float]]
) -> float:
    """Prints one minute's figures; returns the server's total RSS."""
    requests = sum(len(v) for v in window.latencies.values())
    server_errors = sum(window.server_errors.values())
    failures = sum(window.failures.values())
    refused = sum(window.refused.values())
    print(
        f"minute {minute}: {requests / seconds:.1f} requests/s; 5xx {server_errors}, other "
        f"failures {failures}, 4xx {refused}; webhook deliveries "
        f"{window.deliveries / seconds:.1f}/s",
        flush=True,
    )
    for kind in [*WEIGHTS, "booking cancel"]:
        latencies = window.latencies.get(kind, [])
        errors = window.server_errors.get(kind, 0) + window.failures.get(kind, 0)
        print(
            f"  {kind:15} {len(latencies) / seconds:7.1f}/s  p50 "
            f"{_percentile_ms(latencies, 50):7.1f} ms  p99 {_percentile_ms(latencies, 99):7.1f} ms"
            f"  errors {errors}  4xx {window.refused.get(kind, 0)}",
            flush=True,
        )
    total = sum(mb for _, mb in rss.values())
    parts = ", ".join(f"{name} (pid {pid}) {mb:.1f} MB" for pid, (name, mb) in rss.items())
    print(
        f"  RSS: {parts}; total {total:.1f} MB (load generator {_current_rss_mb():.1f} MB)",
        flush=True,
    )
    return total


async def soak_for(
    soak: Soak, server_pid: int
) -> tuple[float, list[float], list[dict[int, tuple[str, float]]]]:
    """The workload for MINUTES minutes; returns (seconds, total RSS each minute, RSS of each
    process each minute)."""
    started = time.perf_counter()
    stop = started + MINUTES * MINUTE_SECONDS
    kinds = list(WEIGHTS)
    weights = list(WEIGHTS.values())
    sends: dict[str, Callable[[Member, random.Random], Awaitable[None]]] = {
        kind: getattr(soak, kind) for kind in kinds
    }

    async def loop(k: int) -> None:
        rng = random.Random(k)
        mine = soak.members[k::CLIENTS]  # no two loops act as the same member
        while time.perf_counter() < stop:
            kind = rng.choices(kinds, weights)[0]
            await sends[kind](rng.choice(mine), rng)

    async def every_minute() -> tuple[list[float], list[dict[int, tuple[str, float]]]]:
        totals: list[float] = []
        trees: list[dict[int, tuple[str, float]]] = []
        for minute in range(1, MINUTES + 1):
            await asyncio.sleep(max(0.0, started + minute * MINUTE_SECONDS - time.perf_counter()))
            window, soak.window = soak.window, Window()
            tree = process_tree_rss(server_pid)
            _account(soak.totals, window)
            totals.append(print_minute(minute, window, MINUTE_SECONDS, tree))
            trees.append(tree)
        return totals, trees

    loops = [asyncio.ensure_future(loop(k)) for k in range(CLIENTS)]
    rss, trees = await every_minute()
    await asyncio.gather(*loops)
    _account(soak.totals, soak.window)  # answers that came after the last minute closed
    soak.window = Window()
    return time.perf_counter() - started, rss, trees


def _account(totals: Totals, window: Window) -> None:
    totals.requests += sum(len(v) for v in window.latencies.values())
    totals.server_errors += sum(window.server_errors.values())
    totals.failures += sum(window.failures.values())
    totals.refused += sum(window.refused.values())


async def run(url: str, redis_url: str, data_dir: Path) -> None:
    redis = Redis.from_url(redis_url)
    await redis.flushdb()
    await redis.aclose()
    jwt_secret = secrets.token_urlsafe(48)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = data_dir / "dev.log"
    started = time.perf_counter()
    server = start_dev(url, redis_url, data_dir / "dev", port, jwt_secret, log)
    receiver_server: asyncio.Server | None = None
    try:
        await wait_ready(base, server, log)
        print(
            f"kinfolk dev ready in {time.perf_counter() - started:.0f} s (pid {server.pid})",
            flush=True,
        )
        demo = json.loads((data_dir / "dev" / "demo-brand.json").read_text())
        staff = {"Authorization": f"Bearer {demo['api_key']}"}
        brand_id = uuid.UUID(demo["brand_id"])
        codec = MemberTokenCodec(Settings(jwt_secret=jwt_secret))
        ttl = timedelta(minutes=MINUTES * MINUTE_SECONDS / 60 + 60)
        limits = httpx.Limits(max_connections=CLIENTS + 2, max_keepalive_connections=CLIENTS + 2)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
            records = await members_of(client, staff)
            members = [
                Member(
                    m["id"],
                    m["external_id"],
                    {"Authorization": "Bearer " + codec.issue(brand_id, uuid.UUID(m["id"]), ttl)},
                )
                for m in records
            ]
            soak = Soak(client, staff, members)
            receiver_port = free_port()
            loop = asyncio.get_running_loop()
            receiver_server = await loop.create_server(
                lambda: Receiver(soak), "127.0.0.1", receiver_port
            )
            await prepare(soak, receiver_port)
            print(
                f"workload: {len(members)} members, {CLIENTS} loops, {MINUTES} minutes of "
                f"{MINUTE_SECONDS:.0f} s; RSS at the start: "
                f"{sum(mb for _, mb in process_tree_rss(server.pid).values()):.1f} MB",
                flush=True,
            )
            seconds, rss, trees = await soak_for(soak, server.pid)
            totals = soak.totals
            # Deliveries still on their way when the load stopped.
            expected = sum(totals.succeeded.get(kind, 0) for kind in WEBHOOK_EVENTS)
            soak.expect(expected)
            with contextlib.suppress(TimeoutError):  # reported below: fewer than expected
                await asyncio.wait_for(soak.caught_up.wait(), DELIVERY_GRACE_SECONDS)
            received, backlog = len(soak.ours), len(soak.webhook_ids) - len(soak.ours)
    finally:
        if receiver_server is not None:
            receiver_server.close()
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        redis = Redis.from_url(redis_url)
        await redis.flushdb()  # leave the shared server as it was
        await redis.aclose()

    if totals.samples:
        print("error answers (first few):\n  " + "\n  ".join(totals.samples[:10]), flush=True)
    # The server logs at WARNING: anything it logged is worth a look (a worker's exception
    # answers no request, so the counts above cannot show it).
    logged = _logged_problems(log)
    if logged:
        print(
            f"the server logged {len(logged)} lines of warnings or errors; its log's end:\n"
            + _tail(log),
            flush=True,
        )
    first, last = rss[0], rss[-1]
    second = rss[1] if len(rss) > 1 else rss[0]
    growth_from_2 = (last - second) / second
    # The steady state: from the end of the warm-up to the end; a shorter run has no verdict.
    settled_minute = min(WARMUP_MINUTES, len(rss))
    settled = rss[settled_minute - 1]
    steady_growth = (last - settled) / settled
    steady_minutes = len(rss) - settled_minute
    per_minute = (last - settled) / steady_minutes if steady_minutes else 0.0
    rate = totals.requests / seconds
    grew: bool | None = steady_growth > GROWTH_LIMIT if steady_minutes >= VERDICT_MINUTES else None
    verdict = {
        True: "GREW after the warm-up",
        False: "did not grow after the warm-up",
        None: f"no verdict: run at least {WARMUP_MINUTES + VERDICT_MINUTES} minutes "
        f"(the warm-up is {WARMUP_MINUTES})",
    }[grew]
    print(
        f"{totals.requests:,} requests in {seconds:.0f} s: {rate:.1f}/s; 5xx "
        f"{totals.server_errors}, other failures {totals.failures}, 4xx {totals.refused}; "
        f"webhooks of the soak's writes {received:,} received of {expected:,} expected (and "
        f"{backlog:,} of the seed's backlog); RSS minute 1 {first:.1f} MB, minute 2 "
        f"{second:.1f} MB ({growth_from_2:+.1%} from there to the end), minute "
        f"{settled_minute} {settled:.1f} MB, last {last:.1f} MB ({steady_growth:+.1%} over the "
        f"last {steady_minutes} minutes, {per_minute:+.2f} MB/minute): {verdict}",
        flush=True,
    )
    report(
        "soak",
        value=rate,
        unit="requests/s",
        anchor="the dev server's RSS (MB, with its descendants) at the end of minute 1",
        anchor_value=first,
        target=f"memory does not grow after the warm-up (RSS at most +{GROWTH_LIMIT:.0%} from "
        f"minute {WARMUP_MINUTES} to the end); no 5xx",
        # Not value/anchor: the last minute's RSS over the first's, the memory growth.
        ratio=round(last / first, 4),
        rss_mb_each_minute=[round(mb, 1) for mb in rss],
        rss_last_mb=round(last, 1),
        rss_growth_from_minute_2=round(growth_from_2, 4),
        rss_settled_minute=settled_minute,
        rss_growth_after_warmup=round(steady_growth, 4),
        rss_growth_mb_per_minute_after_warmup=round(per_minute, 2),
        rss_grew_after_warmup=grew,
        processes=len(trees[-1]),
        server_errors_5xx=totals.server_errors,
        other_failures=totals.failures,
        server_log_problems=len(logged),
        # 0 when SIGINT stopped it cleanly.
        server_exit_code=server.returncode,
        refused_4xx=totals.refused,
        requests=totals.requests,
        succeeded=dict(totals.succeeded),
        webhooks_expected=expected,
        webhooks_received=received,
        webhooks_of_the_seed=backlog,
        minutes=MINUTES,
        minute_seconds=MINUTE_SECONDS,
        members=len(members),
        clients=CLIENTS,
        load_generator_peak_rss_mb=round(peak_rss_mb(), 1),
    )
    if totals.server_errors or totals.failures or server.returncode != 0 or grew:
        sys.exit(
            f"{totals.server_errors} 5xx and {totals.failures} other failures; the server "
            f"exited with {server.returncode}; memory: {verdict}"
        )


async def main() -> None:
    with servers() as urls, tempfile.TemporaryDirectory() as data_dir:
        name = f"kinfolk_bench_soak_{os.getpid()}"
        async with scratch_database(urls.database_url, name) as url:
            await run(url, _redis_url(urls.redis_url), Path(data_dir))


if __name__ == "__main__":
    try:
        import uvloop  # keeps the load generator light
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
