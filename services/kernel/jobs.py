"""Background and scheduled jobs on arq (Redis), one database transaction per job.

A service declares `JobSpec`s in `ServiceModule.jobs`. The worker runs each as
`await spec.function(session, **kwargs)` inside one `database.unit_of_work()`: committed when the
function returns, rolled back when it raises (the rule "one transaction per job, committed at the
boundary"). A job with more work than one transaction should hold returns `Continue`: the run
commits, and the job is queued again with the arguments it names. A job that reads another
service gets `peers=` and calls it with a service token. Jobs and their results are JSON in
Redis. Every service with an outbox and an inbox also gets the kernel's cleanup jobs.

Job names are global on the queue, so services prefix theirs: "rewards.expire_points".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

import orjson
import structlog
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.cron import CronJob, cron
from arq.worker import Function, Worker, func
from redis.asyncio import ConnectionPool, Redis
from sqlalchemy import CursorResult, Table, delete
from sqlalchemy import func as sql_func
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clients import Peers
from services.kernel.db import Database
from services.kernel.idempotency import IDEMPOTENCY_TABLE
from services.kernel.loops import Backoff, cancel_and_wait, release_free_memory, sleep_or_stop
from services.kernel.module import ServiceModule
from services.kernel.outbox import INBOX_TABLE, OUTBOX_TABLE
from services.kernel.runtime import redis_options
from services.kernel.settings import REDIS_SCHEMES, Settings

log = structlog.get_logger(__name__)

JobFunction = Callable[..., Awaitable[Any]]

# Our own queue name, so Kinfolk's jobs never mix with another arq application on the same Redis.
QUEUE_NAME = "kinfolk:jobs"

# Published outbox rows are kept a week (a replay source if a stream was lost); inbox rows a month,
# far longer than any redelivery can arrive late, so deduplication never forgets too early.
OUTBOX_RETENTION = timedelta(days=7)
INBOX_RETENTION = timedelta(days=30)
# Stored answers of idempotent writes are kept a week: a client retries within minutes (a day at
# the most), and an answer holds what the write returned, personal data among it.
IDEMPOTENCY_RETENTION = timedelta(days=7)

# How long a stopping worker lets running jobs finish before cancelling them. A cancelled job's
# transaction rolls back and arq runs it again later.
SHUTDOWN_GRACE_SECONDS = 10.0


@dataclass(frozen=True)
class Schedule:
    """When a job runs by itself, in UTC, as arq's cron fields: None means "every"."""

    month: int | frozenset[int] | None = None
    day: int | frozenset[int] | None = None
    weekday: int | frozenset[int] | None = None  # 0 = Monday
    hour: int | frozenset[int] | None = None
    minute: int | frozenset[int] | None = None
    second: int | frozenset[int] = 0
    run_at_startup: bool = False

    def arq_options(self) -> dict[str, Any]:
        def option(value: int | frozenset[int] | None) -> int | set[int] | None:
            return set(value) if isinstance(value, frozenset) else value

        return {
            "month": option(self.month),
            "day": option(self.day),
            "weekday": option(self.weekday),
            "hour": option(self.hour),
            "minute": option(self.minute),
            "second": option(self.second),
            "run_at_startup": self.run_at_startup,
        }


@dataclass(frozen=True)
class JobSpec:
    """A job: `await function(session, **kwargs)` in one transaction; optionally on a schedule."""

    name: str
    function: JobFunction
    cron: Schedule | None = None
    timeout_seconds: float | None = None  # None: the worker's default (300 s)
    # The function also takes `redis=`: the worker's Redis connection (for jobs whose data is
    # there too, such as dead letters).
    needs_redis: bool = False
    # The function also takes `peers=`: the other services as the worker reaches them, for a
    # job that reads another service's data (with a service token; a job has no caller).
    needs_peers: bool = False


@dataclass(frozen=True)
class Continue:
    """What a job returns when it stopped with work left (at its budget): the kernel commits
    what this run did, then queues the job again with `arguments`. Each run is one
    transaction, so a job over a large brand holds no member's row locked for long."""

    arguments: dict[str, Any]
    done: Any = None  # what this run did: its result


def redis_settings(url: str) -> RedisSettings:
    """arq's connection settings for any Redis URL Kinfolk accepts.

    `redis://[user:password@]host[:port][/db]`, `rediss://...` (TLS) and
    `unix:///path/to/redis.sock[?db=N]` (the embedded server); `?db=N` wins over a path number.
    """
    parts = urlsplit(url)
    if parts.scheme not in REDIS_SCHEMES:
        raise ValueError(f"not a Redis URL: {url!r}")
    query = parse_qs(parts.query)
    database = 0
    if "db" in query:
        database = int(query["db"][0])
    elif parts.scheme != "unix" and parts.path.strip("/"):
        database = int(parts.path.strip("/"))
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    if parts.scheme == "unix":
        return RedisSettings(
            unix_socket_path=unquote(parts.path),
            database=database,
            username=username,
            password=password,
        )
    return RedisSettings(
        host=parts.hostname or "localhost",
        port=parts.port or 6379,
        database=database,
        username=username,
        password=password,
        ssl=parts.scheme == "rediss",
    )


# Jobs and their results are JSON in Redis, not arq's default pickle: unpickling what is in
# Redis would let anyone who can write to it run code in the workers. Arguments are strings,
# numbers, lists, objects, and datetimes and dates (a job's `now`), which travel tagged; what
# else a result holds (an exception a job raised, an id) is kept as its text.
_DATETIME, _DATE = "$datetime", "$date"


def _tagged(value: Any) -> Any:
    if isinstance(value, datetime):
        return {_DATETIME: value.isoformat()}
    if isinstance(value, date):
        return {_DATE: value.isoformat()}
    return str(value)


def _revived(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and _DATETIME in value:
            return datetime.fromisoformat(value[_DATETIME])
        if len(value) == 1 and _DATE in value:
            return date.fromisoformat(value[_DATE])
        return {key: _revived(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_revived(item) for item in value]
    return value


def serialize_job(data: dict[str, Any]) -> bytes:
    return orjson.dumps(data, default=_tagged, option=orjson.OPT_PASSTHROUGH_DATETIME)


def deserialize_job(raw: bytes) -> dict[str, Any]:
    data: dict[str, Any] = _revived(orjson.loads(raw))
    return data


def job_queue(redis: Redis) -> ArqRedis:
    """arq's queue on a Redis client's connections (a service's own), for `enqueue`."""
    return ArqRedis(
        connection_pool=redis.connection_pool,
        job_serializer=serialize_job,
        job_deserializer=deserialize_job,
        default_queue_name=QUEUE_NAME,
    )


def worker_redis(url: str, settings: Settings) -> ArqRedis:
    """The worker's Redis connection, with the process's connect and reply timeouts (and
    keepalives, `runtime.redis_options`).

    arq's `RedisSettings` can bound a connect but not a reply, so a Redis that accepts and never
    answers would hold the worker's poll forever; failing instead, the worker starts again after
    `run_worker`'s backoff, which is also what stands in for arq's own connection retries. The
    worker closes the pool when it stops.
    """
    pool = ConnectionPool.from_url(url, **redis_options(url, settings))
    return ArqRedis(
        pool,
        job_serializer=serialize_job,
        job_deserializer=deserialize_job,
        default_queue_name=QUEUE_NAME,
    )


def _arq_coroutine(
    database: Database, spec: JobSpec, peers: Peers
) -> Callable[..., Awaitable[Any]]:
    """The arq entry point of a job: arq's `ctx` in, one unit of work around the function."""

    async def run_job(ctx: dict[Any, Any], **kwargs: Any) -> Any:
        try:
            if spec.needs_redis:
                kwargs = {**kwargs, "redis": ctx["redis"]}
            if spec.needs_peers:
                kwargs = {**kwargs, "peers": peers}
            async with database.unit_of_work() as session:
                result = await spec.function(session, **kwargs)
            if isinstance(result, Continue):
                # After the commit: the next run starts where this one's work ends.
                queue: ArqRedis = ctx["redis"]
                await queue.enqueue_job(spec.name, _queue_name=QUEUE_NAME, **result.arguments)
                return result.done
            return result
        finally:
            # A job may have held a brand's data in memory (a training snapshot, scores): what
            # it freed goes back to the system (see `loops.release_free_memory`). On the loop:
            # it takes microseconds, and awaited in a thread here it held up the worker's stop.
            release_free_memory()

    run_job.__qualname__ = spec.name
    return run_job


def collect_jobs(services: Sequence[ServiceModule], *, kernel: bool = True) -> list[JobSpec]:
    """Every job the services declare, plus the kernel's cleanup jobs of each service."""
    specs: list[JobSpec] = []
    for service in services:
        specs.extend(service.jobs)
        if kernel:
            specs.extend(kernel_jobs(service))
    names = [spec.name for spec in specs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"job names must be unique across services: {duplicates}")
    return specs


def arq_functions(database: Database, specs: Sequence[JobSpec], peers: Peers) -> list[Function]:
    """Every job, enqueueable by its name (scheduled ones too, to run them by hand)."""
    return [
        func(_arq_coroutine(database, spec, peers), name=spec.name, timeout=spec.timeout_seconds)  # type: ignore[arg-type]
        for spec in specs
    ]


def arq_cron_jobs(database: Database, specs: Sequence[JobSpec], peers: Peers) -> list[CronJob]:
    """The scheduled jobs. arq's `unique` cron ids make several workers enqueue each run once."""
    jobs: list[CronJob] = []
    for spec in specs:
        if spec.cron is None:
            continue
        jobs.append(
            cron(
                _arq_coroutine(database, spec, peers),  # type: ignore[arg-type]
                name=f"cron:{spec.name}",
                timeout=spec.timeout_seconds,
                unique=True,
                **spec.cron.arq_options(),
            )
        )
    return jobs


def build_worker(
    database: Database,
    redis_url: str,
    services: Sequence[ServiceModule],
    settings: Settings,
    *,
    burst: bool = False,
    poll_delay_seconds: float = 0.5,
    peers: Peers | None = None,
) -> Worker:
    """An arq worker for every job of the given services. Build it inside the running event loop.
    Jobs reach other services through `peers` (default: at their `KINFOLK_<SERVICE>_URL`).

    Signals are left to the host process (`kinfolk dev` runs the HTTP server, relay, consumers and
    this worker in one loop and stops them together), hence `handle_signals=False`.
    """
    specs = collect_jobs(services)
    peers = peers or Peers(settings)
    return Worker(
        functions=arq_functions(database, specs, peers),
        cron_jobs=arq_cron_jobs(database, specs, peers),
        redis_pool=worker_redis(redis_url, settings),
        queue_name=QUEUE_NAME,
        burst=burst,
        handle_signals=False,
        poll_delay=poll_delay_seconds,
        job_serializer=serialize_job,
        job_deserializer=deserialize_job,
        timezone=UTC,  # cron schedules are in UTC, whatever the machine's zone
        # Results are only for debugging; a day keeps idempotent `job_id`s blocked that long.
        keep_result=86_400,
    )


async def run_worker(
    database: Database,
    redis_url: str,
    services: Sequence[ServiceModule],
    settings: Settings,
    stop: asyncio.Event,
    *,
    burst: bool = False,
    poll_delay_seconds: float = 0.5,
    peers: Peers | None = None,
) -> None:
    """Run an arq worker in the current event loop until `stop` is set (or, in burst mode, the
    queue is empty). If arq's main loop fails (Redis unreachable), a fresh worker starts after a
    backoff: jobs live in Redis, so nothing is lost meanwhile.
    """
    if not collect_jobs(services):
        log.info("jobs.none_declared")  # arq refuses a worker without jobs; nothing to run
        return
    backoff = Backoff()
    while not stop.is_set():
        worker = build_worker(
            database,
            redis_url,
            services,
            settings,
            burst=burst,
            poll_delay_seconds=poll_delay_seconds,
            peers=peers,
        )
        try:
            finished = await _run_until_stopped(worker, stop)
        except Exception:
            delay = backoff.next_delay()
            log.exception("jobs.worker_failed", retry_in_seconds=delay)
            await sleep_or_stop(stop, delay)
            continue
        if finished:  # burst mode drained the queue
            return


async def _run_until_stopped(worker: Worker, stop: asyncio.Event) -> bool:
    """Returns True when the worker finished by itself, False when `stop` ended it."""
    main = asyncio.ensure_future(worker.async_run())
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({main, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        await _shut_down(worker, main)
    if main.cancelled():
        return False
    main.result()  # re-raises a failure of arq's main loop
    return True


async def _shut_down(worker: Worker, main: asyncio.Future[None]) -> None:
    """Stop taking jobs, give running ones a grace period, then let arq cancel the rest and
    close its Redis pool. Never raises the worker's own failure: the caller reads `main`."""
    worker.allow_pick_jobs = False
    running = [task for task in worker.tasks.values() if not task.done()]
    if running:
        await asyncio.wait(running, timeout=SHUTDOWN_GRACE_SECONDS)
    cancels = await cancel_and_wait(main)
    if cancels > 1:
        log.warning("jobs.worker_stop_took_cancellations", cancellations=cancels)
    try:
        await worker.close()
    except asyncio.CancelledError:
        # arq re-raises the cancellation of jobs cut short after the grace period; only a
        # cancellation of this task itself must go on.
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise


async def enqueue(
    redis: str | ArqRedis,
    job_name: str,
    /,
    *,
    job_id: str | None = None,
    defer_by: timedelta | None = None,
    **kwargs: Any,
) -> str:
    """Queue a job by name; returns its id.

    With `job_id`, enqueueing is idempotent: while a job with that id is queued, running, or its
    result is kept (a day), another enqueue is a no-op that returns the same id.
    """
    owned = isinstance(redis, str)
    pool = (
        await create_pool(
            redis_settings(redis), job_serializer=serialize_job, job_deserializer=deserialize_job
        )
        if isinstance(redis, str)
        else redis
    )
    try:
        job = await pool.enqueue_job(
            job_name, _job_id=job_id, _queue_name=QUEUE_NAME, _defer_by=defer_by, **kwargs
        )
    finally:
        if owned:
            await pool.aclose()
    if job is None:
        assert job_id is not None  # arq refuses a job only when its id is taken
        return job_id
    return str(job.job_id)


# The kernel's own jobs ----------------------------------------------------------------------


def _table(service: ServiceModule, name: str) -> Table | None:
    return service.metadata.tables.get(f"{service.schema}.{name}")


def purge_outbox_job(table: Table, retention: timedelta = OUTBOX_RETENTION) -> JobFunction:
    async def purge_outbox(session: AsyncSession) -> int:
        """Delete published outbox rows older than the retention; unpublished rows always stay."""
        result = await session.execute(
            delete(table).where(
                table.c.published_at.is_not(None),
                table.c.published_at < sql_func.now() - retention,
            )
        )
        return cast(CursorResult[Any], result).rowcount

    return purge_outbox


def purge_inbox_job(table: Table, retention: timedelta = INBOX_RETENTION) -> JobFunction:
    async def purge_inbox(session: AsyncSession) -> int:
        """Delete inbox rows older than the retention: no redelivery arrives that late."""
        result = await session.execute(
            delete(table).where(table.c.processed_at < sql_func.now() - retention)
        )
        return cast(CursorResult[Any], result).rowcount

    return purge_inbox


def purge_idempotency_job(
    table: Table, retention: timedelta = IDEMPOTENCY_RETENTION
) -> JobFunction:
    async def purge_idempotency_keys(session: AsyncSession) -> int:
        """Delete the stored answers of idempotent writes older than the retention; a key used
        again after that does the work again."""
        result = await session.execute(
            delete(table).where(table.c.created_at < sql_func.now() - retention)
        )
        return cast(CursorResult[Any], result).rowcount

    return purge_idempotency_keys


# Each kernel table's cleanup: its job's name, the job, and its daily time (UTC).
_CLEANUPS: tuple[tuple[str, str, Callable[[Table], JobFunction], Schedule], ...] = (
    (OUTBOX_TABLE, "purge_outbox", purge_outbox_job, Schedule(hour=3, minute=17)),
    (INBOX_TABLE, "purge_inbox", purge_inbox_job, Schedule(hour=3, minute=47)),
    (
        IDEMPOTENCY_TABLE,
        "purge_idempotency_keys",
        purge_idempotency_job,
        Schedule(hour=3, minute=32),
    ),
)


def kernel_jobs(service: ServiceModule) -> list[JobSpec]:
    """The cleanup jobs of one service's outbox, inbox and idempotency keys (those it has),
    daily at a quiet fixed time (UTC)."""
    return [
        JobSpec(f"{service.name}.kernel.{name}", make(table), cron=schedule)
        for table_name, name, make, schedule in _CLEANUPS
        if (table := _table(service, table_name)) is not None
    ]
