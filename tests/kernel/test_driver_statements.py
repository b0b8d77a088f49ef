"""`DriverStatement`: a Core statement run by asyncpg on the session's connection gives what
SQLAlchemy's execution of it gives (rows, types, errors), inside the session's transaction; and
whatever runs on the session's driver connection (`driver_connection`: COPY) is inside it too,
even as the transaction's first statement."""

from __future__ import annotations

import enum
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy.exc
from sqlalchemy import BigInteger, DateTime, MetaData, bindparam, insert, select
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.kernel.db import (
    Database,
    WriteInReadOnlySession,
    copy_records,
    table_of,
    text_enum,
)
from services.kernel.driver_statements import DriverStatement
from tests.conftest import WorkerInfrastructure


class _Colour(enum.StrEnum):
    RED = "red"
    BLUE = "blue"


class _Base(DeclarativeBase):
    metadata = MetaData()


class _Thing(_Base):
    __tablename__ = f"test_driver_{uuid.uuid4().hex[:12]}"  # one a test process, dropped after
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    name: Mapped[str]
    count: Mapped[int] = mapped_column(BigInteger)
    colour: Mapped[_Colour] = mapped_column(text_enum(_Colour, "test_colour"))
    facts: Mapped[dict[str, Any]] = mapped_column(JSONB)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


_things = table_of(_Thing)
_INSERT = DriverStatement(
    insert(_things)
    .values({c.key: bindparam(c.key, type_=c.type) for c in _things.c})
    .returning(_things.c.id)
)
_BY_ID = select(_things).where(_things.c.id == bindparam("id", type_=_things.c.id.type))
_LOCK = DriverStatement(_BY_ID.with_for_update())
_CONSTANT = DriverStatement(select(bindparam("given", 41, type_=BigInteger).label("answer")))


def _thing(name: str = "serum", **changes: Any) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "name": name,
        "count": 2**40,
        "colour": _Colour.BLUE,
        "facts": {"tags": ["dry", "oily"], "n": 1},
        "at": datetime(2026, 11, 24, 12, 30, tzinfo=UTC),
    } | changes


async def _committed(database: Database, thing: dict[str, Any]) -> None:
    async with database.unit_of_work() as session:
        await _INSERT.fetch(session, thing)


async def _ids(database: Database) -> list[uuid.UUID]:
    async with database.unit_of_work() as session:
        return list(await session.scalars(select(_things.c.id)))


@pytest.fixture
async def database(test_infra: WorkerInfrastructure) -> AsyncIterator[Database]:
    database = Database(test_infra.database_url, pool_size=3, max_overflow=0)
    async with database.engine.begin() as connection:
        await connection.run_sync(_Base.metadata.create_all)
    try:
        yield database
    finally:
        async with database.engine.begin() as connection:
            await connection.run_sync(_Base.metadata.drop_all)
        await database.dispose()


async def test_rows_are_what_sqlalchemy_gives_types_included(database: Database) -> None:
    thing = _thing()
    async with database.unit_of_work() as session:
        inserted = await _INSERT.fetch(session, thing)
        assert [row.id for row in inserted] == [thing["id"]]
        mine = await DriverStatement(_BY_ID).fetch_one(session, {"id": thing["id"]})
        theirs = (await session.execute(_BY_ID, {"id": thing["id"]})).one()
    assert tuple(mine) == tuple(theirs)
    assert mine._fields == theirs._fields
    for key in theirs._fields:
        assert type(getattr(mine, key)) is type(getattr(theirs, key)), key
    assert mine.colour is _Colour.BLUE
    assert mine.facts == thing["facts"]
    # A value the statement carries itself is bound with it.
    async with database.unit_of_work() as session:
        assert (await _CONSTANT.fetch_one(session, {})).answer == 41
        assert await DriverStatement(_BY_ID).fetch_one(session, {"id": uuid.uuid4()}) is None


async def test_statements_run_in_the_sessions_transaction(database: Database) -> None:
    kept = _thing("kept")
    dropped = _thing("dropped")
    await _committed(database, kept)
    async with database.unit_of_work() as session:
        # The driver statement first: its transaction is the session's, begun for it.
        await _INSERT.fetch(session, dropped)
        assert await session.scalar(select(_things.c.name).where(_things.c.id == dropped["id"]))
        await session.rollback()
    async with database.unit_of_work() as session:
        names = list(await session.scalars(select(_things.c.name)))
    assert names == ["kept"]


async def test_a_copy_as_the_transactions_first_statement_rolls_back_with_it(
    database: Database,
) -> None:
    thing = _thing()
    # As COPY takes them: the enum's value, the JSON as text.
    record = (*(thing[k] for k in ("id", "name", "count")), "blue", '{"n": 1}', thing["at"])
    async with database.unit_of_work() as session:
        await copy_records(session, _things, [c.key for c in _things.c], [record])
        assert await session.scalar(select(_things.c.name)) == "serum"
        await session.rollback()
    assert await _ids(database) == []
    async with database.unit_of_work() as session:
        await copy_records(session, _things, [c.key for c in _things.c], [record])
    assert await _ids(database) == [thing["id"]]


async def test_a_lock_taken_by_a_driver_statement_holds_until_the_transaction_ends(
    database: Database,
) -> None:
    thing = _thing()
    await _committed(database, thing)
    nowait = select(_things.c.id).where(_things.c.id == thing["id"]).with_for_update(nowait=True)
    async with database.unit_of_work() as holder:
        assert (await _LOCK.fetch_one(holder, {"id": thing["id"]})).name == "serum"
        async with database.unit_of_work() as other:
            with pytest.raises(sqlalchemy.exc.DBAPIError) as refused:
                await other.execute(nowait)
            assert refused.value.orig is not None
            assert getattr(refused.value.orig, "sqlstate", None) == "55P03"  # lock not available
            await other.rollback()
    async with database.unit_of_work() as session:
        assert (await session.execute(nowait)).scalar_one() == thing["id"]


async def test_errors_are_the_ones_sqlalchemy_raises_and_nothing_is_written(
    database: Database,
) -> None:
    thing = _thing()
    await _committed(database, thing)
    cases: list[tuple[dict[str, Any], type[sqlalchemy.exc.DBAPIError], str]] = [
        (_thing(id=thing["id"]), sqlalchemy.exc.IntegrityError, "23505"),  # a duplicate key
        (_thing("nul\x00here"), sqlalchemy.exc.DBAPIError, "22021"),  # a NUL in text
    ]
    for values, expected, sqlstate in cases:
        for run in ("driver", "session"):
            async with database.unit_of_work() as session:
                insert_it = (
                    _INSERT.fetch(session, values)
                    if run == "driver"
                    else session.execute(_INSERT.statement, values)
                )
                with pytest.raises(expected) as raised:
                    await insert_it
                assert getattr(raised.value.orig, "sqlstate", None) == sqlstate, run
                await session.rollback()
    assert await _ids(database) == [thing["id"]]


async def test_a_reading_session_refuses_a_driver_write(database: Database) -> None:
    async with database.reading() as session:
        with pytest.raises(WriteInReadOnlySession):
            await _INSERT.fetch(session, _thing())
        assert (await _CONSTANT.fetch_one(session, {})).answer == 41
    assert await _ids(database) == []


def test_a_statement_with_an_expanding_parameter_is_refused_when_compiled() -> None:
    with_in = select(_things.c.id).where(_things.c.name.in_(bindparam("names", expanding=True)))
    with pytest.raises(ValueError, match="expanding"):
        DriverStatement(with_in)._compile(Database("postgresql://k@127.0.0.1/k").engine.dialect)
