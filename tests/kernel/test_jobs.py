"""Jobs on arq: enqueued by name, one committed transaction each; the kernel's cleanup jobs."""

from __future__ import annotations

import asyncio
import pickle
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import orjson
import pytest
from redis.asyncio import Redis
from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.db import Database
from services.kernel.idempotency import IDEMPOTENCY_TABLE
from services.kernel.jobs import (
    QUEUE_NAME,
    JobSpec,
    Schedule,
    build_worker,
    deserialize_job,
    enqueue,
    kernel_jobs,
    redis_settings,
    run_worker,
    serialize_job,
)
from services.kernel.module import ServiceModule
from services.kernel.outbox import outbox_row
from services.kernel.settings import Settings
from services.members.models import IDEMPOTENCY
from services.registry import SERVICES
from tests.conftest import run_burst
from tests.kernel.eventing import Throwaway, happened, throwaway_service

if TYPE_CHECKING:
    from tests.conftest import WorkerInfrastructure

# arq 0.28 closes its pool with redis-py's deprecated `close()`; nothing for us to change.
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")


@pytest.fixture(scope="module")
async def thing(engine_database: Database) -> AsyncIterator[Throwaway]:
    async with throwaway_service(engine_database, "jobtest") as service:
        yield service


@pytest.fixture(autouse=True)
async def _clean(thing: Throwaway, engine_database: Database) -> None:
    await thing.reset(engine_database)


def with_jobs(thing: Throwaway, fail: bool = False) -> ServiceModule:
    async def record(session: AsyncSession, *, n: int) -> int:
        await session.execute(insert(thing.effects).values(consumer="job", n=n))
        if fail:
            raise RuntimeError("job failed after writing")
        return n

    return replace(thing.service, jobs=[JobSpec("jobtest.record", record)])


def test_redis_settings_from_urls() -> None:
    tcp = redis_settings("redis://127.0.0.1:6379/4")
    assert (tcp.host, tcp.port, tcp.database, tcp.unix_socket_path, tcp.ssl) == (
        "127.0.0.1",
        6379,
        4,
        None,
        False,
    )
    secret = redis_settings("rediss://user:p%40ss@cache.internal:6380?db=2")
    assert (secret.host, secret.port, secret.database, secret.ssl) == (
        "cache.internal",
        6380,
        2,
        True,
    )
    assert (secret.username, secret.password) == ("user", "p@ss")
    unix = redis_settings("unix:///data/kinfolk/redis.sock?db=3")
    assert (unix.unix_socket_path, unix.database) == ("/data/kinfolk/redis.sock", 3)
    assert redis_settings("unix:///data/kinfolk/redis.sock").database == 0
    assert redis_settings("redis://localhost").database == 0
    with pytest.raises(ValueError, match="not a Redis URL"):
        redis_settings("http://localhost:6379")


async def test_an_enqueued_job_runs_and_commits(
    thing: Throwaway,
    engine_database: Database,
    redis: Redis,
    test_infra: WorkerInfrastructure,
    base_settings: Settings,
) -> None:
    service = with_jobs(thing)
    job_id = await enqueue(test_infra.redis_url, "jobtest.record", n=7)
    assert await redis.zcard(QUEUE_NAME) == 1
    assert await run_burst(engine_database, test_infra, [service], base_settings) == 1
    assert job_id
    assert [(c, n) for c, _, n in await thing.effects_rows(engine_database)] == [("job", 7)]


async def test_an_enqueue_with_a_job_id_is_idempotent(
    thing: Throwaway,
    engine_database: Database,
    test_infra: WorkerInfrastructure,
    base_settings: Settings,
) -> None:
    service = with_jobs(thing)
    # A job id of this run only: arq keeps a finished job's result (and so its id) for a day,
    # in a Redis database that other runs on this machine use too.
    job_id = f"record-once-{uuid.uuid4()}"
    first = await enqueue(test_infra.redis_url, "jobtest.record", job_id=job_id, n=1)
    again = await enqueue(test_infra.redis_url, "jobtest.record", job_id=job_id, n=2)
    assert first == again == job_id
    assert await run_burst(engine_database, test_infra, [service], base_settings) == 1
    # Also after it ran: the kept result still blocks the id.
    assert await enqueue(test_infra.redis_url, "jobtest.record", job_id=job_id, n=3) == job_id
    assert [n for _, _, n in await thing.effects_rows(engine_database)] == [1]


async def test_jobs_and_their_results_are_json_in_redis_and_a_pickle_is_refused(
    thing: Throwaway,
    engine_database: Database,
    redis: Redis,
    test_infra: WorkerInfrastructure,
    base_settings: Settings,
) -> None:
    """Whoever can write to Redis must not run code in the workers: nothing there is pickled,
    and a pickled job is not unpickled. Datetimes and dates (a job's `now`) come back as such."""
    at = datetime(2026, 11, 23, 4, 5, 6, tzinfo=UTC)
    arguments = {"n": 7, "now": at, "on": date(2026, 11, 23), "ids": ["a", "b"], "x": {"y": 1.5}}
    data = {"t": 1, "f": "jobtest.record", "a": [], "k": arguments, "et": 1}
    assert deserialize_job(serialize_job(data)) == data
    assert orjson.loads(serialize_job({"r": RuntimeError("boom"), "id": uuid.UUID(int=1)})) == {
        "r": "boom",
        "id": "00000000-0000-0000-0000-000000000001",
    }
    with pytest.raises(orjson.JSONDecodeError):
        deserialize_job(pickle.dumps(data))

    service = with_jobs(thing)
    job_id = f"json-{uuid.uuid4()}"
    await enqueue(test_infra.redis_url, "jobtest.record", job_id=job_id, n=3)
    queued = await redis.get(f"arq:job:{job_id}")
    assert queued is not None
    assert orjson.loads(queued)["k"] == {"n": 3}
    assert await run_burst(engine_database, test_infra, [service], base_settings) == 1
    result = await redis.get(f"arq:result:{job_id}")
    assert result is not None
    assert (orjson.loads(result)["s"], orjson.loads(result)["r"]) == (True, 3)


async def test_a_failing_job_rolls_back(
    thing: Throwaway,
    engine_database: Database,
    test_infra: WorkerInfrastructure,
    base_settings: Settings,
) -> None:
    service = with_jobs(thing, fail=True)
    await enqueue(test_infra.redis_url, "jobtest.record", n=7)
    worker = build_worker(
        engine_database, test_infra.redis_url, [service], base_settings, burst=True
    )
    try:
        await worker.async_run()
    finally:
        await worker.close()
    assert (worker.jobs_complete, worker.jobs_failed) == (0, 1)
    assert await thing.effects_rows(engine_database) == []


async def test_run_worker_runs_jobs_in_the_current_loop_until_stopped(
    thing: Throwaway,
    engine_database: Database,
    test_infra: WorkerInfrastructure,
    base_settings: Settings,
) -> None:
    service = with_jobs(thing)
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_worker(
            engine_database,
            test_infra.redis_url,
            [service],
            base_settings,
            stop,
            poll_delay_seconds=0.02,
        )
    )
    await enqueue(test_infra.redis_url, "jobtest.record", n=3)
    for _ in range(500):
        if await thing.effects_rows(engine_database):
            break
        await asyncio.sleep(0.01)
    stop.set()
    # A guard against a worker that never stops, not a timing: the stop may wait out the jobs'
    # grace period (SHUTDOWN_GRACE_SECONDS) and a Redis call's timeout on a loaded machine.
    await asyncio.wait_for(task, timeout=60)
    assert [n for _, _, n in await thing.effects_rows(engine_database)] == [3]


async def test_kernel_jobs_are_scheduled_daily_for_outbox_and_inbox(
    thing: Throwaway,
    engine_database: Database,
    test_infra: WorkerInfrastructure,
    base_settings: Settings,
) -> None:
    jobs = kernel_jobs(thing.service)
    assert [(job.name, job.cron) for job in jobs] == [
        ("jobtest.kernel.purge_outbox", Schedule(hour=3, minute=17)),
        ("jobtest.kernel.purge_inbox", Schedule(hour=3, minute=47)),
    ]
    worker = build_worker(engine_database, test_infra.redis_url, [with_jobs(thing)], base_settings)
    assert sorted(worker.functions) == [
        "cron:jobtest.kernel.purge_inbox",
        "cron:jobtest.kernel.purge_outbox",
        "jobtest.kernel.purge_inbox",
        "jobtest.kernel.purge_outbox",
        "jobtest.record",
    ]
    [outbox_cron, inbox_cron] = worker.cron_jobs
    assert (outbox_cron.hour, outbox_cron.minute, outbox_cron.second, outbox_cron.unique) == (
        3,
        17,
        0,
        True,
    )
    assert (inbox_cron.hour, inbox_cron.minute) == (3, 47)


async def test_outbox_and_inbox_cleanup_keep_what_is_still_needed(
    thing: Throwaway,
    engine_database: Database,
    test_infra: WorkerInfrastructure,
    base_settings: Settings,
) -> None:
    events = {name: happened(n) for n, name in enumerate(["old", "recent", "unsent", "new"])}
    inbox_ids = {"old": uuid.uuid4(), "recent": uuid.uuid4()}
    async with engine_database.unit_of_work() as session:
        now = (await session.execute(select(func.now()))).scalar_one()
        published = {
            "old": now - timedelta(days=8),
            "recent": now - timedelta(days=6),
            "unsent": None,
            "new": None,
        }
        created = {"old": now - timedelta(days=9), "unsent": now - timedelta(days=40)}
        for name, event in events.items():
            row = {**outbox_row(event), "published_at": published[name]}
            if name in created:
                row["created_at"] = created[name]
            await session.execute(insert(thing.outbox).values(row))
        await session.execute(
            insert(thing.inbox).values(
                [
                    {
                        "consumer": "g",
                        "event_id": inbox_ids["old"],
                        "processed_at": now - timedelta(days=31),
                    },
                    {
                        "consumer": "g",
                        "event_id": inbox_ids["recent"],
                        "processed_at": now - timedelta(days=29),
                    },
                ]
            )
        )

    await enqueue(test_infra.redis_url, "jobtest.kernel.purge_outbox")
    await enqueue(test_infra.redis_url, "jobtest.kernel.purge_inbox")
    assert await run_burst(engine_database, test_infra, [thing.service], base_settings) == 2

    async with engine_database.unit_of_work() as session:
        outbox_left = set((await session.execute(select(thing.outbox.c.id))).scalars())
        inbox_left = set((await session.execute(select(thing.inbox.c.event_id))).scalars())
    assert outbox_left == {events[name].id for name in ("recent", "unsent", "new")}
    assert inbox_left == {inbox_ids["recent"]}


def test_job_names_must_be_unique(thing: Throwaway, base_settings: Settings) -> None:
    async def nothing(session: AsyncSession) -> None:
        return None

    twice = replace(
        thing.service, jobs=[JobSpec("jobtest.same", nothing), JobSpec("jobtest.same", nothing)]
    )
    with pytest.raises(ValueError, match=r"jobtest\.same"):
        build_worker(None, "redis://localhost", [twice], base_settings)  # type: ignore[arg-type]


async def test_stored_answers_of_idempotent_writes_are_purged_after_a_week(
    engine_database: Database,
) -> None:
    """Every service with idempotency keys has the daily purge; it keeps the last week's."""
    scheduled = {
        job.name.split(".")[0]: job
        for s in SERVICES
        for job in kernel_jobs(s)
        if job.name.endswith(".kernel.purge_idempotency_keys")
    }
    assert set(scheduled) == {
        s.name
        for s in SERVICES
        if any(t.name == IDEMPOTENCY_TABLE for t in s.metadata.tables.values())
    }
    assert {"members", "rewards", "community", "marketing", "webhooks"} <= set(scheduled)
    assert scheduled["members"].cron == Schedule(hour=3, minute=32)

    table = IDEMPOTENCY.table
    brand_id = uuid.uuid4()
    async with engine_database.unit_of_work() as session:
        now = (await session.execute(select(func.now()))).scalar_one()
        for key, age in (("old", 8), ("recent", 6)):
            await session.execute(
                insert(table).values(
                    brand_id=brand_id,
                    key=key,
                    request_hash="h",
                    response_status=201,
                    response_body=b"{}",
                    created_at=now - timedelta(days=age),
                )
            )
    try:
        async with engine_database.unit_of_work() as session:
            assert await scheduled["members"].function(session) >= 1
        async with engine_database.unit_of_work() as session:
            left = await session.scalars(select(table.c.key).where(table.c.brand_id == brand_id))
            assert list(left) == ["recent"]
    finally:
        async with engine_database.unit_of_work() as session:
            await session.execute(delete(table).where(table.c.brand_id == brand_id))
