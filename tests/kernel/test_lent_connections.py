"""`Database.driver`: connections of the pool, lent one borrower at a time outside any
transaction, pinged after idling, discarded when broken, and bounded."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel import db
from services.kernel.db import Database
from tests.conftest import WorkerInfrastructure


@pytest.fixture
async def pooled(test_infra: WorkerInfrastructure) -> AsyncIterator[Database]:
    """A pool of its own (eight connections: two lent at most), short waits."""
    database = Database(test_infra.database_url, pool_size=8, max_overflow=0, pool_timeout=0.3)
    yield database
    await database.dispose()


def _checked_out(database: Database) -> int:
    return database.engine.sync_engine.pool.checkedout()  # type: ignore[attr-defined,no-any-return]


@asynccontextmanager
async def all_lent(database: Database) -> AsyncIterator[None]:
    """Both of the pool's lent connections held by borrowers until the block ends."""
    release = asyncio.Event()
    held = [asyncio.Event(), asyncio.Event()]

    async def hold(holding: asyncio.Event) -> None:
        async with database.driver():
            holding.set()
            await release.wait()

    holders = [asyncio.create_task(hold(holding)) for holding in held]
    await asyncio.gather(*(holding.wait() for holding in held))
    try:
        yield
    finally:
        release.set()
        await asyncio.gather(*holders)


async def _backend(driver: asyncpg.Connection) -> int:
    pid: int = await driver.fetchval("SELECT pg_backend_pid()")
    return pid


async def test_a_lent_connection_is_outside_any_transaction_and_lent_again(
    pooled: Database,
) -> None:
    async with pooled.driver() as driver:
        assert not driver.is_in_transaction()
        first = await _backend(driver)
        assert _checked_out(pooled) == 1
    async with pooled.driver() as driver:
        assert await _backend(driver) == first
    assert _checked_out(pooled) == 1  # kept out, for the next borrower


async def test_borrowers_past_the_lent_connections_wait_then_time_out(pooled: Database) -> None:
    async with all_lent(pooled):
        with pytest.raises(PoolTimeout, match=r"no lent connection came free within 0\.3 s"):
            async with pooled.driver():
                pass
        # Sessions still find connections: the lent ones are a quarter of the pool.
        async with pooled.unit_of_work() as session:
            assert await session.scalar(text("SELECT 1")) == 1


async def test_a_connection_left_in_a_transaction_comes_back_rolled_back(
    pooled: Database,
) -> None:
    name = f"lent_{uuid.uuid4().hex}"
    async with pooled.driver() as driver:
        await driver.execute("BEGIN")
        await driver.execute(f"CREATE TABLE {name} (id int)")
    async with pooled.driver() as driver:
        assert not driver.is_in_transaction()
        assert await driver.fetchval("SELECT to_regclass($1)", name) is None


async def test_a_closed_connection_is_discarded_and_the_next_borrower_gets_a_live_one(
    pooled: Database,
) -> None:
    async with pooled.driver() as driver:
        broken = await _backend(driver)
        await driver.close()
    assert _checked_out(pooled) == 0  # given back to the pool as unusable
    async with pooled.driver() as driver:
        assert await _backend(driver) != broken
        assert await driver.fetchval("SELECT 1") == 1


@pytest.mark.parametrize("ended_while_idle", [False, True])
async def test_a_connection_idle_past_the_ping_age_is_pinged_and_lent_again_if_alive(
    pooled: Database, monkeypatch: pytest.MonkeyPatch, ended_while_idle: bool
) -> None:
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.05)
    async with pooled.driver() as driver:
        first = await _backend(driver)
    if ended_while_idle:  # as a restart of PostgreSQL or a firewall's idle timeout would
        async with pooled.unit_of_work() as session:
            await session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
    await asyncio.sleep(0.1)
    async with pooled.driver() as driver:
        # Alive, the same one, with its prepared statements; ended, discarded and replaced.
        assert (await _backend(driver) == first) is not ended_while_idle
    assert _checked_out(pooled) == 1


async def test_a_connection_whose_server_stopped_answering_is_given_up_after_the_ping_timeout(
    test_infra: WorkerInfrastructure, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lent connection idle past the ping age whose server no longer answers (its backend
    stopped, as behind a dropped route) is given up after PING_TIMEOUT_SECONDS, not after the
    pool's wait for a free connection, and the borrower gets a new one."""
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.05)
    monkeypatch.setattr(db, "PING_TIMEOUT_SECONDS", 0.2)
    patient = Database(test_infra.database_url, pool_size=4, max_overflow=0, pool_timeout=30.0)
    try:
        async with patient.driver() as driver:
            stopped = await _backend(driver)
        try:
            os.kill(stopped, signal.SIGSTOP)
        except PermissionError:
            pytest.skip("stopping a backend needs the right to signal PostgreSQL's processes")
        try:
            await asyncio.sleep(0.1)
            started = time.monotonic()
            async with patient.driver() as driver:
                assert await _backend(driver) != stopped
                assert await driver.fetchval("SELECT 1") == 1
            assert time.monotonic() - started < 5.0  # not the pool's 30 s
        finally:
            os.kill(stopped, signal.SIGCONT)
    finally:
        await patient.dispose()


async def test_bound_to_a_tests_connection_it_is_that_connection(
    database: Database, session: AsyncSession
) -> None:
    name = f"bound_{uuid.uuid4().hex}"
    await session.execute(text(f"CREATE TABLE {name} (id int)"))
    async with database.driver() as driver:
        assert driver.is_in_transaction()  # the test's
        assert await driver.fetchval("SELECT to_regclass($1)::text", name) == name


async def test_a_borrower_cancelled_mid_statement_leaves_no_busy_connection_behind(
    pooled: Database,
) -> None:
    started = asyncio.Event()

    async def slow() -> None:
        async with pooled.driver() as driver:
            started.set()
            await driver.fetchval("SELECT pg_sleep(5)")

    task = asyncio.create_task(slow())
    await started.wait()
    await asyncio.sleep(0.05)  # the statement is running
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _checked_out(pooled) == 0  # discarded, not lent again while busy
    async with pooled.driver() as driver:
        assert await driver.fetchval("SELECT 1") == 1
