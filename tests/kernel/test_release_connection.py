"""`release_connection`: a session that has only read gives its connection back to the pool
before a call out (its objects stay readable, its next statement takes a connection again); a
session that wrote, or locked a row, keeps its transaction, its locks and its connection, and its
work commits with its unit of work. A lock that matched no row is no lock."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError

from services.kernel.db import Database, driver_connection, release_connection
from services.members.models import Brand
from tests.conftest import BrandFixture, make_brand, purge_brand


@pytest.fixture
async def acme(small_pool: Database) -> AsyncIterator[BrandFixture]:
    async with small_pool.unit_of_work() as session:
        brand = await make_brand(session, "Acme")
    yield brand
    await purge_brand(small_pool, brand.id)


async def _name(pool: Database, brand_id: uuid.UUID) -> str | None:
    async with pool.unit_of_work() as session:
        return await session.scalar(select(Brand.name).where(Brand.id == brand_id))


async def test_a_session_that_only_read_holds_no_connection_after(
    small_pool: Database, acme: BrandFixture
) -> None:
    async with small_pool.unit_of_work() as session:
        brand = await session.get(Brand, acme.id)
        assert brand is not None
        assert small_pool.engine.pool.checkedout() == 1  # type: ignore[attr-defined]
        assert await release_connection(session) is True
        assert small_pool.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        assert brand.name == "Acme"  # still loaded, not expired
        assert await release_connection(session) is True  # nothing begun: nothing to end
        # The next statement begins again, and what it writes commits with the unit of work.
        await session.execute(update(Brand).where(Brand.id == acme.id).values(name="Acme 2"))
        assert small_pool.engine.pool.checkedout() == 1  # type: ignore[attr-defined]
    assert await _name(small_pool, acme.id) == "Acme 2"


@pytest.mark.parametrize("write", ["statement", "flush", "dirty object", "driver"])
async def test_a_session_that_wrote_keeps_its_transaction_and_its_work(
    small_pool: Database, acme: BrandFixture, write: str
) -> None:
    async with small_pool.unit_of_work() as session:
        brand = await session.get(Brand, acme.id)
        assert brand is not None
        if write == "statement":
            await session.execute(update(Brand).where(Brand.id == acme.id).values(name="Written"))
        elif write == "flush":
            brand.name = "Written"
            await session.flush()
        elif write == "dirty object":
            brand.name = "Written"  # not flushed yet
        else:
            # What runs on the driver's connection (COPY) is out of the session's sight.
            driver = await driver_connection(session)
            renamed = "UPDATE members.brands SET name = 'Written' WHERE id = $1"
            await driver.execute(renamed, acme.id)
        assert await release_connection(session) is False
        assert small_pool.engine.pool.checkedout() == 1  # type: ignore[attr-defined]
        assert session.in_transaction()
    assert await _name(small_pool, acme.id) == "Written"


@pytest.mark.parametrize("lock", ["for update", "for key share", "in a subquery"])
async def test_a_session_that_locked_a_row_keeps_the_lock(
    small_pool: Database, acme: BrandFixture, lock: str
) -> None:
    mine = select(Brand.id).where(Brand.id == acme.id)
    statement = {
        "for update": mine.with_for_update(),
        "for key share": mine.with_for_update(key_share=True),
        "in a subquery": select(mine.with_for_update().subquery()),
    }[lock]
    async with small_pool.unit_of_work() as session:
        assert await session.scalar(statement) == acme.id
        assert await release_connection(session) is False
        assert small_pool.engine.pool.checkedout() == 1  # type: ignore[attr-defined]
        # The lock is held: another transaction cannot take the row meanwhile.
        async with small_pool.engine.connect() as other:
            with pytest.raises(DBAPIError, match="could not obtain lock"):
                await other.execute(
                    select(Brand.id).where(Brand.id == acme.id).with_for_update(nowait=True)
                )
        await session.scalar(select(Brand.name).where(Brand.id == acme.id))


async def test_a_lock_that_matched_no_row_is_no_lock(
    small_pool: Database, acme: BrandFixture
) -> None:
    async with small_pool.unit_of_work() as session:
        nobody = select(Brand).where(Brand.id == uuid.uuid4()).with_for_update()
        assert (await session.scalars(nobody)).all() == []
        assert await release_connection(session) is True
        assert small_pool.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
