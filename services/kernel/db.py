"""Async SQLAlchemy on asyncpg: one engine per process, one session per unit of work.

Services never commit. The boundary (an HTTP request, a job, an event handler) owns the
transaction: `unit_of_work` commits when the work returns and rolls back when it raises. A GET
request reads without one (`Database.reading`).
"""

from __future__ import annotations

import asyncio
import errno
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, nullcontext
from contextvars import ContextVar
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
from fastapi import Depends, Request
from sqlalchemy import (
    Column,
    Enum,
    MetaData,
    Select,
    Table,
    bindparam,
    cast,
    event,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, ORMExecuteState, Session, UOWTransaction
from sqlalchemy.sql.compiler import SQLCompiler

from services.kernel.settings import Settings
from services.kernel.tcp_liveness import TcpLiveness, without_parameters

# Constraint names that Alembic can diff and that error handlers can recognise.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def service_metadata(schema: str) -> MetaData:
    """The metadata of one service: every table lives in the service's own Postgres schema."""
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


def unnest_rows(columns: Sequence[Column[Any]], rows: Sequence[Sequence[Any]]) -> Select[Any]:
    """`SELECT * FROM unnest($1::t1[], $2::t2[], ...) AS v(c1, c2, ...)`: `rows` as a relation
    with the names and types of `columns`.

    One array parameter per column, however many rows: a bulk upsert stays one short statement
    (and one cached plan) instead of thousands of bound values. The casts tell PostgreSQL each
    array's type, which `unnest` (polymorphic) cannot infer from a parameter.
    """
    arrays = [
        cast(bindparam(None, [row[i] for row in rows], type_=ARRAY(c.type)), ARRAY(c.type))
        for i, c in enumerate(columns)
    ]
    source = func.unnest(*arrays).table_valued(*(c.name for c in columns)).render_derived()
    return select(*(source.c[c.name] for c in columns))


# NULL until the transaction writes or locks a row (PostgreSQL assigns a transaction id then):
# whatever ran it (ORM, Core, text, COPY on the driver's connection, a lock in a subquery).
_WRITTEN_OR_LOCKED = text("SELECT txid_current_if_assigned()")


class ReadOnlySession(Session):
    """The session of a GET request (`Database.reading`): its statements run each on its own,
    so it refuses to write (a write there would not be undone with the rest of the request's
    work), but for a statement that says it stands alone (`STANDS_ALONE`)."""


class WriteInReadOnlySession(RuntimeError):
    """A GET route wrote: a defect of the route (a write is a POST, PUT, PATCH or DELETE), not
    of the input."""


@event.listens_for(ReadOnlySession, "before_flush")
def _refuse_flush(session: Session, _context: UOWTransaction, _instances: object) -> None:
    raise WriteInReadOnlySession(
        f"a reading session flushed changes: {len(session.new)} new, "
        f"{len(session.dirty)} changed, {len(session.deleted)} deleted"
    )


# The execution option of a write that is whole in one statement and may run in a reading
# session, outside any transaction: an idempotent fill-in of a projection (`INSERT ... ON
# CONFLICT DO NOTHING` of what another service answered). `session.execute(statement, ...,
# execution_options=STANDS_ALONE)`.
_STANDS_ALONE = "kinfolk_stands_alone"
STANDS_ALONE = {_STANDS_ALONE: True}


def refuse_write_if_reading(session: Session, statement: object) -> None:
    """Refuses the write `statement` before it runs when `session` is a reading one: what
    SQLAlchemy executes (below) and what runs on the driver (`DriverStatement`) alike."""
    if isinstance(session, ReadOnlySession):
        raise WriteInReadOnlySession(f"a reading session ran {statement}")


@event.listens_for(ReadOnlySession, "do_orm_execute")
def _refuse_writes(state: ORMExecuteState) -> None:
    writes = state.is_insert or state.is_update or state.is_delete
    if writes and not state.execution_options.get(_STANDS_ALONE):
        refuse_write_if_reading(state.session, state.statement)


# What a request reads with `Database.reading`: on the gateway's home screen, 17 statements
# against 27 with their BEGINs and COMMITs. HEAD is GET without the body.
_READING_METHODS = frozenset({"GET", "HEAD"})


async def release_connection(session: AsyncSession) -> bool:
    """Ends the transaction of a session that has neither written nor locked a row, so that it
    holds no connection while it waits on a call out of the process; its next statement begins
    a new one. Whether it did: a session whose transaction wrote, or locked rows the caller may
    rely on (FOR UPDATE, FOR KEY SHARE), keeps it, and with it its connection; so does one with
    changes not flushed yet. A lock that matched no row (an account not there yet) is no lock.

    Call it before asking another service mid-request. That service may be hosted by this
    process, its handler taking a connection from the same pool: requests that held theirs
    while they waited would, in a burst larger than the pool, starve the calls they wait on
    (each then waits out the pool's timeout). Objects loaded stay as they were loaded; what
    was read may have changed by the next statement. A call made without it, while the
    request's transaction is open, is counted and logged (`request_holds_connection`).
    """
    if session.new or session.dirty or session.deleted:
        return _kept(session)
    if not session.in_transaction():
        return True
    if isinstance(session.sync_session, ReadOnlySession):
        await session.commit()  # sends nothing: it only gives the connection back
        return True
    if await session.scalar(_WRITTEN_OR_LOCKED) is not None:
        return _kept(session)
    # A commit, not a rollback: nothing is written either way (checked above), and a rollback
    # would expire every object loaded, which the caller may still be holding.
    await session.commit()
    return True


def _kept(session: AsyncSession) -> bool:
    # The transaction holds its connection on purpose: the calls it makes are not flagged.
    session.info[_KEPT_ON_PURPOSE] = session.get_transaction()
    return False


_KEPT_ON_PURPOSE = "kinfolk_kept_on_purpose"

# The session of the HTTP request being served, while its unit of work is open (`get_session`).
# An in-process call runs the other service's handler in the same task: it sets its own session
# here and puts the caller's back when it ends.
_REQUEST_SESSION: ContextVar[AsyncSession | None] = ContextVar(
    "kinfolk_request_session", default=None
)


def request_holds_connection() -> bool:
    """Whether the request being served holds a connection in an open transaction that
    `release_connection` was not asked to give up: a call to another service made now keeps
    it through the wait (see `release_connection`). False outside requests (jobs and
    consumers hold their session through their calls, as they are few)."""
    session = _REQUEST_SESSION.get()
    if session is None or not session.in_transaction():
        return False
    return session.info.get(_KEPT_ON_PURPOSE) is not session.get_transaction()


async def driver_connection(session: AsyncSession) -> asyncpg.Connection:
    """The session's asyncpg connection, inside the session's transaction: for what SQLAlchemy
    does not speak (COPY, array-parameter statements run many thousand times)."""
    return (await driver_handles(session))[1]


async def driver_handles(session: AsyncSession) -> tuple[Any, asyncpg.Connection]:
    """SQLAlchemy's adapter of the session's connection and the asyncpg connection under it,
    with the session's transaction begun on it.

    SQLAlchemy's asyncpg adapter sends BEGIN with a transaction's first statement, not when the
    session takes the connection: what ran on the driver before any statement of the session
    would run outside the transaction (a COPY kept when the session rolls back, a lock taken
    FOR UPDATE released at once). So the adapter's transaction is begun here as its own first
    statement would begin it (in a reading session, AUTOCOMMIT, that begins nothing). The
    adapter's names are internal to SQLAlchemy (pinned in uv.lock);
    `tests/kernel/test_driver_statements.py` holds the driver's work to the transaction."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    adapter: Any = raw.dbapi_connection
    async with adapter._execute_mutex:
        if adapter._transaction is None:
            await adapter._start_transaction()
    driver = raw.driver_connection
    assert isinstance(driver, asyncpg.Connection)
    return adapter, driver


BindProcessor = Callable[[Any], Any]


def driver_binds(compiled: SQLCompiler) -> list[tuple[str, BindProcessor | None]]:
    """The bind parameters of a compiled statement in its `$n` order, each with its type's bind
    processor (None: the value goes as it is). SQLAlchemy has no public accessor for the
    processors, hence `_bind_processors`."""
    processors = compiled._bind_processors
    names = compiled.positiontup or []
    return [
        (name, processor if callable(processor := processors.get(name)) else None) for name in names
    ]


def driver_sql(session: AsyncSession, statement: Select[Any]) -> tuple[str, list[Any]]:
    """A SQLAlchemy statement as asyncpg takes it, for `driver_connection`'s COPY and cursors:
    SQL with `$n` placeholders and the values in order, each through its type's bind processor.
    Values stay parameters (asyncpg binds them, or quotes them server-side for COPY)."""
    compiled = statement.compile(
        dialect=session.get_bind().dialect, compile_kwargs={"render_postcompile": True}
    )
    assert isinstance(compiled, SQLCompiler)
    params = compiled.construct_params()
    values = [
        params[name] if process is None else process(params[name])
        for name, process in driver_binds(compiled)
    ]
    return compiled.string, values


async def copy_records(
    session: AsyncSession,
    table: Table,
    columns: Sequence[str],
    records: Sequence[Sequence[object]],
) -> None:
    """COPY `records` (tuples in `columns` order) into `table`, in the session's transaction:
    the one write of every bulk path."""
    if not records:
        return
    driver = await driver_connection(session)
    await driver.copy_records_to_table(
        table.name, schema_name=table.schema, columns=list(columns), records=records
    )


def table_of(model: type[DeclarativeBase]) -> Table:
    """A mapped class's table, for Core statements and COPY (cheaper than the ORM on hot and
    bulk paths). A declarative model's `__table__` is always a Table."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


def make_base(schema: str) -> type[DeclarativeBase]:
    """A declarative base bound to one service's schema."""

    class Base(DeclarativeBase):
        metadata = service_metadata(schema)

    return Base


def text_enum(enum: type[StrEnum], name: str) -> Enum:
    """An enum column stored as text with a CHECK constraint, not a Postgres ENUM type.

    Adding a value is then a plain constraint change; the values, not the member names, are stored.
    """
    return Enum(
        enum,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


# libpq spells the TLS setting `sslmode`; asyncpg takes the same modes as `ssl` (and refuses
# `sslmode` as an unexpected argument). Managed databases hand out URLs with `?sslmode=require`.
_LIBPQ_TLS, _ASYNCPG_TLS = "sslmode", "ssl"


def asyncpg_url(url: str) -> str:
    """Normalise any PostgreSQL URL (libpq style, socket in `?host=`, `?sslmode=`) to the
    asyncpg dialect. libpq's TCP keepalive parameters are left out: asyncpg refuses them, and
    `create_engine` sets them on each connection's socket itself (`tcp_liveness`)."""
    parts = urlsplit(url)
    scheme = "postgresql+asyncpg"
    query = _renamed(without_parameters(dict(parse_qsl(parts.query))), _LIBPQ_TLS, _ASYNCPG_TLS)
    return urlunsplit((scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def libpq_url(url: str) -> str:
    """The same URL for libpq tools (psql, pg_dump, pgbench)."""
    parts = urlsplit(url)
    query = _renamed(dict(parse_qsl(parts.query)), _ASYNCPG_TLS, _LIBPQ_TLS)
    return urlunsplit(
        ("postgresql", parts.netloc, parts.path, urlencode(query, safe="/"), parts.fragment)
    )


def _renamed(query: dict[str, str], old: str, new: str) -> dict[str, str]:
    if old in query and new not in query:
        query[new] = query.pop(old)
    return query


# A pooled connection is checked (pinged) before it is handed out only once it has sat idle this
# long. SQLAlchemy's `pool_pre_ping` checks every checkout, which on asyncpg is three round trips
# (BEGIN, ";", ROLLBACK): a quarter of the recommender's serving CPU. A connection returned
# moments ago is as alive as the pool can tell; one that sat idle may have been dropped by a
# restarted server or a firewall. One that dies in between fails its request as a 503, and the
# disconnect makes the pool replace it.
PING_AFTER_IDLE_SECONDS = 5.0
# How long a lent connection's ping may take before the connection is given up for a new one.
# PostgreSQL answers it in well under a millisecond; one that does not answer in a second is
# behind a dropped route or a hung server, and waiting for it as long as for a free connection
# (the pool's timeout, 10 s by default) held the request that long for each idle connection
# pinged.
PING_TIMEOUT_SECONDS = 1.0
_RETURNED_AT = "kinfolk_returned_at"


POOL_SIZE = 10  # unless the settings say otherwise (`connect_options`)


def create_engine(
    url: str, *, ping_after_idle_seconds: float = PING_AFTER_IDLE_SECONDS, **kwargs: Any
) -> AsyncEngine:
    options: dict[str, Any] = {"pool_size": POOL_SIZE, "max_overflow": 10}
    options.update(kwargs)
    engine = create_async_engine(asyncpg_url(url), **options)
    event.listen(engine.sync_engine, "do_connect", _connect_or_time_out)
    _probe_silent_servers(engine, TcpLiveness.of(dict(parse_qsl(urlsplit(url).query))))
    _ping_idle_connections(engine, ping_after_idle_seconds)
    return engine


def _probe_silent_servers(engine: AsyncEngine, liveness: TcpLiveness) -> None:
    """Keepalives and a user timeout on each new connection's socket (see `tcp_liveness`)."""

    def connected(dbapi_connection: Any, _record: Any) -> None:
        driver: asyncpg.Connection = dbapi_connection.driver_connection
        # asyncpg keeps its transport private and has no option of its own for this; its
        # maintainers point to the transport's socket (MagicStack/asyncpg#606).
        liveness.apply(driver._transport.get_extra_info("socket"))

    event.listen(engine.sync_engine, "connect", connected)


def _ping_idle_connections(engine: AsyncEngine, idle_seconds: float) -> None:
    """Pool events (SQLAlchemy's documented way to vet a connection at checkout): raising
    `DisconnectionError` there makes the pool discard the connection and take a fresh one."""
    dialect = engine.dialect

    def returned(_dbapi_connection: Any, record: Any) -> None:
        # `info` lives as long as the DBAPI connection: a new one has no mark, and needs no ping.
        record.info[_RETURNED_AT] = time.monotonic()

    def handed_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned_at = record.info.get(_RETURNED_AT)
        if returned_at is None or time.monotonic() - returned_at < idle_seconds:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError(f"an idle pooled connection is gone: {exc}") from exc

    event.listen(engine.sync_engine, "checkin", returned)
    event.listen(engine.sync_engine, "checkout", handed_out)


def connect_options(settings: Settings) -> dict[str, Any]:
    """How a process pools its connections, and the bounds on getting one: asyncpg's connect
    timeout (its default is a minute) and the wait for a pooled one (SQLAlchemy's is 30 s, long
    for an HTTP request)."""
    return {
        "pool_size": settings.database_pool_size,
        "max_overflow": settings.database_pool_overflow,
        "connect_args": {"timeout": settings.database_connect_timeout_seconds},
        "pool_timeout": settings.database_pool_timeout_seconds,
    }


def _connect_or_time_out(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
    """asyncpg gives up on a slow connect with a bare `TimeoutError`, which says nothing of what
    timed out. Raised again with ETIMEDOUT, it reads as the unreachable server it is, and a
    request that meets it is answered 503 (see `errors.dependency_unavailable`), not 500."""
    try:
        return dialect.connect(*cargs, **cparams)
    except TimeoutError as exc:
        if exc.errno is not None:
            raise
        waited = cparams.get("timeout", 60)  # asyncpg's default
        raise TimeoutError(
            errno.ETIMEDOUT, f"PostgreSQL did not accept a connection within {waited:g} s"
        ) from exc


class _TaskReentrantLock:
    """A lock that the task holding it may take again (nested units of work in one task)."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None
        self._depth = 0

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        if self._owner is not task:
            await self._lock.acquire()
            self._owner = task
        self._depth += 1

    async def __aexit__(self, *_: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
            self._lock.release()


# How many of a process's pooled connections `Database.driver` keeps checked out and lends.
LENT_CONNECTIONS = 4


class _Lender:
    """A few of the engine's connections, kept checked out while in use and lent to one
    borrower at a time.

    Borrowing is a semaphore and a list: no session, no pool checkout and return, no greenlet
    hop (0.05 against 0.24 ms of CPU a borrowing, on the recommender's list route). The
    connections count against the engine's pool like any checked out, and stay lent: each has
    prepared the statements its borrowers run, which another connection of the pool would
    prepare again (giving idle ones back to the pool, the recommender's lists took up to 87 ms
    for a tenth of a second after every quiet spell of a few seconds). One left idle
    PING_AFTER_IDLE_SECONDS is pinged, with PING_TIMEOUT_SECONDS to answer, before it is lent
    again. One that fails the ping, comes back closed, or still in a transaction it cannot roll
    back, or whose borrower was cancelled or timed out (perhaps mid-statement), is discarded:
    the pool replaces it.
    """

    def __init__(self, engine: AsyncEngine, size: int, wait_seconds: float) -> None:
        self._engine = engine
        self._wait_seconds = wait_seconds
        self._slots = asyncio.Semaphore(size)
        # The most recently returned is lent first.
        self._idle: list[tuple[AsyncConnection, asyncpg.Connection, float]] = []

    @asynccontextmanager
    async def lend(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            async with asyncio.timeout(self._wait_seconds):
                await self._slots.acquire()
        except TimeoutError:
            raise PoolTimeout(
                f"no lent connection came free within {self._wait_seconds:g} s"
            ) from None
        try:
            connection, driver = await self._take()
            try:
                yield driver
            except (asyncio.CancelledError, TimeoutError, asyncpg.InterfaceError):
                # Stopped mid-statement: the driver may still be busy with it.
                await _discard(connection)
                raise
            except BaseException:
                await self._give_back(connection, driver)
                raise
            else:
                await self._give_back(connection, driver)
        finally:
            self._slots.release()

    async def _take(self) -> tuple[AsyncConnection, asyncpg.Connection]:
        while self._idle:
            connection, driver, returned_at = self._idle.pop()
            if time.monotonic() - returned_at < PING_AFTER_IDLE_SECONDS:
                return connection, driver
            try:
                await driver.fetchval(
                    "SELECT 1", timeout=min(PING_TIMEOUT_SECONDS, self._wait_seconds)
                )
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
                await _discard(connection)  # gone while idle: the pool replaces it
                continue
            return connection, driver
        connection = await self._engine.connect()
        try:
            raw = await connection.get_raw_connection()
        except BaseException:
            await connection.close()
            raise
        driver = raw.driver_connection
        assert isinstance(driver, asyncpg.Connection)
        return connection, driver

    async def _give_back(self, connection: AsyncConnection, driver: asyncpg.Connection) -> None:
        if not driver.is_closed() and driver.is_in_transaction():
            try:
                await driver.execute("ROLLBACK")
            except Exception:
                await _discard(connection)
                return
        if driver.is_closed():
            await _discard(connection)
            return
        self._idle.append((connection, driver, time.monotonic()))

    @property
    def idle(self) -> int:
        """Connections kept checked out between borrowings."""
        return len(self._idle)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection, _, _ in idle:
            await connection.close()


async def _discard(connection: AsyncConnection) -> None:
    """Gives a broken connection back to the pool as unusable: the pool closes it."""
    try:
        await connection.invalidate()
    finally:
        await connection.close()


class Database:
    """The engine and session factory of one process."""

    _turns: _TaskReentrantLock | None = None
    _bound: AsyncConnection | None = None

    def __init__(self, url: str, **engine_options: Any) -> None:
        self.url = url
        self.engine = create_engine(url, **engine_options)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        self.reading_sessionmaker = async_sessionmaker(
            self.engine.execution_options(isolation_level="AUTOCOMMIT"),
            expire_on_commit=False,
            sync_session_class=ReadOnlySession,
        )
        self._lender = _Lender(
            self.engine,
            # A quarter of the pool at most, so that sessions always find connections.
            max(1, min(LENT_CONNECTIONS, engine_options.get("pool_size", POOL_SIZE) // 4)),
            engine_options.get("pool_timeout", 30.0),
        )

    @classmethod
    def bound_to(cls, connection: AsyncConnection) -> Database:
        """Sessions that share one connection's open transaction; a commit releases a savepoint.

        Tests use this to run every request and job inside a transaction rolled back at the end.
        """
        database = cls.__new__(cls)
        database.url = connection.engine.url.render_as_string(hide_password=False)
        database.engine = connection.engine
        database.sessionmaker = async_sessionmaker(
            bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        # Inside the test's transaction too (a savepoint), but refusing writes all the same.
        database.reading_sessionmaker = async_sessionmaker(
            bind=connection,
            expire_on_commit=False,
            join_transaction_mode="create_savepoint",
            sync_session_class=ReadOnlySession,
        )
        # One connection cannot run two statements at once: units of work started concurrently
        # (the gateway's parallel in-process calls) take turns; a nested one in the same task,
        # such as an in-process call made while a request holds its session, goes straight in.
        database._turns = _TaskReentrantLock()
        database._bound = connection
        return database

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[AsyncSession]:
        """One session, one transaction: committed on success, rolled back on error."""
        async with self._session(self.sessionmaker) as session:
            yield session

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A session that only reads, its statements each run on its own: no BEGIN before the
        first, no COMMIT after the last, two round trips of the three that a one-statement read
        costs in a transaction. What it reads is what a transaction would have read: at READ
        COMMITTED, PostgreSQL's level here, each statement sees its own snapshot in one too.
        It refuses writes (`ReadOnlySession`), and takes no lock worth having (each is released
        when its statement ends)."""
        async with self._session(self.reading_sessionmaker) as session:
            yield session

    @property
    def idle_lent_connections(self) -> int:
        """The pool's connections `driver` keeps checked out while none is borrowed: they count
        as checked out in the pool's figures without being in use (see `_Lender`)."""
        return self._lender.idle

    @asynccontextmanager
    async def driver(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection of the driver's (asyncpg), outside any transaction, for a request whose
        statements each stand alone and run on the driver, many times a second: the
        recommender's lists. It costs a fifth of a session's CPU (see `_Lender`). Whatever
        needs a transaction, or SQLAlchemy, takes a `unit_of_work` instead.

        Bound to a test's connection, it is that connection, in the test's transaction, taking
        turns with the units of work as they do.
        """
        if self._bound is not None and self._turns is not None:
            async with self._turns:
                raw = await self._bound.get_raw_connection()
                driver = raw.driver_connection
                assert isinstance(driver, asyncpg.Connection)
                yield driver
            return
        async with self._lender.lend() as driver:
            yield driver

    @asynccontextmanager
    async def _session(
        self, maker: async_sessionmaker[AsyncSession]
    ) -> AsyncIterator[AsyncSession]:
        turns = self._turns if self._turns is not None else nullcontext()
        async with turns, maker() as session:
            try:
                yield session
            except BaseException:
                await session.rollback()
                raise
            await session.commit()

    async def dispose(self) -> None:
        if self._bound is None:
            await self._lender.close()
        await self.engine.dispose()


async def get_database(request: Request) -> Database:
    # Async on purpose: FastAPI runs a plain `def` dependency in its thread pool, a hop that
    # cost every request about half a millisecond of CPU.
    database: Database = request.app.state.database
    return database


# The process's Database, for a route that takes its connections itself (`Database.driver`).
DatabaseDep = Annotated[Database, Depends(get_database)]


async def get_session(request: Request, database: DatabaseDep) -> AsyncIterator[AsyncSession]:
    """The request's session: a GET request's reads (`Database.reading`), any other's is one
    transaction, committed here before the response is sent."""
    reads = request.method in _READING_METHODS
    async with database.reading() if reads else database.unit_of_work() as session:
        serving = _REQUEST_SESSION.set(session)
        try:
            yield session
        finally:
            _REQUEST_SESSION.reset(serving)


# scope="function" runs the commit before the response goes out: a failed commit is never a 200.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
