"""`Database.reading`, a GET request's session: statements each on their own, with no BEGIN and
COMMIT around them; writes refused but for a statement that stands alone; other methods keep
their transaction."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import MetaData, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.kernel.db import (
    STANDS_ALONE,
    Database,
    ReadOnlySession,
    SessionDep,
    WriteInReadOnlySession,
    driver_connection,
    table_of,
)
from tests.conftest import WorkerInfrastructure


class _Base(DeclarativeBase):
    metadata = MetaData()


class _Note(_Base):
    __tablename__ = f"test_reading_{uuid.uuid4().hex[:12]}"  # one a test process, dropped after
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str]


_metadata = _Base.metadata
_notes = table_of(_Note)


@pytest.fixture
async def database(test_infra: WorkerInfrastructure) -> AsyncIterator[Database]:
    database = Database(test_infra.database_url, pool_size=2, max_overflow=0)
    async with database.engine.begin() as connection:
        await connection.run_sync(_metadata.create_all)
    try:
        yield database
    finally:
        async with database.engine.begin() as connection:
            await connection.run_sync(_metadata.drop_all)
        await database.dispose()


async def _bodies(database: Database) -> list[str]:
    async with database.unit_of_work() as session:
        return list(await session.scalars(select(_notes.c.body).order_by(_notes.c.id)))


async def test_a_reading_session_runs_each_statement_outside_any_transaction(
    database: Database,
) -> None:
    async with database.reading() as session:
        assert isinstance(session.sync_session, ReadOnlySession)
        assert await session.scalar(text("SELECT 1")) == 1
        driver = await driver_connection(session)
        assert not driver.is_in_transaction()
        # Each statement is its own transaction: each has a transaction start of its own.
        first = await session.scalar(text("SELECT transaction_timestamp()"))
        second = await session.scalar(text("SELECT transaction_timestamp()"))
        assert first != second
    async with database.unit_of_work() as session:
        await session.scalar(text("SELECT 1"))
        assert (await driver_connection(session)).is_in_transaction()
        first = await session.scalar(text("SELECT transaction_timestamp()"))
        assert await session.scalar(text("SELECT transaction_timestamp()")) == first
    assert database.engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_a_reading_session_refuses_writes_and_writes_nothing(database: Database) -> None:
    async with database.unit_of_work() as session:
        await session.execute(insert(_notes).values(id=1, body="kept"))

    async with database.reading() as session:
        session.add(_Note(id=2, body="added"))
        with pytest.raises(WriteInReadOnlySession, match="reading session flushed changes: 1 new"):
            await session.flush()
        session.expunge_all()
        with pytest.raises(WriteInReadOnlySession, match="reading session ran INSERT"):
            await session.execute(insert(_notes).values(id=3, body="inserted"))
        assert (await session.get(_Note, 1)) is not None  # reading is what it is for
        with pytest.raises(WriteInReadOnlySession, match="reading session ran UPDATE"):
            await session.execute(_notes.update().where(_notes.c.id == 1).values(body="changed"))
        with pytest.raises(WriteInReadOnlySession, match="reading session ran DELETE"):
            await session.execute(_notes.delete())
    assert await _bodies(database) == ["kept"]


async def test_a_write_that_stands_alone_is_written_at_once(database: Database) -> None:
    async with database.reading() as session:
        await session.execute(
            insert(_notes).values(id=1, body="filled in"), execution_options=STANDS_ALONE
        )
        # Committed by itself: another connection sees it while this session is still open.
        assert await _bodies(database) == ["filled in"]


async def test_a_get_request_gets_a_reading_session_and_other_methods_a_transaction(
    database: Database,
) -> None:
    app = FastAPI()
    app.state.database = database

    @app.get("/session")
    async def read(session: SessionDep) -> dict[str, object]:
        return await _described(session)

    @app.post("/session")
    async def work(session: SessionDep) -> dict[str, object]:
        return await _described(session)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/session")).json() == {"reading": True, "in_transaction": False}
        assert (await client.post("/session")).json() == {"reading": False, "in_transaction": True}


async def _described(session: AsyncSession) -> dict[str, object]:
    await session.scalar(text("SELECT 1"))
    return {
        "reading": isinstance(session.sync_session, ReadOnlySession),
        "in_transaction": (await driver_connection(session)).is_in_transaction(),
    }
