"""Deleting the dead letters that name erased members, across streams and pages, and the job
plumbing that hands such a job the worker's Redis."""

from __future__ import annotations

import uuid
from collections.abc import Set
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel import dead_letters
from services.kernel.db import Database
from services.kernel.dead_letters import dead_letter_streams, forget_dead_letters
from services.kernel.jobs import JobSpec, arq_functions

ERASED = {uuid.uuid4(), uuid.uuid4()}
KEPT = uuid.uuid4()


async def _erased_among(ids: Set[uuid.UUID]) -> Set[uuid.UUID]:
    return ids & ERASED


async def test_letters_naming_an_erased_member_go_on_every_page_of_every_stream(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dead_letters, "PAGE", 3)
    erased = sorted(ERASED)
    names = [erased[0], KEPT, erased[1], None, erased[0], KEPT, erased[0]]
    for number, member in enumerate(names):
        # Where the id appears varies: the payload, the subject, an upper-cased traceback.
        field = ("payload", "subject_id", "traceback")[number % 3]
        value = "" if member is None else str(member)
        await redis.xadd(
            "kinfolk:events:rewards:dead",
            {"n": str(number), field: value.upper() if field == "traceback" else value},
        )
    await redis.xadd("kinfolk:events:community:dead", {"n": "c", "payload": str(erased[1])})
    await redis.xadd("kinfolk:events:rewards", {"n": "live", "payload": str(erased[0])})
    await redis.set("kinfolk:events:webhooks:dead", "not a stream")

    assert await forget_dead_letters(redis, _erased_among) == 5
    left = [f[b"n"] for _, f in await redis.xrange("kinfolk:events:rewards:dead")]
    assert left == [b"1", b"3", b"5"]  # the kept member's letters and the one naming no one
    assert await redis.xlen("kinfolk:events:community:dead") == 0
    assert await redis.xlen("kinfolk:events:rewards") == 1  # a live stream is not touched
    assert await dead_letter_streams(redis) == [
        b"kinfolk:events:community:dead",
        b"kinfolk:events:rewards:dead",
    ]
    assert await forget_dead_letters(redis, _erased_among) == 0


async def test_a_job_that_needs_redis_gets_the_workers_connection(
    engine_database: Database, redis: Redis
) -> None:
    seen: list[Any] = []

    async def job(session: AsyncSession, *, redis: Redis, extra: int) -> int:
        seen.append(redis)
        return extra

    plain = JobSpec("test.plain", lambda session, extra: _answer(extra))
    needing = JobSpec("test.needs_redis", job, needs_redis=True)
    run_plain, run_needing = arq_functions(engine_database, [plain, needing])
    assert await run_needing.coroutine({"redis": redis}, extra=7) == 7
    assert seen == [redis]
    assert await run_plain.coroutine({"redis": redis}, extra=8) == 8  # not handed Redis


async def _answer(value: int) -> int:
    return value
