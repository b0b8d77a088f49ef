"""All SQL of the members service. Every query that reads a brand's data filters by brand."""

from __future__ import annotations

import uuid
from collections.abc import Sequence, Set
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import orjson
from sqlalchemy import (
    Column,
    Date,
    Integer,
    MetaData,
    Table,
    Text,
    any_,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.schema import CreateTable

from services.kernel.db import copy_records, table_of
from services.kernel.pagination import PageRequest, keyset
from services.members.models import (
    IDEMPOTENCY,
    OUTBOX,
    ApiKey,
    Brand,
    Consent,
    ConsentChange,
    ConsentPurpose,
    Member,
    MemberStatus,
)


class BrandRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, brand: Brand) -> None:
        self.session.add(brand)
        # Flushed at once: API keys and members reference the brand row.
        await self.session.flush()

    async def get(self, brand_id: uuid.UUID) -> Brand | None:
        return await self.session.get(Brand, brand_id)

    async def named(self, name: str) -> Sequence[Brand]:
        statement = select(Brand).where(Brand.name == name).order_by(Brand.created_at)
        return (await self.session.scalars(statement)).all()


@dataclass(frozen=True, slots=True)
class MemberFilters:
    external_id: str | None = None
    status: MemberStatus | None = None
    email: str | None = None


class MemberRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert(self, values: dict[str, Any]) -> Member | None:
        """The new member, or None when the brand already has one with this external id."""
        statement = (
            pg_insert(Member)
            .values(values)
            .on_conflict_do_nothing(index_elements=[Member.brand_id, Member.external_id])
            .returning(Member)
        )
        return (await self.session.scalars(statement)).one_or_none()

    async def get(
        self, brand_id: uuid.UUID, member_id: uuid.UUID, *, for_update: bool = False
    ) -> Member | None:
        statement = select(Member).where(Member.brand_id == brand_id, Member.id == member_id)
        if for_update:
            # Read-modify-write (trait merges, consents, status) is serialised per member, and
            # the locked row's current values replace any copy already in the session.
            statement = statement.with_for_update().execution_options(populate_existing=True)
        return (await self.session.scalars(statement)).one_or_none()

    async def erased_among(self, member_ids: Set[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these ids are erased members' (of any brand: ids are unique across brands)."""
        if not member_ids:
            return set()
        statement = select(Member.id).where(
            Member.id.in_(list(member_ids)), Member.erased_at.is_not(None)
        )
        return set(await self.session.scalars(statement))

    async def get_by_external_id(self, brand_id: uuid.UUID, external_id: str) -> Member | None:
        statement = select(Member).where(
            Member.brand_id == brand_id, Member.external_id == external_id
        )
        return (await self.session.scalars(statement)).one_or_none()

    async def ids_by_external_id(
        self, brand_id: uuid.UUID, external_ids: Sequence[str]
    ) -> dict[str, uuid.UUID]:
        statement = select(Member.external_id, Member.id).where(
            Member.brand_id == brand_id,
            Member.external_id == any_(literal(list(external_ids), ARRAY(Text))),
        )
        rows = await self.session.execute(statement)
        return {external_id: id_ for external_id, id_ in rows if external_id is not None}

    async def any_in_brand(self, brand_id: uuid.UUID) -> bool:
        return bool(await self.session.scalar(select(exists().where(Member.brand_id == brand_id))))

    async def page(
        self, brand_id: uuid.UUID, filters: MemberFilters, page: PageRequest
    ) -> Sequence[Member]:
        statement = select(Member).where(Member.brand_id == brand_id)
        if filters.external_id is not None:
            statement = statement.where(Member.external_id == filters.external_id)
        if filters.status is not None:
            statement = statement.where(Member.status == filters.status)
        if filters.email is not None:
            statement = statement.where(Member.email == filters.email)
        return (await self.session.scalars(keyset(statement, Member.id, page))).all()


class ConsentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def current(self, brand_id: uuid.UUID, member_id: uuid.UUID) -> Sequence[Consent]:
        statement = (
            select(Consent)
            .where(Consent.brand_id == brand_id, Consent.member_id == member_id)
            .order_by(Consent.purpose)
        )
        return (await self.session.scalars(statement)).all()

    async def get(
        self, brand_id: uuid.UUID, member_id: uuid.UUID, purpose: ConsentPurpose
    ) -> Consent | None:
        statement = select(Consent).where(
            Consent.brand_id == brand_id,
            Consent.member_id == member_id,
            Consent.purpose == purpose,
        )
        return (await self.session.scalars(statement)).one_or_none()

    def add(self, consent: Consent) -> None:
        self.session.add(consent)

    def record(self, change: ConsentChange) -> None:
        self.session.add(change)

    async def history(self, brand_id: uuid.UUID, member_id: uuid.UUID) -> Sequence[ConsentChange]:
        statement = (
            select(ConsentChange)
            .where(ConsentChange.brand_id == brand_id, ConsentChange.member_id == member_id)
            .order_by(ConsentChange.id)
        )
        return (await self.session.scalars(statement)).all()

    async def scrub_history(self, brand_id: uuid.UUID, member_id: uuid.UUID) -> None:
        await self.session.execute(
            update(ConsentChange)
            .where(ConsentChange.brand_id == brand_id, ConsentChange.member_id == member_id)
            .values(source=None)
            .execution_options(synchronize_session=False)
        )


class ErasureRepository:
    """The copies of a member's personal data kept besides the member row: the service's own
    outbox (published rows stay a week as a replay source; unpublished ones are yet to go out)
    and the stored answers of idempotent creates, which a replay would hand out again."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def scrub_events(
        self, brand_id: uuid.UUID, member_id: uuid.UUID, fields: dict[str, Any], types: list[str]
    ) -> None:
        """Overwrite `fields` in the `data` of the member's events of `types`, everything else
        (ids, times, status, the names of what changed) as it was."""
        table = OUTBOX.table
        await self.session.execute(
            update(table)
            .where(
                table.c.brand_id == brand_id,
                table.c.subject_id == member_id,
                table.c.type == any_(sql_cast(types, ARRAY(Text))),
            )
            .values(
                payload=func.jsonb_set(
                    table.c.payload,
                    sql_cast(["data"], ARRAY(Text)),
                    table.c.payload["data"].op("||")(sql_cast(fields, JSONB)),
                )
            )
        )

    async def replace_responses(self, brand_id: uuid.UUID, prefix: bytes, body: bytes) -> None:
        """Stored answers that start with `prefix` (the member's own JSON: `{"id":"<id>"`)
        become `body`, so a replay of the create answers with the member as they are now."""
        table = IDEMPOTENCY.table
        await self.session.execute(
            update(table)
            .where(
                table.c.brand_id == brand_id,
                func.substring(table.c.response_body, 1, len(prefix)) == prefix,
            )
            .values(response_body=body)
        )


class ApiKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, api_key: ApiKey) -> None:
        self.session.add(api_key)
        await self.session.flush()

    async def get(self, key_id: uuid.UUID) -> ApiKey | None:
        """Any brand's key: verification learns the brand from the key itself."""
        return await self.session.get(ApiKey, key_id)

    async def get_in_brand(
        self, brand_id: uuid.UUID, key_id: uuid.UUID, *, for_update: bool = False
    ) -> ApiKey | None:
        statement = select(ApiKey).where(ApiKey.brand_id == brand_id, ApiKey.id == key_id)
        if for_update:
            statement = statement.with_for_update().execution_options(populate_existing=True)
        return (await self.session.scalars(statement)).one_or_none()

    async def page(self, brand_id: uuid.UUID, page: PageRequest) -> Sequence[ApiKey]:
        statement = select(ApiKey).where(ApiKey.brand_id == brand_id)
        return (await self.session.scalars(keyset(statement, ApiKey.id, page))).all()


# --- Bulk import ----------------------------------------------------------------------------

# Per-transaction scratch tables (dropped at commit): the batch being imported, and every external
# id seen so far in the file, so duplicates across batches are caught without holding them in RAM.
_scratch = MetaData()
_IMPORT_ROWS = Table(
    "member_import_rows",
    _scratch,
    Column("line", Integer, nullable=False),
    Column("id", UUID(as_uuid=True), nullable=False),
    Column("external_id", Text, nullable=False),
    Column("email", Text),
    Column("display_name", Text),
    Column("birthday", Date),
    Column("locale", Text),
    Column("time_zone", Text),
    Column("traits", JSONB, nullable=False),
    Column("interests", ARRAY(Text), nullable=False),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DROP",
)
_IMPORT_SEEN = Table(
    "member_import_seen",
    _scratch,
    Column("external_id", Text, primary_key=True),
    Column("line", Integer, nullable=False),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DROP",
)
_STAGED_COLUMNS = [c.name for c in _IMPORT_ROWS.columns]


@dataclass(frozen=True, slots=True)
class StagedMember:
    """A member on its way in through an import: plain data, far cheaper than an ORM object."""

    id: uuid.UUID
    brand_id: uuid.UUID
    external_id: str
    email: str | None
    display_name: str | None
    birthday: date | None
    locale: str | None
    time_zone: str | None
    traits: dict[str, Any]
    interests: list[str]
    status: MemberStatus
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Duplicate:
    line: int
    first_line: int | None  # the earlier line of the file with this external id, if any


class MemberImportRepository:
    """Stages members with COPY and inserts them in one statement per batch."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def prepare(self) -> None:
        for table in (_IMPORT_ROWS, _IMPORT_SEEN):
            await self.session.execute(CreateTable(table, if_not_exists=True))
            await self.session.execute(delete(table))

    async def stage(self, rows: Sequence[tuple[int, StagedMember]]) -> None:
        """Replaces the staged batch with `rows` (line, member), through PostgreSQL COPY."""
        await self.session.execute(delete(_IMPORT_ROWS))
        records = [
            (
                line,
                m.id,
                m.external_id,
                m.email,
                m.display_name,
                m.birthday,
                m.locale,
                m.time_zone,
                orjson.dumps(m.traits).decode(),
                m.interests,
            )
            for line, m in rows
        ]
        await copy_records(self.session, _IMPORT_ROWS, _STAGED_COLUMNS, records)

    async def drop_duplicates(self, brand_id: uuid.UUID) -> list[Duplicate]:
        """Unstages rows whose external id came earlier in the file or already exists."""
        rows, seen = _IMPORT_ROWS, _IMPORT_SEEN
        dropped = (
            delete(rows)
            .where(
                or_(
                    exists().where(seen.c.external_id == rows.c.external_id),
                    exists().where(
                        Member.brand_id == brand_id, Member.external_id == rows.c.external_id
                    ),
                )
            )
            .returning(rows.c.line, rows.c.external_id)
            .cte("dropped")
        )
        statement = select(dropped.c.line, seen.c.line.label("first_line")).select_from(
            dropped.outerjoin(seen, seen.c.external_id == dropped.c.external_id)
        )
        result = await self.session.execute(statement)
        found = [Duplicate(line=line, first_line=first) for line, first in result]
        await self.session.execute(
            insert(seen).from_select(
                ["external_id", "line"], select(rows.c.external_id, rows.c.line)
            )
        )
        return found

    async def insert_staged(self, brand_id: uuid.UUID, now: datetime) -> set[uuid.UUID]:
        """Creates the staged members; ids of those created (a racing insert may win one)."""
        rows = _IMPORT_ROWS
        table = table_of(Member)
        columns = [
            "id",
            "external_id",
            "email",
            "display_name",
            "birthday",
            "locale",
            "time_zone",
            "traits",
            "interests",
        ]
        source = select(
            *(rows.c[name] for name in columns),
            literal(brand_id, UUID(as_uuid=True)),
            literal(MemberStatus.ACTIVE, table.c.status.type),
            literal(now, table.c.created_at.type),
            literal(now, table.c.updated_at.type),
        )
        statement = (
            pg_insert(table)
            .from_select([*columns, "brand_id", "status", "created_at", "updated_at"], source)
            .on_conflict_do_nothing(index_elements=["brand_id", "external_id"])
            .returning(table.c.id)
        )
        return set((await self.session.scalars(statement)).all())
