"""The whole way, as in production: events committed through the real outbox, published by the
relay, taken in by the `webhooks.messages` consumer, and delivered by the delivery loop running
as its own process (`tests/webhooks/delivery_process.py`), to a real receiver on a local port that
verifies every message with the `standardwebhooks` package and refuses everything for a while.
The worker is killed (SIGKILL) mid-run and started again. Every event must arrive, each
member's in the order they happened, and a message that comes twice must come with the same id.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web
from redis.asyncio import Redis
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.kernel.consumer import ConsumerRunner
from services.kernel.db import Database
from services.kernel.relay import Relay
from services.kernel.settings import Settings
from services.marketing.events import SegmentChangeData, SegmentEntered
from services.marketing.models import OUTBOX as MARKETING_OUTBOX
from services.registry import SERVICES
from services.webhooks.endpoints import service as endpoints
from services.webhooks.endpoints.schemas import EndpointCreate
from services.webhooks.messages.intake import MESSAGES_CONSUMER
from services.webhooks.models import INBOX, Delivery, DeliveryStatus, SegmentMember
from tests.conftest import WorkerInfrastructure, make_brand, purge_brand
from tests.webhooks.receiver import Arrival, receiving

ROOT = Path(__file__).resolve().parents[2]
MEMBERS = 12
EVENTS_PER_MEMBER = 10
REFUSING_SECONDS = 1.0


def _worker_process(infra: WorkerInfrastructure, data_dir: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KINFOLK_")}
    env.update(
        KINFOLK_DATABASE_URL=infra.database_url,
        KINFOLK_REDIS_URL=infra.redis_url,
        KINFOLK_DATA_DIR=str(data_dir),
        KINFOLK_LOG_LEVEL="WARNING",
        KINFOLK_WEBHOOKS_ALLOWED_NETWORKS='["127.0.0.0/8"]',
        # Short enough for a test: a killed worker's leases (two timeouts) run out in two seconds.
        KINFOLK_WEBHOOKS_TIMEOUT_SECONDS="1.0",
        # Thirty quick retries: on a loaded machine the receiver (this test's own event loop)
        # can be slow to answer, and a delivery that ran out of tries would never arrive.
        KINFOLK_WEBHOOKS_RETRY_SCHEDULE_SECONDS=str([0.2, 0.3] + [0.5] * 28),
        KINFOLK_WEBHOOKS_POLL_SECONDS="0.05",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "tests.webhooks.delivery_process"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@contextlib.asynccontextmanager
async def _events_flowing(
    database: Database, redis: Redis, settings: Settings
) -> AsyncIterator[None]:
    """The relay and the intake consumer, running as the workers run them."""
    stop = asyncio.Event()
    relay = Relay(database, redis, SERVICES, settings)
    intake = ConsumerRunner(database, redis, [MESSAGES_CONSUMER], settings, "e2e", block_ms=50)
    tasks = [asyncio.create_task(relay.run(stop)), asyncio.create_task(intake.run(stop))]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


@pytest.mark.timeout(120)
async def test_every_event_arrives_in_member_order_through_a_killed_worker(
    engine_database: Database,
    test_infra: WorkerInfrastructure,
    redis: Redis,
    base_settings: Settings,
    tmp_path: Path,
) -> None:
    settings = base_settings.model_copy(update={"relay_idle_seconds": 0.05})
    async with engine_database.unit_of_work() as session:
        brand = await make_brand(session, "Webhooks end to end")
    segment = uuid.uuid4()
    members = [uuid.uuid4() for _ in range(MEMBERS)]
    invalid: list[str] = []
    refusing_until: list[float] = []
    secret: list[str] = []

    async def verify_then_maybe_refuse(arrival: Arrival) -> web.StreamResponse:
        try:
            Webhook(secret[0]).verify(arrival.body, arrival.headers)
        except WebhookVerificationError as exc:
            invalid.append(str(exc))
            return web.Response(status=400)
        if not refusing_until:
            refusing_until.append(time.monotonic() + REFUSING_SECONDS)
        # Decided by the arrival's own time, as `_accepted` judges it: a clock read here, after
        # the verification, once answered 204 to an arrival `_accepted` counted as refused.
        if not _accepted(arrival, refusing_until):
            return web.Response(status=503)
        return web.Response(status=204)

    events: list[SegmentEntered] = []
    workers: list[subprocess.Popen[bytes]] = []
    try:
        async with receiving(verify_then_maybe_refuse) as receiver:
            async with engine_database.unit_of_work() as session:
                endpoint = await endpoints.create_endpoint(
                    session,
                    settings,
                    brand.id,
                    EndpointCreate(
                        url=receiver.url(), event_types=["segment.*"], max_concurrency=8
                    ),
                )
                secret.append(endpoint.secret)

            def accepted() -> dict[str, Arrival]:
                first: dict[str, Arrival] = {}
                for arrival in receiver.arrivals:
                    if arrival.webhook_id not in first and _accepted(arrival, refusing_until):
                        first[arrival.webhook_id] = arrival
                return first

            async with _events_flowing(engine_database, redis, settings):
                workers.append(_worker_process(test_infra, tmp_path))
                for round_ in range(EVENTS_PER_MEMBER):
                    batch = [
                        SegmentEntered(
                            brand_id=brand.id,
                            subject_id=member,
                            data=SegmentChangeData(
                                segment_id=segment,
                                segment_name="Everyone",
                                member_id=member,
                                version=round_ + 1,
                            ),
                        )
                        for member in members
                    ]
                    async with engine_database.unit_of_work() as session:
                        await MARKETING_OUTBOX.add_many(session, batch)
                    events.extend(batch)
                    await asyncio.sleep(0.1)
                    if round_ == 3:
                        # Wait for deliveries to be under way past the refusals, then kill.
                        assert await _until(lambda: len(accepted()) >= MEMBERS, seconds=30)
                        workers[0].send_signal(signal.SIGKILL)
                        workers[0].wait(timeout=10)
                        workers.append(_worker_process(test_infra, tmp_path))
                if not await _until(lambda: len(accepted()) == len(events), seconds=60):
                    async with engine_database.unit_of_work() as session:
                        pending = await _statuses(session, brand.id)
                    pytest.fail(
                        f"{len(accepted())} of {len(events)} accepted after 60 s; deliveries "
                        f"by status: {dict(Counter(pending))}"
                    )
                await asyncio.sleep(0.3)  # any duplicate still on its way arrives too
                async with engine_database.unit_of_work() as session:
                    statuses = await _statuses(session, brand.id)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                worker.wait(timeout=20)
        await _forget(engine_database, brand.id, segment, [e.id for e in events])

    assert workers[0].returncode == -signal.SIGKILL
    assert workers[1].returncode == 0, workers[1].stderr.read() if workers[1].stderr else ""
    assert statuses == [DeliveryStatus.SUCCEEDED] * len(events)
    assert invalid == []  # every request carried a signature the library accepts
    first = accepted()
    assert set(first) == {str(e.id) for e in events}  # nothing lost
    # Each member's messages were accepted in the order they happened.
    order: dict[str, list[str]] = defaultdict(list)
    for arrival in sorted(first.values(), key=lambda a: a.at):
        order[arrival.payload["subject_id"]].append(arrival.webhook_id)
    for member in members:
        assert order[str(member)] == [str(e.id) for e in events if e.subject_id == member]
    # The refusals were retried, and every copy of a message carried its one id.
    counts = defaultdict(int)
    for arrival in receiver.arrivals:
        assert arrival.webhook_id == arrival.payload["id"]
        counts[arrival.webhook_id] += 1
    assert max(counts.values()) > 1
    assert len(receiver.arrivals) > len(events)


def _accepted(arrival: Arrival, refusing_until: list[float]) -> bool:
    return bool(refusing_until) and arrival.at >= refusing_until[0]


async def _until(condition: Callable[[], bool], seconds: float) -> bool:
    """Whether `condition` came true within `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def _statuses(session: AsyncSession, brand_id: uuid.UUID) -> list[DeliveryStatus]:
    return list(await session.scalars(select(Delivery.status).where(Delivery.brand_id == brand_id)))


async def _forget(
    database: Database, brand_id: uuid.UUID, segment: uuid.UUID, event_ids: list[uuid.UUID]
) -> None:
    """This test commits: leave nothing behind for the tests after it."""
    await purge_brand(database, brand_id)
    async with database.unit_of_work() as session:
        await session.execute(delete(SegmentMember).where(SegmentMember.segment_id == segment))
        await session.execute(delete(INBOX).where(INBOX.c.event_id.in_(event_ids)))
        left = await session.scalar(select(Delivery.id).where(Delivery.brand_id == brand_id))
        assert left is None
