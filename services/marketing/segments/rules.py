"""Reading a rule tree: every node checked against the catalog of fields, the journal's
activities and the limits, each problem raised with the path of the node at fault
(`rule.and[2].or[0].value`) and what to change.

What needs the database (segments named, cycles, sizes counted through named segments) or the
caller (who may read what) is checked by the service, on the facts `facts()` collects here.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeGuard

from services.kernel.clock import utcnow
from services.kernel.schemas import is_int64
from services.marketing.fields import FIELDS, Field, FieldType
from services.marketing.models import ActivityKind
from services.marketing.segments.errors import (
    InvalidRule,
    OperatorNotAllowed,
    RuleTooDeep,
    UnknownEvent,
    UnknownField,
    WrongType,
)
from services.marketing.segments.schemas import (
    ACTIVE,
    COUNT_OPS,
    MAX_DEPTH,
    OPERATORS,
    Affinity,
    AffinityCondition,
    AmountCondition,
    CountCondition,
    EventCondition,
    EventWhere,
    FieldCondition,
    Op,
    RuleAnd,
    RuleNot,
    RuleOr,
    SegmentCondition,
)

RuleNode = (
    RuleAnd
    | RuleOr
    | RuleNot
    | FieldCondition
    | EventCondition
    | SegmentCondition
    | AffinityCondition
)
RULE_NODES = (
    RuleAnd,
    RuleOr,
    RuleNot,
    FieldCondition,
    EventCondition,
    SegmentCondition,
    AffinityCondition,
)

KINDS = ("and", "or", "not", "field", "event", "segment", "affinity")
EVENTS: tuple[str, ...] = (ACTIVE, *(kind.value for kind in ActivityKind))
MAX_LIST = 1_000
MAX_TEXT = 1_000
_ITEM = re.compile(r"^(perk|prompt|experience|post|product):[^\s]{1,150}$")
_LISTS = (Op.IN, Op.NOT_IN, Op.CONTAINS_ANY, Op.CONTAINS_ALL)
_ORDERED = (Op.LT, Op.LTE, Op.GT, Op.GTE, Op.BETWEEN)
_KEYS = {
    "and": {"and"},
    "or": {"or"},
    "not": {"not"},
    "field": {"field", "key", "op", "value"},
    "event": {"event", "where", "within_days", "count"},
    "segment": {"segment"},
    "affinity": {"affinity"},
}


def parse_rule(raw: object, path: str = "rule") -> RuleNode:
    """The checked rule, values normalised (datetimes in ISO 8601, ids as text), or the first
    problem found, with its path."""
    return _node(raw, path, 1)


def _node(raw: object, path: str, depth: int) -> RuleNode:
    if depth > MAX_DEPTH:
        raise RuleTooDeep(
            path,
            f"The rule nests more than {MAX_DEPTH} levels here: merge nested and/or of the "
            "same kind, or move part of it into a segment of its own and name that.",
        )
    if not isinstance(raw, dict):
        raise InvalidRule(path, f"A rule node is an object with one of: {', '.join(KINDS)}.")
    kinds = [kind for kind in KINDS if kind in raw]
    if len(kinds) != 1:
        found = f"both {' and '.join(kinds)}" if kinds else "none"
        raise InvalidRule(
            path, f"A rule node has exactly one of {', '.join(KINDS)} (this one has {found})."
        )
    kind = kinds[0]
    _only(raw, _KEYS[kind], path, kind)
    if kind in ("and", "or"):
        items = raw[kind]
        if not isinstance(items, list) or not items:
            raise InvalidRule(f"{path}.{kind}", f"`{kind}` takes a non-empty list of rules.")
        rules = [_node(item, f"{path}.{kind}[{i}]", depth + 1) for i, item in enumerate(items)]
        return RuleAnd(rules=rules) if kind == "and" else RuleOr(rules=rules)
    if kind == "not":
        return RuleNot(rule=_node(raw["not"], f"{path}.not", depth + 1))
    if kind == "field":
        return _field(raw, path)
    if kind == "event":
        return _event(raw, path)
    if kind == "segment":
        return SegmentCondition(segment=_uuid(raw["segment"], f"{path}.segment"))
    return AffinityCondition(affinity=_affinity(raw["affinity"], f"{path}.affinity"))


def _only(raw: dict[str, Any], allowed: set[str], path: str, kind: str) -> None:
    for key in raw:
        if key not in allowed:
            raise InvalidRule(
                f"{path}.{key}",
                f"Unexpected `{key}`: a{'n' if kind[0] in 'aeo' else ''} {kind} node takes "
                f"{', '.join(sorted(allowed))}.",
            )


# --- Field conditions ---------------------------------------------------------------------


def _field(raw: dict[str, Any], path: str) -> FieldCondition:
    name = raw["field"]
    if not isinstance(name, str):
        raise InvalidRule(f"{path}.field", "`field` is a field's name.")
    found = FIELDS.get(name)
    if found is None:
        raise UnknownField(
            f"{path}.field",
            f"There is no field {name!r}; GET /marketing/v1/fields lists the fields.",
        )
    key = raw.get("key")
    if found.type is FieldType.OBJECT:
        if not isinstance(key, str) or not key or len(key) > 200:
            raise InvalidRule(
                f"{path}.key", f"`{name}` is tested by key: add `key`, e.g. the trait's name."
            )
    elif "key" in raw:
        raise InvalidRule(f"{path}.key", f"Only object fields take a `key`; {name} is not one.")
    allowed = OPERATORS[found.type]
    op_raw = raw.get("op")
    op = Op(op_raw) if isinstance(op_raw, str) and op_raw in Op._value2member_map_ else None
    if op is None or op not in allowed:
        said = f"{op_raw!r} is not an operator" if op is None else f"{op_raw} does not apply"
        raise OperatorNotAllowed(
            f"{path}.op",
            f"{said} to {name} ({found.type.value}); use one of: "
            f"{', '.join(o.value for o in allowed)}.",
        )
    value = _value(found, op, raw.get("value"), f"{path}.value")
    return FieldCondition(field=name, key=key, op=op, value=value)


def _value(found: Field, op: Op, value: Any, path: str) -> Any:
    if op in (Op.IS_NULL, Op.IS_NOT_NULL):
        if value is not None:
            raise WrongType(path, f"{op.value} takes no value: leave `value` out.")
        return None
    if op in _LISTS or op is Op.BETWEEN:
        if not isinstance(value, list):
            shape = "[low, high]" if op is Op.BETWEEN else "a list"
            raise WrongType(path, f"{op.value} takes {shape} of {_type_name(found, op)}.")
        if op is Op.BETWEEN and len(value) != 2:
            raise WrongType(path, "between takes [low, high]: two values.")
        if not value or len(value) > MAX_LIST:
            raise WrongType(path, f"{op.value} takes 1 to {MAX_LIST} values.")
        items = [_scalar(found, op, v, f"{path}[{i}]") for i, v in enumerate(value)]
        if op is Op.BETWEEN and _order_key(found, items[0]) > _order_key(found, items[1]):
            raise WrongType(path, "between takes [low, high] with low no greater than high.")
        return items
    return _scalar(found, op, value, path)


def _type_name(found: Field, op: Op) -> str:
    if found.type is FieldType.TAGS:
        return "strings"
    if found.type is FieldType.OBJECT:
        return "numbers or strings" if op in _ORDERED else "strings, numbers or booleans"
    if found.type is FieldType.DATETIME:
        return 'datetimes (ISO 8601 with a zone) or {"days_ago": N}'
    return {
        FieldType.STRING: "strings",
        FieldType.UUID: "ids",
        FieldType.INTEGER: "integers",
        FieldType.NUMBER: "numbers",
    }[found.type]


def _scalar(found: Field, op: Op, value: Any, path: str) -> Any:
    wrong = WrongType(path, f"{found.name} takes {_type_name(found, op)} here.")
    kind = found.type
    if kind in (FieldType.STRING, FieldType.TAGS):
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise wrong
        return value
    if kind is FieldType.UUID:
        return str(_uuid(value, path, wrong))
    if kind is FieldType.INTEGER:
        if not is_int64(value):
            raise wrong
        return value
    if kind is FieldType.NUMBER:
        if not _is_number(value):
            raise wrong
        return value
    if kind is FieldType.DATETIME:
        return _datetime(value, wrong)
    # A trait: compared as JSON, ordered only among numbers or among strings.
    if isinstance(value, str) and len(value) <= MAX_TEXT:
        return value
    if _is_number(value):
        return value
    if isinstance(value, bool) and op not in _ORDERED:
        return value
    raise wrong


def _is_number(value: Any) -> TypeGuard[int | float]:
    if is_int64(value):
        return True
    return isinstance(value, float) and math.isfinite(value)


def _datetime(value: Any, wrong: WrongType) -> Any:
    if isinstance(value, dict):
        days = value.get("days_ago")
        if set(value) != {"days_ago"} or not is_int64(days) or not 0 <= days <= 36_500:
            raise WrongType(wrong.path, 'A relative time is {"days_ago": N}, N from 0 to 36500.')
        return {"days_ago": days}
    if not isinstance(value, str):
        raise wrong
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise wrong from None
    if moment.tzinfo is None:
        raise WrongType(wrong.path, "Give the datetime's zone, e.g. 2025-01-31T00:00:00Z.")
    return moment.astimezone(UTC).isoformat()


def resolve_time(value: Any, now: datetime) -> datetime:
    """A checked datetime value as a moment: ISO text, or `{"days_ago": N}` before `now`."""
    if isinstance(value, dict):
        return now - timedelta(days=int(value["days_ago"]))
    return datetime.fromisoformat(value)


def _order_key(found: Field, value: Any) -> Any:
    if found.type is FieldType.DATETIME:
        return resolve_time(value, utcnow())
    if found.type is FieldType.OBJECT:
        return (isinstance(value, str), value)
    return value


def _uuid(value: Any, path: str, wrong: WrongType | None = None) -> uuid.UUID:
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise wrong or WrongType(path, "An id such as a segment's `id`.")


# --- Event conditions ---------------------------------------------------------------------


def _event(raw: dict[str, Any], path: str) -> EventCondition:
    event = raw["event"]
    if not isinstance(event, str) or event not in EVENTS:
        raise UnknownEvent(f"{path}.event", f"Use one of: {', '.join(EVENTS)}.")
    within = raw.get("within_days")
    if within is not None and (not is_int64(within) or not 1 <= within <= 36_500):
        raise WrongType(f"{path}.within_days", "A whole number of days, 1 to 36500 (or leave out).")
    where = _where(raw.get("where"), event, f"{path}.where")
    count = _count(raw.get("count"), f"{path}.count")
    return EventCondition(event=event, where=where, within_days=within, count=count)


def _where(raw: Any, event: str, path: str) -> EventWhere | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidRule(path, "`where` is an object of category, ref, amount_minor.")
    _only(raw, {"category", "ref", "amount_minor"}, path, "event's where")
    values: dict[str, Any] = {}
    for key in ("category", "ref"):
        if key not in raw:
            continue
        given = raw[key]
        items = given if isinstance(given, list) else [given]
        if (
            not items
            or len(items) > MAX_LIST
            or not all(isinstance(v, str) and v and len(v) <= MAX_TEXT for v in items)
        ):
            raise WrongType(f"{path}.{key}", f"`{key}` is a text or a non-empty list of texts.")
        values[key] = given
    if "amount_minor" in raw:
        if event not in (ActivityKind.PURCHASE.value, ActivityKind.RETURN.value):
            raise InvalidRule(f"{path}.amount_minor", "Only purchases and returns have amounts.")
        amount = raw["amount_minor"]
        if not isinstance(amount, dict):
            raise InvalidRule(f"{path}.amount_minor", 'An amount is {"op": "gte", "value": N}.')
        _only(amount, {"op", "value"}, f"{path}.amount_minor", "amount")
        op = _count_op(amount.get("op"), f"{path}.amount_minor.op")
        if not is_int64(amount.get("value")):
            raise WrongType(f"{path}.amount_minor.value", "An amount in minor units (integer).")
        values["amount_minor"] = AmountCondition(op=op, value=amount["value"])
    return EventWhere(**values)


def _count(raw: Any, path: str) -> CountCondition:
    if raw is None:
        return CountCondition()
    if not isinstance(raw, dict):
        raise InvalidRule(path, 'A count is {"op": "gte", "value": 2}.')
    _only(raw, {"op", "value"}, path, "count")
    op = _count_op(raw.get("op", "gte"), f"{path}.op")
    value = raw.get("value", 1)
    if not is_int64(value) or value < 0:
        raise WrongType(f"{path}.value", "A count is a whole number, 0 or more.")
    return CountCondition(op=op, value=value)


def _count_op(raw: Any, path: str) -> Any:
    if not isinstance(raw, str) or raw not in {op.value for op in COUNT_OPS}:
        raise OperatorNotAllowed(
            path, f"Use one of: {', '.join(op.value for op in COUNT_OPS)} ({raw!r} is not one)."
        )
    return raw


# --- Affinity -----------------------------------------------------------------------------


def _affinity(raw: Any, path: str) -> Affinity:
    if not isinstance(raw, dict):
        raise InvalidRule(path, 'Affinity is {"item": "perk:<id>", "top_share": 0.2}.')
    _only(raw, {"item", "top_share"}, path, "affinity")
    item = raw.get("item")
    if not isinstance(item, str) or not _ITEM.match(item):
        raise WrongType(
            f"{path}.item",
            "The recommender's item id: <kind>:<id> with kind perk, prompt, experience, post "
            "or product.",
        )
    share = raw.get("top_share")
    if not _is_number(share) or not 0 < share <= 1:
        raise WrongType(f"{path}.top_share", "A share of the members, more than 0, at most 1.")
    return Affinity(item=item, top_share=float(share))


# --- What a rule uses ---------------------------------------------------------------------


@dataclass
class RuleFacts:
    """What a checked rule names, each with the path it is at."""

    conditions: int = 0  # field, event and affinity conditions (not segment references)
    fields: list[tuple[str, str]] = field(default_factory=list)
    segments: list[tuple[uuid.UUID, str]] = field(default_factory=list)
    affinities: list[tuple[Affinity, str]] = field(default_factory=list)


def walk(rule: RuleNode, path: str = "rule") -> Iterator[tuple[RuleNode, str]]:
    """Every node with its path, parents before children."""
    yield rule, path
    if isinstance(rule, RuleAnd | RuleOr):
        kind = "and" if isinstance(rule, RuleAnd) else "or"
        for i, child in enumerate(rule.rules):
            yield from walk(child, f"{path}.{kind}[{i}]")
    elif isinstance(rule, RuleNot):
        yield from walk(rule.rule, f"{path}.not")


def facts(rule: RuleNode, path: str = "rule") -> RuleFacts:
    found = RuleFacts()
    for node, at in walk(rule, path):
        if isinstance(node, FieldCondition):
            found.conditions += 1
            found.fields.append((node.field, at))
        elif isinstance(node, EventCondition):
            found.conditions += 1
        elif isinstance(node, AffinityCondition):
            found.conditions += 1
            found.affinities.append((node.affinity, at))
        elif isinstance(node, SegmentCondition):
            found.segments.append((node.segment, at))
    return found


def dump(rule: RuleNode) -> dict[str, Any]:
    """The rule as stored and shown: the documented shape, defaults written out."""
    return rule.model_dump(mode="json", by_alias=True, exclude_none=True)
