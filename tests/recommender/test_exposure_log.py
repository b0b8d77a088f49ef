"""How an exposure is committed: alone, without waiting for the WAL flush, and that choice
never reaching the connection's next transaction; inside a transaction, as that transaction."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from asyncpg import Connection
from sqlalchemy import delete, select

from recommender.serving.repository import (
    _ADD_EXPOSURE,
    _ADD_EXPOSURE_ALONE,
    NewExposure,
    ServedLists,
)
from recommender.store.models import Exposure
from services.kernel.clock import utcnow
from services.kernel.db import Database, driver_connection
from services.kernel.ids import new_id


def _exposure(brand_id: uuid.UUID) -> NewExposure:
    return NewExposure(
        id=new_id(),
        brand_id=brand_id,
        member_id=uuid.uuid4(),
        surface="perks",
        version_id=None,
        arm="",
        item_ids=["perk:1", "perk:2"],
        propensities=[1.0, 0.95],
        explored=[False, False],
        served_at=utcnow(),
    )


@pytest.fixture
async def brand_id(engine_database: Database) -> AsyncIterator[uuid.UUID]:
    """A brand id for rows these tests commit, deleted afterwards."""
    brand_id = uuid.uuid4()
    yield brand_id
    async with engine_database.unit_of_work() as session:
        await session.execute(delete(Exposure).where(Exposure.brand_id == brand_id))


@asynccontextmanager
async def flushing_commits(driver: Connection) -> AsyncIterator[Connection]:
    """The connection waiting for the flush at each commit, as in production (the test
    databases do not: they are made with `synchronous_commit` off, for speed)."""
    await driver.execute("SET synchronous_commit = on")
    try:
        yield driver
    finally:
        await driver.execute("RESET synchronous_commit")


async def _stored(database: Database, exposure_id: uuid.UUID) -> list[str] | None:
    async with database.unit_of_work() as session:
        found = await session.scalar(select(Exposure).where(Exposure.id == exposure_id))
        return list(found.item_ids) if found is not None else None


async def test_an_exposure_served_alone_commits_at_once_and_leaves_the_setting_as_it_was(
    engine_database: Database, brand_id: uuid.UUID
) -> None:
    exposure = _exposure(brand_id)
    async with engine_database.driver() as lent, flushing_commits(lent) as driver:
        assert not driver.is_in_transaction()  # serving opens none
        run: list[str] = []
        driver.add_query_logger(lambda logged: run.append(logged.query))
        await ServedLists(driver).add_exposure(exposure)
        await asyncio.sleep(0)  # asyncpg calls its query loggers soon after, not at once
        # (A new connection also runs asyncpg's type introspection first.)
        assert [q for q in run if "recommender.exposures" in q] == [_ADD_EXPOSURE_ALONE]
        assert not driver.is_in_transaction()  # committed by its own statement
        # Seen from another connection at once.
        assert await _stored(engine_database, exposure.id) == ["perk:1", "perk:2"]
        # The commit without the flush lasted as long as its statement's transaction.
        assert await driver.fetchval("SHOW synchronous_commit") == "on"


async def test_the_alone_statement_turns_the_flush_off_for_its_own_transaction_only(
    engine_database: Database, brand_id: uuid.UUID
) -> None:
    exposure = _exposure(brand_id)
    async with engine_database.driver() as lent, flushing_commits(lent) as driver:
        transaction = driver.transaction()
        await transaction.start()
        await driver.execute(_ADD_EXPOSURE_ALONE, *exposure.values())
        assert await driver.fetchval("SHOW synchronous_commit") == "off"
        await transaction.rollback()
        assert await driver.fetchval("SHOW synchronous_commit") == "on"
    assert await _stored(engine_database, exposure.id) is None


async def test_inside_a_transaction_an_exposure_commits_or_rolls_back_with_it(
    engine_database: Database, brand_id: uuid.UUID
) -> None:
    kept, dropped = _exposure(brand_id), _exposure(brand_id)
    async with engine_database.unit_of_work() as session:
        driver = await driver_connection(session)
        assert driver.is_in_transaction()  # the unit of work's, begun by driver_connection
        await driver.execute("SET LOCAL synchronous_commit = on")  # as in production
        run: list[str] = []
        driver.add_query_logger(lambda logged: run.append(logged.query))
        await ServedLists(driver).add_exposure(kept)
        await asyncio.sleep(0)
        assert [q for q in run if "recommender.exposures" in q] == [_ADD_EXPOSURE]
        # The transaction's other writes still wait for the flush when it commits.
        assert await driver.fetchval("SHOW synchronous_commit") == "on"
        assert await _stored(engine_database, kept.id) is None  # not before the commit
    assert await _stored(engine_database, kept.id) == ["perk:1", "perk:2"]

    async def fails_after_logging() -> None:
        async with engine_database.unit_of_work() as session:
            await ServedLists(await driver_connection(session)).add_exposure(dropped)
            raise RuntimeError("the request failed after its list was logged")

    with pytest.raises(RuntimeError):
        await fails_after_logging()
    assert await _stored(engine_database, dropped.id) is None
