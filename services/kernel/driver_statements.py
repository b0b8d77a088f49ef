"""Core statements that asyncpg runs on the session's connection, compiled by SQLAlchemy once.

For the few statements every write runs (a purchase's lock, insert and ledger move, the outbox
insert): SQLAlchemy's execution of a statement costs more CPU than the statement's own work in
asyncpg (330 against 90 microseconds for a one-row read by key, measured here); a purchase run
this way takes about 0.5 ms less CPU of its 4.4 (in process, blocks of each way alternating).
A `DriverStatement` is built once from a Core statement with named bind parameters;
its first run compiles it for the session's dialect (the SQL with `$n` placeholders, each
parameter's bind processor, each result column's result processor), and every run after that
binds the values in order and runs the SQL on the session's asyncpg connection, inside the
session's transaction, so it sees and is seen by the session's other statements as any of them
would. Rows come back as named tuples of processed values, as SQLAlchemy's rows would hold.

Not for statements whose SQL depends on the values (expanding IN lists), nor for ORM statements:
the identity map never sees these rows, exactly as with Core statements through the session.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
import sqlalchemy.exc
from sqlalchemy import Select
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import UpdateBase

from services.kernel.db import (
    BindProcessor,
    driver_binds,
    driver_handles,
    refuse_write_if_reading,
)

# The asyncpg connection under a session's current transaction, kept in `session.info` so that
# the statements of one transaction ask SQLAlchemy for it once.
_DRIVER_KEY = "kinfolk.driver_statements.connection"


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # the bind parameters in `$n` order
    binds: tuple[BindProcessor | None, ...]
    given: Mapping[str, Any]  # the values the statement itself carries (`literal(1)`)
    results: tuple[Callable[[Any], Any] | None, ...]
    row: type[tuple[Any, ...]]


class DriverStatement:
    """A Core statement run by asyncpg (see the module doc); build it once, at import."""

    def __init__(self, statement: Select[Any] | UpdateBase) -> None:
        self.statement = statement
        self._writes = isinstance(statement, UpdateBase)
        self._compiled: _Compiled | None = None

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled = self.statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        binds = driver_binds(compiled)
        names = tuple(name for name, _ in binds)
        # Parameters SQLAlchemy renders into the SQL at execution (expanding IN lists, literal
        # execution) leave a placeholder asyncpg cannot run.
        if len(set(names)) != len(names) or "__[POSTCOMPILE_" in compiled.string:
            raise ValueError(
                "a DriverStatement binds each parameter once, none expanding or rendered into "
                "the SQL at execution"
            )
        columns = compiled._result_columns
        return _Compiled(
            sql=compiled.string,
            names=names,
            binds=tuple(process for _, process in binds),
            given={
                name: compiled.binds[name].value
                for name in names
                if not compiled.binds[name].required
            },
            results=tuple(
                column.type.dialect_impl(dialect).result_processor(dialect, None)
                for column in columns
            ),
            row=namedtuple("Row", [column.keyname for column in columns], rename=True),
        )

    async def fetch(self, session: AsyncSession, parameters: Mapping[str, Any]) -> list[Any]:
        """The statement's rows, named tuples (an INSERT/UPDATE/DELETE's RETURNING rows: none
        without one)."""
        if self._writes:
            refuse_write_if_reading(session.sync_session, self.statement)
        compiled = self._compiled
        if compiled is None:
            compiled = self._compiled = self._compile(session.get_bind().dialect)
        values = [
            parameters[name] if name in parameters else compiled.given[name]
            for name in compiled.names
        ]
        for i, process in enumerate(compiled.binds):
            if process is not None:
                values[i] = process(values[i])
        adapter, driver = await _driver(session)
        try:
            records = await driver.fetch(compiled.sql, *values)
        except Exception as error:
            raise _as_sqlalchemy_raises(session, adapter, compiled.sql, values, error) from None
        results = compiled.results
        row = compiled.row
        return [
            row(*(v if p is None else p(v) for v, p in zip(record, results, strict=True)))
            for record in records
        ]

    async def fetch_one(self, session: AsyncSession, parameters: Mapping[str, Any]) -> Any:
        """The first row, or None when there is none."""
        rows = await self.fetch(session, parameters)
        return rows[0] if rows else None


async def _driver(session: AsyncSession) -> tuple[Any, asyncpg.Connection]:
    """`driver_handles` of the session, asked of SQLAlchemy once a transaction."""
    transaction = session.sync_session.get_transaction()
    kept: tuple[object, Any, asyncpg.Connection] | None = session.info.get(_DRIVER_KEY)
    if kept is not None and transaction is not None and kept[0] is transaction:
        return kept[1], kept[2]
    adapter, driver = await driver_handles(session)
    session.info[_DRIVER_KEY] = (session.sync_session.get_transaction(), adapter, driver)
    return adapter, driver


def _as_sqlalchemy_raises(
    session: AsyncSession, adapter: Any, sql: str, values: list[Any], error: Exception
) -> Exception:
    """What SQLAlchemy's execution of the statement would have raised for asyncpg's `error`
    (an `IntegrityError`, a `DataError`, ...: a `DBAPIError` wrapping the adapter's error), so
    that the handlers and retries written for the session's statements see the same."""
    dialect = session.get_bind().dialect
    dbapi_error: type[Exception] = dialect.loaded_dbapi.Error
    try:
        adapter._handle_exception(error)  # raises the adapter's translation of `error`
    except dbapi_error as adapted:
        return sqlalchemy.exc.DBAPIError.instance(
            sql, values, adapted, dbapi_error, dialect=dialect
        )
    except Exception as other:
        return other
    return error
