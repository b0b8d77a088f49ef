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
import socket
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
from tests.faults.cluster import Cluster, cluster
from tests.faults.workload import Load
from tests.invariants import unhandled
from tests.webhooks.receiver import Receiver, receiving

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]

LOAD_SECONDS = float(os.environ.get("KINFOLK_FAULT_LOAD_SECONDS", "12"))
FAULT_AFTER_SECONDS = LOAD_SECONDS / 4
DOWN_SECONDS = 3.0
JWT_SECRET = "fault-tests-" + "s" * 52


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def deployment() -> Iterator[Cluster]:
    # A short path: PostgreSQL's socket path must fit in 107 bytes. Not under pytest's own
    # temporary folder: pgserver opens the folders above its data to its `pgserver` user, and
    # any other pytest run on the machine closes pytest's folder again (mode 700), which once
    # stopped pg_ctl from reaching the data mid-test.
    with (
        tempfile.TemporaryDirectory(prefix="kinfolk-faults-") as folder,
        cluster(Path(folder), _free_port(), JWT_SECRET) as running,
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
