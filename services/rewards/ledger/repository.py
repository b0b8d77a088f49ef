"""All SQL of the ledger core: accounts (the member projection and cached sums), entries, lots."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    BindParameter,
    DateTime,
    Insert,
    Select,
    Table,
    Text,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.db import STANDS_ALONE, table_of, unnest_rows
from services.kernel.driver_statements import DriverStatement
from services.kernel.pagination import PageRequest, keyset
from services.rewards.models import Account, Bucket, LedgerEntry, Lot, Program


@dataclass(frozen=True, slots=True)
class MemberProfile:
    """What rewards keeps of a member from the members service's events."""

    brand_id: uuid.UUID
    member_id: uuid.UUID
    external_id: str | None
    birthday: date | None
    member_status: str


@dataclass(frozen=True, slots=True)
class Balances:
    available: int
    pending: int


@dataclass(frozen=True, slots=True)
class Drift:
    """An account whose cached sums are not what its entries add up to."""

    brand_id: uuid.UUID
    member_id: uuid.UUID
    cached: Balances
    entries: Balances


@dataclass(frozen=True, slots=True)
class BalanceChange:
    """What one entry adds to an account's cached sums, and the conditions it must meet."""

    available: int
    pending: int
    lifetime: int
    floor: int | None  # `available` may not drop below it (None: no floor)
    touch_activity_at: datetime | None  # moves last_activity_at forward to it (never back)


@dataclass(frozen=True, slots=True)
class ProgramVersion:
    """Which state of a brand's reference data (program, tiers, rules, campaigns) is current.

    Every change to that data updates the program row in the same transaction (`touch_program`),
    which gives the row a new `xmin` (the id of the transaction that wrote it) and `updated_at`:
    a process holding a copy of the data compares this pair to know whether its copy is current.
    `xmin` alone changes with every write; `updated_at` guards against transaction ids wrapping
    around after billions of transactions.
    """

    xid: int
    updated_at: datetime


_PROGRAMS = table_of(Program)
_ACCOUNTS = table_of(Account)
_ENTRIES = table_of(LedgerEntry)
_LOTS = table_of(Lot)

# `xmin` is a system column: not in the model, read by name.
PROGRAM_XID = cast(cast(literal_column(f"{_PROGRAMS.name}.xmin"), Text), BigInteger)

# Built once (bind parameters, not literal values): SQLAlchemy reuses their compiled form.
_available = bindparam("by_available", type_=BigInteger)
_pending = bindparam("by_pending", type_=BigInteger)
_floor = bindparam("by_floor", type_=BigInteger)
_touch_at = bindparam("by_touch_at", type_=DateTime(timezone=True))
_MOVE_BALANCES = (
    update(_ACCOUNTS)
    .where(
        _ACCOUNTS.c.member_id == bindparam("by_member_id", type_=_ACCOUNTS.c.member_id.type),
        _ACCOUNTS.c.pending + _pending >= 0,
        # No floor (NULL), or `available` stays at or above it.
        _floor.is_(None) | (_ACCOUNTS.c.available + _available >= _floor),
    )
    .values(
        available=_ACCOUNTS.c.available + _available,
        pending=_ACCOUNTS.c.pending + _pending,
        lifetime_earned=_ACCOUNTS.c.lifetime_earned + bindparam("by_lifetime", type_=BigInteger),
        # Never backwards: an event delivered late must not make a member look inactive.
        last_activity_at=case(
            (_touch_at.is_(None), _ACCOUNTS.c.last_activity_at),
            else_=func.greatest(_ACCOUNTS.c.last_activity_at, _touch_at),
        ),
    )
    .returning(_ACCOUNTS.c.available, _ACCOUNTS.c.pending)
)


def _bound(table: Table, prefix: str) -> dict[str, BindParameter[Any]]:
    return {column.key: bindparam(f"{prefix}{column.key}", type_=column.type) for column in table.c}


_ENTRY_COLUMNS = [c.key for c in _ENTRIES.c if c.key != "created_at"]
_LOT_COLUMNS = [c.key for c in _LOTS.c if c.key not in ("created_at", "reminded_at")]


def _append_statement(with_lot: bool) -> Insert:
    """The entry, and its lot when there is one, in one statement (one round trip).

    The lot's foreign key to the entry is checked at the end of the statement, when both rows
    exist.
    """
    entry_values = {k: v for k, v in _bound(_ENTRIES, "entry_").items() if k in _ENTRY_COLUMNS}
    entry = insert(_ENTRIES).values(entry_values)
    if not with_lot:
        return entry
    lot_values = {k: v for k, v in _bound(_LOTS, "lot_").items() if k in _LOT_COLUMNS}
    return insert(_LOTS).values(lot_values).add_cte(entry.cte("entry"))


_APPEND = {False: _append_statement(False), True: _append_statement(True)}


def _move_and_append_statement(with_lot: bool) -> Select[tuple[int, int]]:
    """`_MOVE_BALANCES` and the appends of `_append_statement` in one statement: the rows are
    inserted only when the balances moved (the UPDATE matched)."""
    moved = _MOVE_BALANCES.cte("moved")

    def from_moved(table: Table, prefix: str, columns: list[str]) -> Insert:
        values = _bound(table, prefix)
        return insert(table).from_select(
            columns, select(*(values[c] for c in columns)).select_from(moved)
        )

    statement = select(moved.c.available, moved.c.pending).add_cte(
        from_moved(_ENTRIES, "entry_", _ENTRY_COLUMNS).cte("entry")
    )
    if with_lot:
        statement = statement.add_cte(from_moved(_LOTS, "lot_", _LOT_COLUMNS).cte("lot"))
    return statement


# Run by the driver: every earning and spending of points runs one.
_MOVE_AND_APPEND = {
    False: DriverStatement(_move_and_append_statement(False)),
    True: DriverStatement(_move_and_append_statement(True)),
}


def _move_parameters(member_id: uuid.UUID, change: BalanceChange) -> dict[str, object]:
    return {
        "by_member_id": member_id,
        "by_available": change.available,
        "by_pending": change.pending,
        "by_lifetime": change.lifetime,
        "by_floor": change.floor,
        "by_touch_at": change.touch_activity_at,
    }


def _append_parameters(entry: LedgerEntry, lot: Lot | None) -> dict[str, object]:
    parameters = {f"entry_{key}": getattr(entry, key) for key in _ENTRY_COLUMNS}
    if lot is not None:
        parameters.update({f"lot_{key}": getattr(lot, key) for key in _LOT_COLUMNS})
    return parameters


class LedgerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- program ---

    async def program(self, brand_id: uuid.UUID) -> Program | None:
        return await self.session.get(Program, brand_id)

    async def program_snapshot(self, brand_id: uuid.UUID) -> tuple[Program, ProgramVersion] | None:
        """The program as a detached copy (safe to share between requests), with its version."""
        row = (
            await self.session.execute(
                select(_PROGRAMS, PROGRAM_XID.label("xid")).where(_PROGRAMS.c.brand_id == brand_id)
            )
        ).one_or_none()
        if row is None:
            return None
        values = row._asdict()
        version = ProgramVersion(values.pop("xid"), values["updated_at"])
        return Program(**values), version

    async def program_version(self, brand_id: uuid.UUID) -> ProgramVersion | None:
        row = (
            await self.session.execute(
                select(PROGRAM_XID, _PROGRAMS.c.updated_at).where(_PROGRAMS.c.brand_id == brand_id)
            )
        ).one_or_none()
        return None if row is None else ProgramVersion(row[0], row[1])

    async def touch_program(self, brand_id: uuid.UUID) -> Program | None:
        """Marks the brand's reference data changed (see `ProgramVersion`), in this transaction.

        Also locks the program row until the transaction ends, so changes of one brand's
        reference data run one at a time. None when the brand has no program.
        """
        statement = (
            update(Program)
            .where(Program.brand_id == brand_id)
            .values(updated_at=func.now())
            .returning(Program)
            .execution_options(populate_existing=True)
        )
        return (await self.session.scalars(statement)).one_or_none()

    async def save_program(self, brand_id: uuid.UUID, settings: dict[str, object]) -> Program:
        statement = insert(Program).values(brand_id=brand_id, **settings)
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[Program.brand_id],
                set_={**settings, "updated_at": func.now()},
            )
        )
        program = await self.session.get(Program, brand_id, populate_existing=True)
        assert program is not None
        return program

    # --- accounts ---

    async def account(self, brand_id: uuid.UUID, member_id: uuid.UUID) -> Account | None:
        account = await self.session.get(Account, member_id)
        return account if account is not None and account.brand_id == brand_id else None

    async def current_account(self, member_id: uuid.UUID) -> Account | None:
        """The account as the database has it now (a copy in the session is refreshed)."""
        return await self.session.get(Account, member_id, populate_existing=True)

    async def account_by_external_id(self, brand_id: uuid.UUID, external_id: str) -> Account | None:
        result = await self.session.scalars(
            select(Account).where(Account.brand_id == brand_id, Account.external_id == external_id)
        )
        return result.one_or_none()

    async def lock_account(self, brand_id: uuid.UUID, member_id: uuid.UUID) -> Account | None:
        """The account row, locked until the transaction ends: serialises one member's writes."""
        result = await self.session.scalars(
            select(Account)
            .where(Account.member_id == member_id, Account.brand_id == brand_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return result.one_or_none()

    async def upsert_account(
        self,
        *,
        brand_id: uuid.UUID,
        member_id: uuid.UUID,
        external_id: str | None,
        birthday: date | None,
        member_status: str,
    ) -> None:
        await self.upsert_accounts(
            [MemberProfile(brand_id, member_id, external_id, birthday, member_status)]
        )

    async def upsert_accounts(self, profiles: Sequence[MemberProfile]) -> None:
        """Insert or refresh members' accounts from members events, in one statement.

        At most one profile per member: a statement cannot update a row twice. An event of
        another brand naming the same member id changes nothing (the `where`).
        """
        if not profiles:
            return
        statement = _insert_accounts(profiles)
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[_ACCOUNTS.c.member_id],
                set_={
                    "external_id": statement.excluded.external_id,
                    "birthday": statement.excluded.birthday,
                    "member_status": statement.excluded.member_status,
                },
                where=_ACCOUNTS.c.brand_id == statement.excluded.brand_id,
            )
        )

    async def add_missing_accounts(self, profiles: Sequence[MemberProfile]) -> None:
        """Open accounts for members that have none, leaving any account already there (the
        projection's, or one a concurrent request opened) as it is."""
        if profiles:
            await self.session.execute(
                _insert_accounts(profiles).on_conflict_do_nothing(), execution_options=STANDS_ALONE
            )

    async def move_balances(self, member_id: uuid.UUID, change: BalanceChange) -> Balances | None:
        """Adds to the cached sums in one statement; None when `available` would drop below the
        change's floor.

        The condition and the change are one UPDATE, so concurrent redemptions can never take a
        balance below zero, whatever their interleaving.
        """
        parameters = _move_parameters(member_id, change)
        row = (await self.session.execute(_MOVE_BALANCES, parameters)).one_or_none()
        return None if row is None else Balances(row.available, row.pending)

    async def move_and_append(
        self, member_id: uuid.UUID, change: BalanceChange, entry: LedgerEntry, lot: Lot | None
    ) -> Balances | None:
        """`move_balances` and `append` in one round trip, for a caller that knows the entry
        and lot before the balances move (it holds the account lock); nothing is written when
        the balances cannot move (None)."""
        parameters = _move_parameters(member_id, change)
        parameters.update(_append_parameters(entry, lot))
        row = await _MOVE_AND_APPEND[lot is not None].fetch_one(self.session, parameters)
        return None if row is None else Balances(row.available, row.pending)

    # --- entries and lots ---

    async def append(self, entry: LedgerEntry, lot: Lot | None = None) -> None:
        """Appends the entry (and the lot it opens, if any) in one Core statement: the ORM's
        unit of work costs more CPU than the rows on this hot path, and nothing reads them back
        through the session."""
        await self.session.execute(_APPEND[lot is not None], _append_parameters(entry, lot))

    async def take_from_lots(
        self, member_id: uuid.UUID, points: int, first: Sequence[uuid.UUID] = ()
    ) -> int:
        """Spends `points` from open lots, oldest first; returns how many were found in lots.

        Lots named in `first` are taken before any other (expiry empties exactly the lots that
        are due, even when an older lot expires later). The rows are locked in (earned_at, id)
        order either way, the order every writer uses, so two writers never deadlock on lots.
        """
        lots = (
            await self.session.execute(
                select(Lot.id, Lot.remaining)
                .where(Lot.member_id == member_id, Lot.remaining > 0)
                .order_by(Lot.earned_at, Lot.id)
                .with_for_update()
            )
        ).all()
        if first:
            preferred = set(first)
            lots = sorted(lots, key=lambda lot: lot.id not in preferred)  # stable: FIFO otherwise
        left = points
        for lot in lots:
            if left == 0:
                break
            taken = min(left, lot.remaining)
            await self.session.execute(
                update(Lot)
                .where(Lot.id == lot.id)
                .values(remaining=Lot.remaining - taken)
                .execution_options(synchronize_session=False)
            )
            left -= taken
        return points - left

    async def entries(
        self, brand_id: uuid.UUID, member_id: uuid.UUID, page: PageRequest
    ) -> Sequence[LedgerEntry]:
        statement = select(LedgerEntry).where(
            LedgerEntry.brand_id == brand_id, LedgerEntry.member_id == member_id
        )
        result = await self.session.scalars(
            keyset(statement, LedgerEntry.id, page, newest_first=True)
        )
        return result.all()

    async def drifted_accounts(
        self,
        brand_id: uuid.UUID | None = None,
        *,
        member_ids: Sequence[uuid.UUID] | None = None,
        limit: int | None = None,
    ) -> list[Drift]:
        """Accounts (of one brand, or of all; of these members, or of all) whose cached sums
        differ from their entries', by brand and member; one pass over the entries, grouped by
        member. This is the ledger's invariant: it must always be empty."""
        sums = select(
            LedgerEntry.member_id,
            func.sum(LedgerEntry.points)
            .filter(LedgerEntry.bucket == Bucket.AVAILABLE)
            .label("available"),
            func.sum(LedgerEntry.points)
            .filter(LedgerEntry.bucket == Bucket.PENDING)
            .label("pending"),
        ).group_by(LedgerEntry.member_id)
        if brand_id is not None:
            sums = sums.where(LedgerEntry.brand_id == brand_id)
        if member_ids is not None:
            sums = sums.where(LedgerEntry.member_id.in_(member_ids))
        entries = sums.subquery()
        available = func.coalesce(entries.c.available, 0)
        pending = func.coalesce(entries.c.pending, 0)
        query = (
            select(
                Account.brand_id,
                Account.member_id,
                Account.available,
                Account.pending,
                available,
                pending,
            )
            .outerjoin(entries, entries.c.member_id == Account.member_id)
            .where((Account.available != available) | (Account.pending != pending))
            .order_by(Account.brand_id, Account.member_id)
            .limit(limit)
        )
        if brand_id is not None:
            query = query.where(Account.brand_id == brand_id)
        if member_ids is not None:
            query = query.where(Account.member_id.in_(member_ids))
        return [
            Drift(row[0], row[1], Balances(row[2], row[3]), Balances(int(row[4]), int(row[5])))
            for row in await self.session.execute(query)
        ]


def _insert_accounts(profiles: Sequence[MemberProfile]) -> PgInsert:
    columns = [
        _ACCOUNTS.c.member_id,
        _ACCOUNTS.c.brand_id,
        _ACCOUNTS.c.external_id,
        _ACCOUNTS.c.birthday,
        _ACCOUNTS.c.member_status,
    ]
    rows = [(p.member_id, p.brand_id, p.external_id, p.birthday, p.member_status) for p in profiles]
    return insert(_ACCOUNTS).from_select(columns, unnest_rows(columns, rows))
