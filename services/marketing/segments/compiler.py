"""A checked rule as SQL: SQLAlchemy expressions over the member 360, values always bound.

Every leaf is two-valued (true or false, never unknown), so `not` is the exact complement:
a member with no value for a field fails the field's comparisons, and so passes their `not`
(and `ne`, `not_in`, which mean the same).

Event conditions count the member's journal rows. Each distinct (activity, where, window) is one
aggregate over the journal (member id, count), grouped once and left-joined to the members:
PostgreSQL hashes it, so a million members cost one pass over the journal rows that match,
where a correlated count would probe the journal a million times. A member with no such rows
has count 0. Affinity conditions are resolved to member ids first (the recommender answers
them) and joined the same way, from an array bound as one parameter.
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    FromClause,
    Select,
    and_,
    cast,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from services.marketing.fields import FIELDS, FieldType
from services.marketing.models import (
    ACTIVE_KINDS,
    ActivityKind,
    JournalEntry,
    MemberView,
    SegmentPurpose,
)
from services.marketing.segments.errors import SegmentCycle
from services.marketing.segments.rules import RuleNode, resolve_time
from services.marketing.segments.schemas import (
    ACTIVE,
    AffinityCondition,
    EventCondition,
    FieldCondition,
    Op,
    RuleAnd,
    RuleNot,
    RuleOr,
    SegmentCondition,
)

_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
}


@dataclass(frozen=True)
class Named:
    """A segment another rule names: its checked rule and what its membership requires."""

    rule: RuleNode
    purpose: SegmentPurpose


@dataclass(frozen=True)
class Audience:
    """What the recommender answered for an affinity condition: the members, or None when it
    has no model to rank them with (the condition then matches nobody)."""

    member_ids: list[uuid.UUID] | None
    note: str | None = None


def consent_filter(purpose: SegmentPurpose) -> ColumnElement[bool]:
    """A marketing purpose keeps only members who granted that consent; analytics keeps all."""
    if purpose is SegmentPurpose.ANALYTICS:
        return true()
    return MemberView.consents.contains([purpose.value])


@dataclass
class Compiler:
    brand_id: uuid.UUID
    now: datetime
    named: Mapping[uuid.UUID, Named] = field(default_factory=dict)
    audiences: Mapping[tuple[str, float], Audience] = field(default_factory=dict)
    _joins: dict[str, FromClause] = field(default_factory=dict)
    _inside: list[uuid.UUID] = field(default_factory=list)

    def members(
        self, rule: RuleNode, *, purpose: SegmentPurpose | None = None, columns: Any = None
    ) -> Select[Any]:
        """The brand's members the rule (and, given a purpose, its consent) holds for."""
        condition = self.condition(rule)
        if purpose is not None:
            condition = and_(condition, consent_filter(purpose))
        query: Select[Any] = select(*(columns if columns is not None else (MemberView.member_id,)))
        joined: FromClause = MemberView.__table__
        for alias in self._joins.values():
            joined = joined.outerjoin(alias, alias.c.member_id == MemberView.member_id)
        return query.select_from(joined).where(MemberView.brand_id == self.brand_id, condition)

    def condition(self, rule: RuleNode) -> ColumnElement[bool]:
        if isinstance(rule, RuleAnd):
            return and_(*(self.condition(r) for r in rule.rules))
        if isinstance(rule, RuleOr):
            return or_(*(self.condition(r) for r in rule.rules))
        if isinstance(rule, RuleNot):
            return not_(self.condition(rule.rule))
        if isinstance(rule, FieldCondition):
            return _field(rule, self.now)
        if isinstance(rule, EventCondition):
            return self._event(rule)
        if isinstance(rule, SegmentCondition):
            return self._segment(rule.segment)
        return self._affinity(rule)

    def _segment(self, segment_id: uuid.UUID) -> ColumnElement[bool]:
        named = self.named.get(segment_id)
        if named is None:  # deleted since: checked on save, so only a race gets here
            return false()
        if segment_id in self._inside:  # refused on save; never loop on data that slipped by
            raise SegmentCycle("rule", f"Segment {segment_id} names itself through others.")
        self._inside.append(segment_id)
        try:
            return and_(self.condition(named.rule), consent_filter(named.purpose))
        finally:
            self._inside.pop()

    def _event(self, rule: EventCondition) -> ColumnElement[bool]:
        where = rule.where.model_dump(mode="json", exclude_none=True) if rule.where else None
        key = orjson.dumps([rule.event, where, rule.within_days]).decode()
        counts = self._joins.get(key)
        if counts is None:
            counts = self._counts(rule).subquery(f"events_{len(self._joins)}")
            self._joins[key] = counts
        n = counts.c.n
        compare = _COMPARE[rule.count.op]
        if compare(0, rule.count.value):
            return compare(func.coalesce(n, 0), rule.count.value)  # type: ignore[no-any-return]
        # Zero fails, so a member without rows fails: a plain comparison, kept strict so that
        # at the top of a rule PostgreSQL turns the outer join into an inner one.
        return and_(n.is_not(None), compare(n, rule.count.value))

    def _counts(self, rule: EventCondition) -> Select[uuid.UUID, int]:
        kinds = sorted(ACTIVE_KINDS) if rule.event == ACTIVE else [ActivityKind(rule.event)]
        query = select(JournalEntry.member_id, func.count().label("n")).where(
            JournalEntry.brand_id == self.brand_id, JournalEntry.kind.in_(kinds)
        )
        if rule.within_days is not None:
            query = query.where(
                JournalEntry.occurred_at > self.now - timedelta(days=rule.within_days)
            )
        where = rule.where
        if where is not None:
            if where.category is not None:
                values = _texts(where.category)
                query = query.where(
                    or_(
                        JournalEntry.category.in_(values),
                        JournalEntry.categories.overlap(values),
                    )
                )
            if where.ref is not None:
                query = query.where(JournalEntry.ref.in_(_texts(where.ref)))
            if where.amount_minor is not None:
                compare = _COMPARE[where.amount_minor.op]
                query = query.where(compare(JournalEntry.amount_minor, where.amount_minor.value))
        return query.group_by(JournalEntry.member_id)

    def _affinity(self, rule: AffinityCondition) -> ColumnElement[bool]:
        audience = self.audiences.get((rule.affinity.item, rule.affinity.top_share))
        if audience is None or not audience.member_ids:
            return false()
        key = f"affinity:{rule.affinity.item}:{rule.affinity.top_share}"
        joined = self._joins.get(key)
        if joined is None:
            ids = literal(audience.member_ids, ARRAY(UUID(as_uuid=True)))
            joined = (
                select(func.unnest(ids).label("member_id"))
                .distinct()
                .subquery(f"affinity_{len(self._joins)}")
            )
            self._joins[key] = joined
        return joined.c.member_id.is_not(None)


def _texts(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


# --- Field conditions ---------------------------------------------------------------------


def _field(rule: FieldCondition, now: datetime) -> ColumnElement[bool]:
    found = FIELDS[rule.field]
    if found.type is FieldType.OBJECT:
        assert rule.key is not None
        return _trait(MemberView.__table__.c[rule.field][rule.key], rule.op, rule.value)
    column: ColumnElement[Any] = MemberView.__table__.c[rule.field]
    op, value = rule.op, _python(found.type, rule.value, now)
    if found.type is FieldType.TAGS:
        return _tags(column, op, value)
    if op is Op.IS_NULL:
        return column.is_(None)
    if op is Op.IS_NOT_NULL:
        return column.is_not(None)
    if op is Op.NE:
        return column.is_distinct_from(value)
    if op is Op.NOT_IN:
        return or_(column.is_(None), column.not_in(value))
    if op is Op.EQ:
        test = column == value
    elif op is Op.IN:
        test = column.in_(value)
    elif op is Op.BETWEEN:
        test = column.between(value[0], value[1])
    else:
        test = _COMPARE[op.value](column, value)
    nullable = bool(getattr(column, "nullable", True))
    return and_(column.is_not(None), test) if nullable else test


def _python(kind: FieldType, value: Any, now: datetime) -> Any:
    """A checked value as the column's Python type (a list stays a list)."""
    if isinstance(value, list):
        return [_python(kind, v, now) for v in value]
    if value is None:
        return None
    if kind is FieldType.DATETIME:
        return resolve_time(value, now)
    if kind is FieldType.UUID:
        return uuid.UUID(value)
    return value


def _tags(column: ColumnElement[Any], op: Op, value: Any) -> ColumnElement[bool]:
    # Tag columns are never NULL (empty arrays): "no value" is an empty list.
    if op is Op.CONTAINS:
        return column.contains([value])
    if op is Op.CONTAINS_ALL:
        return column.contains(value)
    if op is Op.CONTAINS_ANY:
        overlaps: ColumnElement[bool] = column.overlap(value)
        return overlaps
    empty = func.cardinality(column) == 0
    return empty if op is Op.IS_NULL else not_(empty)


def _json(value: Any) -> ColumnElement[Any]:
    return cast(literal(orjson.dumps(value).decode()), JSONB)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    return "string" if isinstance(value, str) else "number"


def _trait(element: ColumnElement[Any], op: Op, value: Any) -> ColumnElement[bool]:
    """A trait by key, compared as JSON; an absent key and JSON null both count as no value.
    Every test is guarded by the value's JSON type, so none is ever unknown."""
    kind = func.coalesce(func.jsonb_typeof(element), "null")
    present = kind != "null"
    if op is Op.IS_NULL:
        return not_(present)
    if op is Op.IS_NOT_NULL:
        return present
    if op in (Op.EQ, Op.NE):
        test = and_(present, element == _json(value))
        return test if op is Op.EQ else not_(test)
    if op in (Op.IN, Op.NOT_IN):
        test = and_(present, element.in_([_json(v) for v in value]))
        return test if op is Op.IN else not_(test)
    if op is Op.CONTAINS:
        # A list trait holds the value; a text or number trait is it.
        return and_(present, element.op("@>")(_json(value)))
    if op is Op.BETWEEN:
        low, high = value
        return and_(
            kind == _json_type(low),
            kind == _json_type(high),
            element >= _json(low),
            element <= _json(high),
        )
    # Ordered only among values of the value's JSON type ("30" is no number).
    return and_(kind == _json_type(value), _COMPARE[op.value](element, _json(value)))
