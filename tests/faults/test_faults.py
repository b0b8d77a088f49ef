"""Faults under load: PostgreSQL restarted, Redis restarted, and the relay, the workers and the
service process killed, each while purchases, redemptions, posts and bookings keep coming.

Each test runs on its own brand of one deployment (tests/faults/cluster.py) that every test of
the module shares: LOAD_SECONDS of writes with the fault in the middle (down for DOWN_SECONDS,
then back), then the wait until every event has gone everywhere, then the checks
(tests/faults/checks.py): every write answered and none with a 500; each accepted write's effect
there exactly once; the ledger invariants; every event at every consumer group and at the webhook
endpoint; nothing pending anywhere; and every process of the deployment still running, having
come through the fault on its own.

These start servers and processes of their own and take a minute or two each, so they are not
part of the test command's suite: .ci/run runs them as a step of their own
(`pytest -m faults tests/faults`), and KINFOLK_FAULT_LOAD_SECONDS makes the load longer.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from services.kernel.auth import MemberTokenCodec
from services.kernel.db import Database
from services.kernel.settings import Settings
from services.members import service as members_service
from tests.faults.checks import check_everything, settle
from tests.faults.cluster import Cluster, KinfolkProcess, cluster, free_port
from tests.faults.workload import Load
from tests.invariants import unhandled
from tests.webhooks.receiver import Receiver, receiving

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]

LOAD_SECONDS = float(os.environ.get("KINFOLK_FAULT_LOAD_SECONDS", "12"))
FAULT_AFTER_SECONDS = LOAD_SECONDS / 4
DOWN_SECONDS = 3.0
JWT_SECRET = "fault-tests-" + "s" * 52


@pytest.fixture(scope="module")
def deployment() -> Iterator[Cluster]:
    # A short path: PostgreSQL's socket path must fit in 107 bytes. Not under pytest's own
    # temporary folder: pgserver opens the folders above its data to its `pgserver` user, and
    # any other pytest run on the machine closes pytest's folder again (mode 700), which once
    # stopped pg_ctl from reaching the data mid-test.
    with (
        tempfile.TemporaryDirectory(prefix="kinfolk-faults-") as folder,
        cluster(Path(folder), free_port(), JWT_SECRET) as running,
    ):
        yield running


@dataclass
class Run:
    load: Load
    receiver: Receiver
    database: Database
    redis: Redis


@pytest.fixture
async def run(deployment: Cluster) -> AsyncIterator[Run]:
    """A new brand on the deployment with its members, perk, session and webhook endpoint."""
    database = Database(deployment.postgres.url, pool_size=2, max_overflow=2)
    redis = Redis.from_url(deployment.redis.url)
    try:
        async with (
            receiving() as receiver,
            httpx.AsyncClient(base_url=deployment.base_url, timeout=30) as client,
        ):
            async with database.unit_of_work() as session:
                brand, key = await members_service.create_brand(session, f"faults-{uuid.uuid4()}")
            load = Load(client, key, brand.id)
            await load.prepare(MemberTokenCodec(Settings(jwt_secret=JWT_SECRET)), receiver.url())
            # Rewards and community learn of the members from their events.
            while True:
                async with database.unit_of_work() as session:
                    if not await unhandled(session, brand.id):
                        break
                await asyncio.sleep(0.2)
            await load.give_points()
            yield Run(load, receiver, database, redis)
    finally:
        await redis.aclose()
        await database.dispose()


async def _fault(break_it: Callable[[], None], mend_it: Callable[[], None]) -> None:
    await asyncio.sleep(FAULT_AFTER_SECONDS)
    await asyncio.to_thread(break_it)
    await asyncio.sleep(DOWN_SECONDS)
    await asyncio.to_thread(mend_it)


async def _under_load(
    deployment: Cluster,
    run: Run,
    break_it: Callable[[], None],
    mend_it: Callable[[], None],
    *,
    clients_notice: bool,
) -> None:
    await asyncio.gather(run.load.run(LOAD_SECONDS), _fault(break_it, mend_it))
    answers, accepted = run.load.answers, run.load.accepted
    print(
        f"answers by status: {dict(answers.statuses)}; accepted: {len(accepted.order_ids)} "
        f"purchases, {len(accepted.redemption_ids)} redemptions, {len(accepted.post_ids)} posts, "
        f"{len(accepted.booking_ids)} bookings"
    )
    # A fault of what answers the clients shows in the answers (503s, or none at all), so the
    # load did run through it.
    unavailable = answers.statuses[503] + answers.statuses[None]
    assert (unavailable > 0) == clients_notice, answers.statuses
    await settle(run.database, run.load, run.receiver)
    await check_everything(run.database, run.redis, run.load, run.receiver)
    stopped = [p.name for p in deployment.processes if not p.running]
    assert stopped == [], f"{stopped} did not come through the fault:\n{deployment.logs()}"


async def test_a_postgresql_crash_under_load_loses_and_doubles_nothing(
    deployment: Cluster, run: Run
) -> None:
    await _under_load(
        deployment, run, deployment.postgres.crash, deployment.postgres.start, clients_notice=True
    )


async def test_a_redis_crash_under_load_loses_and_doubles_nothing(
    deployment: Cluster, run: Run
) -> None:
    await _under_load(
        deployment, run, deployment.redis.crash, deployment.redis.start, clients_notice=True
    )


async def test_a_killed_relay_loses_and_doubles_nothing(deployment: Cluster, run: Run) -> None:
    await _under_load(
        deployment, run, deployment.relay.kill, deployment.relay.start, clients_notice=False
    )


async def test_a_killed_worker_loses_and_doubles_nothing(deployment: Cluster, run: Run) -> None:
    await _under_load(
        deployment, run, deployment.worker.kill, deployment.worker.start, clients_notice=False
    )


async def test_a_killed_service_process_loses_and_doubles_nothing(
    deployment: Cluster, run: Run
) -> None:
    await _under_load(
        deployment, run, deployment.service.kill, deployment.service.start, clients_notice=True
    )


# --- Probes and metrics of every process --------------------------------------------------------


def _sample(exposition: str, series: str) -> float:
    """The value of one series (name and labels, as written) in a /metrics answer."""
    for line in exposition.splitlines():
        name, _, value = line.rpartition(" ")
        if name == series:
            return float(value)
    raise AssertionError(f"{series} is not in the metrics:\n{exposition}")


async def test_the_relay_and_the_worker_answer_their_probes_and_count_their_work(
    deployment: Cluster, run: Run
) -> None:
    members = len(run.load.members)
    async with httpx.AsyncClient(timeout=5) as client:
        for base in (deployment.relay_probes, deployment.worker_probes):
            health = await client.get(f"{base}/healthz")
            assert (health.status_code, health.json()) == (200, {"status": "ok"})
            ready = await client.get(f"{base}/readyz")
            assert ready.json() == {"status": "ready", "database": "ok", "redis": "ok"}
        worker = (await client.get(f"{deployment.worker_probes}/metrics")).text
        # The relay reads the groups' figures as it trims: at its start (before this
        # deployment's streams existed, when run alone), then every 30 s.
        for _ in range(45):
            relay = (await client.get(f"{deployment.relay_probes}/metrics")).text
            if "kinfolk_consumer_group_pending{" in relay:
                break
            await asyncio.sleep(1)
    # Every member of this test's brand was created, published by the relay, and taken in by
    # rewards' projection in the worker (the fixture waited for it); earlier tests add theirs.
    assert _sample(relay, 'kinfolk_relay_events_published_total{service="members"}') >= members
    handled = 'kinfolk_consumer_messages_total{group="rewards.members",outcome="handled"}'
    assert _sample(worker, handled) >= members
    pending = (
        'kinfolk_consumer_group_pending{group="rewards.members",stream="kinfolk:events:members"}'
    )
    assert _sample(relay, pending) >= 0
    assert "kinfolk_relay_events_published_total{" not in worker  # each process counts its own


async def test_a_server_of_several_processes_reports_the_requests_of_all_of_them(
    deployment: Cluster, tmp_path: Path
) -> None:
    port = free_port()
    serve = ["serve", "members", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
    server = KinfolkProcess("members-x2", serve, deployment.env, tmp_path)
    server.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = asyncio.get_running_loop().time() + 120
        while True:
            assert server.running, server.log.read_text(errors="replace")
            try:
                async with httpx.AsyncClient(base_url=base, timeout=2) as client:
                    if (await client.get("/healthz")).status_code == 200:
                        break
            except httpx.HTTPError:
                pass
            assert asyncio.get_running_loop().time() < deadline, "the server did not start"
            await asyncio.sleep(0.2)
        # Each on a connection of its own, so both processes take some.
        for _ in range(59):
            async with httpx.AsyncClient(base_url=base) as client:
                assert (await client.get("/healthz")).status_code == 200
        series = 'kinfolk_http_requests_total{method="GET",route="/healthz",status="200"}'
        counted = []
        for _ in range(8):
            async with httpx.AsyncClient(base_url=base) as client:
                counted.append(_sample((await client.get("/metrics")).text, series))
    finally:
        assert server.stop() == 0, server.log.read_text(errors="replace")
    # Whichever process a scrape reached, it counts every process's requests (the 59 and the
    # one that found it started), never one process's share.
    assert counted == [60.0] * 8
