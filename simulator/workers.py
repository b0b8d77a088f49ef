"""The chunks of a phase, loaded by worker processes side by side.

A chunk is pure Python work (generating records, replaying the rules) followed by a COPY, so one
process keeps one core busy and PostgreSQL mostly waits; a process per core loads chunks about
that many times faster. Chunks are dealt round robin; each worker makes the world's arrays itself
(they are deterministic), opens its own connection, commits chunk by chunk and reports each chunk
on a queue. The simulating process records progress as reports arrive, in any order.

With one worker the chunks load in the simulating process itself, through the same functions.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import traceback
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from services.kernel.db import Database
from simulator import world
from simulator.chunks import (
    WorldView,
    load_members_chunk,
    load_purchases_chunk,
)

Phase = Literal["members", "purchases"]
# How long the simulating process waits on the queue before it checks that the workers live.
_POLL_SECONDS = 1.0


class WorkerFailed(RuntimeError):
    """A worker process failed a chunk or died; the chunks it committed stay committed."""


@dataclass(frozen=True, slots=True)
class Job:
    """What one worker process loads (picklable: it crosses into a spawned process)."""

    phase: Phase
    database_url: str
    params: dict[str, Any]
    brand_id: str
    currency: str
    chunks: tuple[int, ...]


async def _load(
    job: Job, view: WorldView, database: Database, chunk: int
) -> int:  # one chunk, whichever process runs it
    brand_id = uuid.UUID(job.brand_id)
    if job.phase == "members":
        return await load_members_chunk(database, view, brand_id, chunk)
    return await load_purchases_chunk(database, view, brand_id, job.currency, chunk)


async def _work(job: Job, reports: multiprocessing.Queue[tuple[Any, ...]]) -> None:
    view = WorldView.of(world.WorldParams.from_json(job.params))
    database = Database(job.database_url, pool_size=1, max_overflow=0)
    chunk = -1
    try:
        for chunk in job.chunks:
            reports.put(("done", chunk, await _load(job, view, database, chunk)))
    except BaseException:
        reports.put(("failed", chunk, traceback.format_exc()))
        raise
    finally:
        await database.dispose()


def _worker_main(job: Job, reports: multiprocessing.Queue[tuple[Any, ...]]) -> None:
    asyncio.run(_work(job, reports))


async def load_chunks(
    phase: Phase,
    database: Database,
    view: WorldView,
    brand_id: uuid.UUID,
    chunks: Sequence[int],
    *,
    workers: int,
    currency: str = "",
) -> AsyncIterator[tuple[int, int]]:
    """Loads `chunks`; yields (chunk, loaded) as each one commits, in the order they finish."""

    def job_for(share: Sequence[int], url: str) -> Job:
        return Job(phase, url, view.params.to_json(), str(brand_id), currency, tuple(share))

    if workers <= 1 or len(chunks) <= 1:
        job = job_for(chunks, database.url)
        for chunk in chunks:
            yield chunk, await _load(job, view, database, chunk)
        return

    context = multiprocessing.get_context("spawn")  # no inherited event loop or connections
    reports: multiprocessing.Queue[tuple[Any, ...]] = context.Queue()
    shares = [list(chunks[k::workers]) for k in range(min(workers, len(chunks)))]
    processes = [
        context.Process(
            target=_worker_main, args=(job_for(share, database.url), reports), daemon=True
        )
        for share in shares
    ]
    for process in processes:
        process.start()
    try:
        left = len(chunks)
        while left:
            report = await asyncio.to_thread(_next_report, reports, processes)
            kind, chunk, value = report
            if kind == "failed":
                raise WorkerFailed(f"{phase} chunk {chunk} failed in a worker:\n{value}")
            left -= 1
            yield chunk, value
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join()


def _next_report(
    reports: multiprocessing.Queue[tuple[Any, ...]],
    processes: Sequence[multiprocessing.process.BaseProcess],
) -> tuple[Any, ...]:
    while True:
        try:
            return reports.get(timeout=_POLL_SECONDS)
        except queue.Empty:
            dead = [p for p in processes if p.exitcode not in (None, 0)]
            if dead:
                raise WorkerFailed(
                    f"worker process {dead[0].pid} died (exit code {dead[0].exitcode}) "
                    "without reporting: rerun the same command to resume"
                ) from None
