"""The chunks of a phase, loaded by worker processes side by side.

A chunk is pure Python work (generating records, replaying the rules) followed by a COPY, so one
process keeps one core busy and PostgreSQL mostly waits; a process per core loads chunks about
that many times faster. Chunks are dealt round robin; each worker makes the world's arrays itself
(they are deterministic), opens its own connection, commits chunk by chunk and reports each chunk
on a queue. The simulating process records progress as reports arrive, in any order.

A phase names its chunk loader: a module-level function, so that a worker process finds it by
name. With one worker the chunks load in the simulating process itself, through the same loader.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from services.kernel.collector import collector_paused
from services.kernel.db import Database
from simulator import world
from simulator.chunks import WorldView

# What one chunk loaded, by kind ("members", "posts", ...): summed by the phase.
Loaded = dict[str, int]
# Loads chunk `chunk` of a phase in its own transaction (or recognises it as loaded before).
# `args` is whatever else the phase's chunks share (picklable: it crosses into the workers).
ChunkLoader = Callable[[Database, WorldView, uuid.UUID, int, tuple[Any, ...]], Awaitable[Loaded]]
# How long the simulating process waits on the queue before it checks that the workers live.
_POLL_SECONDS = 1.0
# Workers fork from a server process started once, fresh (no inherited event loop, connections
# or threads), that has imported the phases' loaders: a spawned process paid those imports,
# seconds, for every phase. Chunks pass their loader by name, so every loader's module is here.
_LOADER_MODULES = ["simulator.chunks", "simulator.community", "simulator.happenings"]


class WorkerFailed(RuntimeError):
    """A worker process failed a chunk or died; the chunks it committed stay committed."""


@dataclass(frozen=True, slots=True)
class Job:
    """What one worker process loads (picklable: it crosses into a worker process)."""

    loader: ChunkLoader
    database_url: str
    params: dict[str, Any]
    brand_id: str
    args: tuple[Any, ...]
    chunks: tuple[int, ...]


async def _work(job: Job, reports: multiprocessing.Queue[tuple[Any, ...]]) -> None:
    view = WorldView.of(world.WorldParams.from_json(job.params))
    database = Database(job.database_url, pool_size=1, max_overflow=0)
    brand_id = uuid.UUID(job.brand_id)
    chunk = -1
    try:
        for chunk in job.chunks:
            loaded = await load_chunk(job.loader, database, view, brand_id, chunk, job.args)
            reports.put(("done", chunk, loaded))
    except BaseException:
        reports.put(("failed", chunk, traceback.format_exc()))
        raise
    finally:
        await database.dispose()


async def load_chunk(
    loader: ChunkLoader,
    database: Database,
    view: WorldView,
    brand_id: uuid.UUID,
    chunk: int,
    args: tuple[Any, ...],
) -> Loaded:
    """One chunk, with the cyclic garbage collector paused: a chunk's records and events hold
    no cycles, and collections walking them while they pile up took a quarter of a purchases
    chunk's CPU. Nothing else runs in a loading process meanwhile."""
    with collector_paused():
        return await loader(database, view, brand_id, chunk, args)


def _worker_main(job: Job, reports: multiprocessing.Queue[tuple[Any, ...]]) -> None:
    asyncio.run(_work(job, reports))


async def load_chunks(
    loader: ChunkLoader,
    database: Database,
    view: WorldView,
    brand_id: uuid.UUID,
    chunks: Sequence[int],
    *,
    workers: int,
    args: tuple[Any, ...] = (),
) -> AsyncIterator[tuple[int, Loaded]]:
    """Loads `chunks`; yields (chunk, what it loaded) as each one commits, in the order they
    finish (chunk order with one worker)."""
    if workers <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            yield chunk, await load_chunk(loader, database, view, brand_id, chunk, args)
        return

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_LOADER_MODULES)  # read when the server starts, once
    reports: multiprocessing.Queue[tuple[Any, ...]] = context.Queue()
    shares = [tuple(chunks[k::workers]) for k in range(min(workers, len(chunks)))]
    processes = [
        context.Process(
            target=_worker_main,
            args=(
                Job(loader, database.url, view.params.to_json(), str(brand_id), args, share),
                reports,
            ),
            daemon=True,
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
                raise WorkerFailed(f"chunk {chunk} failed in a worker:\n{value}")
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
