"""All SQL of the recommender's intake: set-based writes of what a batch of events leaves.

Every write takes many rows and is one statement (`unnest` of one array per column), so a batch
of a thousand events costs a handful of round trips. Rows are written in key order: two
consumers upserting overlapping sets of rows then lock them in the same order and cannot
deadlock.

Members' rows double as the erasure lock. The interactions consumer claims its members first
(`claim_members`, which locks their rows and skips the erased); the members consumer locks its
members first too (`lock_members`) and, for an erasure, marks the row before it deletes
(`erase`): an interaction is either seen and deleted by the erasure, or never written.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Column,
    Select,
    Subquery,
    Table,
    Text,
    and_,
    delete,
    false,
    func,
    select,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession

from recommender.store.models import (
    Exposure,
    Interaction,
    InteractionKind,
    Item,
    ItemKind,
    ItemStats,
    MemberFacts,
    Recommendation,
    Session,
)
from services.kernel.db import copy_records, unnest_rows

# The models' tables, for Core statements; a declarative model's `__table__` is always a Table.
_ITEMS = cast(Table, Item.__table__)
_SESSIONS = cast(Table, Session.__table__)
_INTERACTIONS = cast(Table, Interaction.__table__)
_STATS = cast(Table, ItemStats.__table__)
_MEMBERS = cast(Table, MemberFacts.__table__)


# --- Rows -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InteractionRow:
    brand_id: uuid.UUID
    member_id: uuid.UUID
    item_id: str
    kind: InteractionKind
    weight: float
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class MemberSeen:
    """A member something new happened to: the row is created if missing (joined then), and
    marked for the next fold-in unless it already is."""

    brand_id: uuid.UUID
    member_id: uuid.UUID
    joined_at: datetime  # written only on a row this creates
    stale_since: datetime


@dataclass(frozen=True, slots=True)
class StatsDelta:
    brand_id: uuid.UUID
    item_id: str
    interactions: int


@dataclass(frozen=True, slots=True)
class ProductRow:
    """A product as a purchase line names it; its category is kept when a line has none."""

    brand_id: uuid.UUID
    item_id: str
    sku: str
    category: str | None
    created_at: datetime  # written only on a row this creates


@dataclass(frozen=True, slots=True)
class ItemRow:
    """An item as its last catalog event describes it: every column, `created_at` kept on an
    existing row."""

    brand_id: uuid.UUID
    item_id: str
    kind: ItemKind
    title: str
    content: str
    category: str | None
    tags: list[str]
    cost_points: int | None
    tier_ids: list[uuid.UUID]
    valid_from: datetime | None
    valid_until: datetime | None
    stock: int | None
    per_member_limit: int | None
    author_id: uuid.UUID | None
    active: bool
    seen_at: datetime  # the event's time: `created_at` on a new row, `updated_at` always


@dataclass(frozen=True, slots=True)
class ItemChange:
    """A move of an existing item: stock (ignored where unlimited) and being withdrawn."""

    brand_id: uuid.UUID
    item_id: str
    stock_delta: int
    deactivate: bool


@dataclass(frozen=True, slots=True)
class SessionRow:
    """A session as its last scheduling event describes it, and the seats booked since."""

    session_id: uuid.UUID
    brand_id: uuid.UUID
    item_id: str
    starts_at: datetime
    capacity: int | None
    cancelled: bool
    booked_delta: int  # added to `booked` (the whole of it on a new row)


@dataclass(frozen=True, slots=True)
class SeatsDelta:
    session_id: uuid.UUID
    brand_id: uuid.UUID
    booked_delta: int


@dataclass(frozen=True, slots=True)
class MemberRow:
    """A member's row as created if missing: `joined_at` is written only then (or by a
    `member.created`)."""

    brand_id: uuid.UUID
    member_id: uuid.UUID
    joined_at: datetime


@dataclass(frozen=True, slots=True)
class MemberInterests(MemberRow):
    interests: list[str]


@dataclass(frozen=True, slots=True)
class MemberConsent(MemberRow):
    personalised: bool


@dataclass(frozen=True, slots=True)
class MemberTier(MemberRow):
    tier_id: uuid.UUID | None
    tier_name: str | None


@dataclass(frozen=True, slots=True)
class MemberPoints(MemberRow):
    points_available: int


# --- Array columns through unnest ----------------------------------------------------------------


def _array_literal(values: Sequence[object]) -> str:
    """PostgreSQL's text form of a one-dimensional array, every element quoted."""
    quoted = ('"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"' for value in values)
    return "{" + ",".join(quoted) + "}"


def _source(columns: Sequence[Column[Any]], rows: Sequence[Sequence[Any]]) -> Select[Any]:
    """`unnest_rows`, with array columns sent as their text form and cast back: an array of
    arrays would be one two-dimensional array, which `unnest` flattens element by element."""
    arrays = [isinstance(c.type, ARRAY) for c in columns]
    sent = [
        Column(c.name, Text) if is_array else c for c, is_array in zip(columns, arrays, strict=True)
    ]
    encoded = [
        [_array_literal(v) if is_array else v for v, is_array in zip(row, arrays, strict=True)]
        for row in rows
    ]
    relation = unnest_rows(sent, encoded).subquery()
    return select(
        *(
            sql_cast(relation.c[c.name], c.type).label(c.name) if is_array else relation.c[c.name]
            for c, is_array in zip(columns, arrays, strict=True)
        )
    )


class IntakeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- Interactions -----------------------------------------------------------------------

    async def claim_members(self, seen: Sequence[MemberSeen]) -> set[uuid.UUID]:
        """Create missing members, mark each for the next fold-in (keeping an earlier mark), and
        return the ids of those not erased: only their interactions may be written. The rows
        stay locked until commit, so an erasure of one of them waits for this transaction.

        At most one row per member. A member already marked is locked, not rewritten (the
        upsert locks every row it meets, updated or not): most are, between two fold-ins.
        """
        if not seen:
            return set()
        columns = [
            _MEMBERS.c.member_id,
            _MEMBERS.c.brand_id,
            _MEMBERS.c.joined_at,
            _MEMBERS.c.stale_since,
        ]
        ordered = sorted(seen, key=lambda s: s.member_id)
        rows = [(s.member_id, s.brand_id, s.joined_at, s.stale_since) for s in ordered]
        statement = insert(_MEMBERS).from_select(columns, unnest_rows(columns, rows))
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[_MEMBERS.c.member_id],
                set_={"stale_since": statement.excluded.stale_since},
                where=and_(
                    _MEMBERS.c.brand_id == statement.excluded.brand_id,
                    _MEMBERS.c.erased.is_(False),
                    _MEMBERS.c.stale_since.is_(None),
                ),
            )
        )
        keys = _member_keys([(s.brand_id, s.member_id) for s in ordered])
        live = await self.session.scalars(
            select(_MEMBERS.c.member_id).where(
                _MEMBERS.c.brand_id == keys.c.brand_id,
                _MEMBERS.c.member_id == keys.c.member_id,
                _MEMBERS.c.erased.is_(False),
            )
        )
        return set(live)

    async def add_interactions(self, interactions: Sequence[InteractionRow]) -> None:
        """Append the rows with COPY: the one write that grows with every event."""
        await copy_records(
            self.session,
            _INTERACTIONS,
            ["brand_id", "member_id", "item_id", "kind", "weight", "occurred_at"],
            [
                (i.brand_id, i.member_id, i.item_id, i.kind.value, i.weight, i.occurred_at)
                for i in interactions
            ],
        )

    async def bump_stats(self, deltas: Sequence[StatsDelta]) -> None:
        """Add to each item's interaction count (one row per item)."""
        if not deltas:
            return
        columns = [_STATS.c.brand_id, _STATS.c.item_id, _STATS.c.interactions]
        rows = [
            (d.brand_id, d.item_id, d.interactions)
            for d in sorted(deltas, key=lambda d: (d.brand_id, d.item_id))
        ]
        statement = insert(_STATS).from_select(columns, unnest_rows(columns, rows))
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[_STATS.c.brand_id, _STATS.c.item_id],
                set_={"interactions": _STATS.c.interactions + statement.excluded.interactions},
            )
        )

    async def upsert_products(self, products: Sequence[ProductRow]) -> None:
        """Products named by purchase lines (one row per item); a line without a category
        keeps the one known."""
        if not products:
            return
        columns = [
            _ITEMS.c.brand_id,
            _ITEMS.c.item_id,
            _ITEMS.c.kind,
            _ITEMS.c.title,
            _ITEMS.c.content,
            _ITEMS.c.category,
            _ITEMS.c.created_at,
            _ITEMS.c.updated_at,
        ]
        rows = [
            (
                p.brand_id,
                p.item_id,
                ItemKind.PRODUCT,
                p.sku,
                p.category or "",
                p.category,
                p.created_at,
                p.created_at,
            )
            for p in sorted(products, key=lambda p: (p.brand_id, p.item_id))
        ]
        statement = insert(_ITEMS).from_select(columns, unnest_rows(columns, rows))
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[_ITEMS.c.brand_id, _ITEMS.c.item_id],
                set_={
                    "category": _coalesce(statement.excluded.category, _ITEMS.c.category),
                    "content": _coalesce(statement.excluded.category, _ITEMS.c.content),
                },
                # Most lines name a known product in its known category: no write then.
                where=and_(
                    statement.excluded.category.is_not(None),
                    _ITEMS.c.category.is_distinct_from(statement.excluded.category),
                ),
            )
        )

    # --- Catalog --------------------------------------------------------------------------------

    async def upsert_items(self, items: Sequence[ItemRow]) -> None:
        """Write items as their last catalog event describes them (one row per item)."""
        if not items:
            return
        columns = [
            _ITEMS.c.brand_id,
            _ITEMS.c.item_id,
            _ITEMS.c.kind,
            _ITEMS.c.title,
            _ITEMS.c.content,
            _ITEMS.c.category,
            _ITEMS.c.tags,
            _ITEMS.c.cost_points,
            _ITEMS.c.tier_ids,
            _ITEMS.c.valid_from,
            _ITEMS.c.valid_until,
            _ITEMS.c.stock,
            _ITEMS.c.per_member_limit,
            _ITEMS.c.author_id,
            _ITEMS.c.active,
            _ITEMS.c.created_at,
            _ITEMS.c.updated_at,
        ]
        rows = [
            (
                i.brand_id,
                i.item_id,
                i.kind,
                i.title,
                i.content,
                i.category,
                i.tags,
                i.cost_points,
                i.tier_ids,
                i.valid_from,
                i.valid_until,
                i.stock,
                i.per_member_limit,
                i.author_id,
                i.active,
                i.seen_at,
                i.seen_at,
            )
            for i in sorted(items, key=lambda i: (i.brand_id, i.item_id))
        ]
        statement = insert(_ITEMS).from_select(columns, _source(columns, rows))
        kept = {"brand_id", "item_id", "created_at"}
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[_ITEMS.c.brand_id, _ITEMS.c.item_id],
                set_={c.name: statement.excluded[c.name] for c in columns if c.name not in kept},
            )
        )

    async def lock_catalog(
        self, items: Sequence[tuple[uuid.UUID, str]], sessions: Sequence[uuid.UUID]
    ) -> None:
        """Lock the existing items, then sessions, a batch will write, in key order: the
        statements after it then wait only on rows another batch is creating, which every
        batch creates in the same order, so two workers of the group cannot deadlock."""
        if items:
            columns = [_ITEMS.c.brand_id, _ITEMS.c.item_id]
            keys = unnest_rows(columns, sorted(items)).subquery()
            await self.session.execute(
                select(_ITEMS.c.item_id)
                .where(_ITEMS.c.brand_id == keys.c.brand_id, _ITEMS.c.item_id == keys.c.item_id)
                .order_by(_ITEMS.c.brand_id, _ITEMS.c.item_id)
                .with_for_update(of=_ITEMS)
            )
        if sessions:
            ids = unnest_rows([_SESSIONS.c.session_id], [(i,) for i in sorted(sessions)]).subquery()
            await self.session.execute(
                select(_SESSIONS.c.session_id)
                .where(_SESSIONS.c.session_id == ids.c.session_id)
                .order_by(_SESSIONS.c.session_id)
                .with_for_update(of=_SESSIONS)
            )

    async def change_items(self, changes: Sequence[ItemChange]) -> None:
        """Move stock and withdraw items that exist; an unknown item is left unknown (its
        catalog event, when it comes, says all)."""
        if not changes:
            return
        columns = [
            _ITEMS.c.brand_id,
            _ITEMS.c.item_id,
            Column("stock_delta", _ITEMS.c.stock.type),
            Column("deactivate", _ITEMS.c.active.type),
        ]
        rows = [
            (c.brand_id, c.item_id, c.stock_delta, c.deactivate)
            for c in sorted(changes, key=lambda c: (c.brand_id, c.item_id))
        ]
        moves = unnest_rows(columns, rows).subquery()
        await self.session.execute(
            update(_ITEMS)
            .where(
                _ITEMS.c.brand_id == moves.c.brand_id,
                _ITEMS.c.item_id == moves.c.item_id,
            )
            .values(
                # NULL (unlimited) plus anything stays NULL.
                stock=_ITEMS.c.stock + moves.c.stock_delta,
                active=and_(_ITEMS.c.active, moves.c.deactivate.is_(False)),
            )
        )

    async def move_seats(self, deltas: Sequence[SeatsDelta]) -> None:
        """Add booked seats to sessions that exist (one row per session)."""
        if not deltas:
            return
        columns = [
            _SESSIONS.c.session_id,
            _SESSIONS.c.brand_id,
            Column("booked_delta", _SESSIONS.c.booked.type),
        ]
        rows = [
            (d.session_id, d.brand_id, d.booked_delta)
            for d in sorted(deltas, key=lambda d: d.session_id)
        ]
        moves = unnest_rows(columns, rows).subquery()
        await self.session.execute(
            update(_SESSIONS)
            .where(
                _SESSIONS.c.session_id == moves.c.session_id,
                _SESSIONS.c.brand_id == moves.c.brand_id,
            )
            .values(booked=_SESSIONS.c.booked + moves.c.booked_delta)
        )

    async def upsert_sessions(self, sessions: Sequence[SessionRow]) -> None:
        """Write sessions as their last scheduling event describes them, adding the seats
        booked after it (one row per session)."""
        if not sessions:
            return
        columns = [
            _SESSIONS.c.session_id,
            _SESSIONS.c.brand_id,
            _SESSIONS.c.item_id,
            _SESSIONS.c.starts_at,
            _SESSIONS.c.capacity,
            _SESSIONS.c.cancelled,
            _SESSIONS.c.booked,
        ]
        rows = [
            (
                s.session_id,
                s.brand_id,
                s.item_id,
                s.starts_at,
                s.capacity,
                s.cancelled,
                s.booked_delta,
            )
            for s in sorted(sessions, key=lambda s: s.session_id)
        ]
        statement = insert(_SESSIONS).from_select(columns, unnest_rows(columns, rows))
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[_SESSIONS.c.session_id],
                set_={
                    "item_id": statement.excluded.item_id,
                    "starts_at": statement.excluded.starts_at,
                    "capacity": statement.excluded.capacity,
                    "cancelled": statement.excluded.cancelled,
                    "booked": _SESSIONS.c.booked + statement.excluded.booked,
                },
                where=_SESSIONS.c.brand_id == statement.excluded.brand_id,
            )
        )

    # --- Member facts ---------------------------------------------------------------------------

    async def set_interests(self, members: Sequence[MemberInterests], *, fix_joined: bool) -> None:
        """Interests from members events; `fix_joined` (a `member.created`) also rewrites the
        join date."""
        await self._set_facts(
            ["interests"], [(m, (m.interests,)) for m in members], fix_joined=fix_joined
        )

    async def set_personalised(self, members: Sequence[MemberConsent]) -> None:
        await self._set_facts(["personalised"], [(m, (m.personalised,)) for m in members])

    async def set_tiers(self, members: Sequence[MemberTier]) -> None:
        await self._set_facts(
            ["tier_id", "tier_name"], [(m, (m.tier_id, m.tier_name)) for m in members]
        )

    async def set_points(self, members: Sequence[MemberPoints]) -> None:
        await self._set_facts(["points_available"], [(m, (m.points_available,)) for m in members])

    async def _set_facts(
        self,
        names: Sequence[str],
        members: Sequence[tuple[MemberRow, tuple[Any, ...]]],
        *,
        fix_joined: bool = False,
    ) -> None:
        """Set the columns `names` to each member's values (one row per member), creating
        missing rows; an erased member's row never changes."""
        if not members:
            return
        columns = [
            _MEMBERS.c.member_id,
            _MEMBERS.c.brand_id,
            _MEMBERS.c.joined_at,
            *(_MEMBERS.c[name] for name in names),
        ]
        rows = [
            (m.member_id, m.brand_id, m.joined_at, *values)
            for m, values in sorted(members, key=lambda pair: pair[0].member_id)
        ]
        statement = insert(_MEMBERS).from_select(columns, _source(columns, rows))
        set_: dict[str, Any] = {name: statement.excluded[name] for name in names}
        if fix_joined:
            set_["joined_at"] = statement.excluded.joined_at
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[_MEMBERS.c.member_id],
                set_=set_,
                where=and_(
                    _MEMBERS.c.brand_id == statement.excluded.brand_id,
                    _MEMBERS.c.erased.is_(False),
                ),
            )
        )

    async def lock_members(self, members: Sequence[MemberRow]) -> None:
        """Create missing rows and lock every row of the batch, in member order, in one
        statement: the statements after it then wait for nobody, so two consumers writing
        overlapping members (this one and the interactions consumer) cannot deadlock."""
        if not members:
            return
        columns = [_MEMBERS.c.member_id, _MEMBERS.c.brand_id, _MEMBERS.c.joined_at]
        rows = [
            (m.member_id, m.brand_id, m.joined_at)
            for m in sorted(members, key=lambda m: m.member_id)
        ]
        statement = insert(_MEMBERS).from_select(columns, unnest_rows(columns, rows))
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[_MEMBERS.c.member_id],
                # Updates nothing: the upsert locks each row it meets all the same.
                set_={"joined_at": _MEMBERS.c.joined_at},
                where=false(),
            )
        )

    async def mark_stale(self, seen: Sequence[MemberSeen]) -> None:
        """Mark members for the next fold-in (keeping an earlier mark), creating missing rows."""
        await self.claim_members(seen)

    async def erase(self, members: Sequence[MemberRow]) -> None:
        """Forget members: their interactions, exposures and lists go; their row stays, marked
        erased and emptied, so that nothing arriving later brings them back.

        The row is marked first: that waits for any interactions consumer holding it (see the
        module doc), whose rows the deletes below then see.
        """
        if not members:
            return
        columns = [
            _MEMBERS.c.member_id,
            _MEMBERS.c.brand_id,
            _MEMBERS.c.joined_at,
            _MEMBERS.c.erased,
            _MEMBERS.c.personalised,
        ]
        ordered = sorted(members, key=lambda m: m.member_id)
        rows = [(m.member_id, m.brand_id, m.joined_at, True, False) for m in ordered]
        statement = insert(_MEMBERS).from_select(columns, unnest_rows(columns, rows))
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[_MEMBERS.c.member_id],
                set_={
                    "erased": True,
                    "interests": [],
                    "tier_id": None,
                    "tier_name": None,
                    "points_available": 0,
                    "personalised": False,
                    "stale_since": None,
                },
                where=_MEMBERS.c.brand_id == statement.excluded.brand_id,
            )
        )
        for model in (Interaction, Exposure, Recommendation):
            keys = _member_keys([(m.brand_id, m.member_id) for m in ordered])
            await self.session.execute(
                delete(model).where(
                    model.brand_id == keys.c.brand_id, model.member_id == keys.c.member_id
                )
            )


def _member_keys(keys: Sequence[tuple[uuid.UUID, uuid.UUID]]) -> Subquery:
    """(brand_id, member_id) pairs as a relation to join on."""
    return unnest_rows([_MEMBERS.c.brand_id, _MEMBERS.c.member_id], keys).subquery()


def _coalesce(first: Any, second: Any) -> Any:
    return func.coalesce(first, second)
