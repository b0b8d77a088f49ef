"""Segments as the REST API reads and writes them, and the rule tree.

A rule is a tree of nodes, each an object told apart by its one distinguishing key:

- `{"and": [rule, ...]}`, `{"or": [rule, ...]}`, `{"not": rule}`
- `{"field": "order_count", "op": "gte", "value": 3}`: a member-360 field (the catalog at
  `GET /marketing/v1/fields` lists each field's type and the operators that fit it); `traits`
  takes a `key` (`{"field": "traits", "key": "skin_type", "op": "eq", "value": "dry"}`);
  datetime fields also take `{"days_ago": 60}` as a value.
- `{"event": "purchase", "where": {"category": "skincare"}, "within_days": 90,
  "count": {"op": "gte", "value": 2}}`: how often the member did something (the journal's
  activity kinds, or `active` for anything the member did themself); `within_days` absent
  means ever, `count` absent means at least once.
- `{"segment": "<id>"}`: a member of another segment of the brand (its rule, and its consent
  filter, evaluated now).
- `{"affinity": {"item": "perk:<id>", "top_share": 0.2}}`: among the brand's members the
  recommender's serving model ranks most likely to engage with the item.

The rule is checked by `segments.rules`, not by these models, so that every problem comes back
with the path of the node at fault and a code; the models document the shape.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SkipValidation,
    Tag,
    field_serializer,
)

from services.marketing.fields import FieldType
from services.marketing.models import RefreshEvery, SegmentPurpose

MAX_DEPTH = 10
MAX_CONDITIONS = 200
SAMPLE_SIZE = 20


class Op(StrEnum):
    EQ = "eq"
    NE = "ne"
    LT = "lt"
    LTE = "lte"
    GT = "gt"
    GTE = "gte"
    BETWEEN = "between"  # [low, high], both included
    IN = "in"
    NOT_IN = "not_in"
    CONTAINS = "contains"  # tags: has this one
    CONTAINS_ANY = "contains_any"  # tags: has at least one of these
    CONTAINS_ALL = "contains_all"  # tags: has all of these
    IS_NULL = "is_null"  # no value (tags: none at all)
    IS_NOT_NULL = "is_not_null"


_NULLS = (Op.IS_NULL, Op.IS_NOT_NULL)
_ORDER = (Op.LT, Op.LTE, Op.GT, Op.GTE, Op.BETWEEN)
_SETS = (Op.EQ, Op.NE, Op.IN, Op.NOT_IN)

# Which operators fit which type. `ne` and `not_in` are the negations of `eq` and `in`, so a
# member with no value at all is "not equal" (as `{"not": {... "eq" ...}}` would say).
OPERATORS: dict[FieldType, tuple[Op, ...]] = {
    FieldType.STRING: (*_SETS, *_NULLS),
    FieldType.UUID: (*_SETS, *_NULLS),
    FieldType.INTEGER: (*_SETS, *_ORDER, *_NULLS),
    FieldType.NUMBER: (*_SETS, *_ORDER, *_NULLS),
    FieldType.DATETIME: (*_ORDER, *_NULLS),
    FieldType.TAGS: (Op.CONTAINS, Op.CONTAINS_ANY, Op.CONTAINS_ALL, *_NULLS),
    # A trait's value, by key: JSON strings, numbers or booleans; lists of strings contain.
    FieldType.OBJECT: (*_SETS, *_ORDER, Op.CONTAINS, *_NULLS),
}

# Operators that compare with how many times something happened.
COUNT_OPS = (Op.EQ, Op.NE, Op.LT, Op.LTE, Op.GT, Op.GTE)

# An event condition's `event` that stands for anything the member did themself.
ACTIVE = "active"


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class RuleAnd(_Node):
    rules: list[Rule] = Field(alias="and", min_length=1, description="Every one holds.")


class RuleOr(_Node):
    rules: list[Rule] = Field(alias="or", min_length=1, description="At least one holds.")


class RuleNot(_Node):
    rule: Rule = Field(alias="not", description="Does not hold.")


class DaysAgo(_Node):
    days_ago: int = Field(ge=0, le=36_500, description="This many days before now.")


class FieldCondition(_Node):
    field: str = Field(description="A member-360 field, as `GET /marketing/v1/fields` lists.")
    key: str | None = Field(
        default=None, min_length=1, max_length=200, description="For `traits`: which trait."
    )
    op: Op
    value: Any = Field(
        default=None,
        description="Of the field's type: a list for in/not_in/contains_any/contains_all, "
        "[low, high] for between, none for is_null/is_not_null. Datetimes are ISO 8601 with a "
        'zone, or `{"days_ago": N}`.',
    )


class CountCondition(_Node):
    op: Literal["eq", "ne", "lt", "lte", "gt", "gte"] = "gte"
    value: int = Field(default=1, ge=0)


class AmountCondition(_Node):
    op: Literal["eq", "ne", "lt", "lte", "gt", "gte"]
    value: int


class EventWhere(_Node):
    category: str | list[str] | None = Field(
        default=None,
        description="The activity's category: a perk's (redemption), a line's (purchase, "
        "return: any line), a tier's name (tier), a ledger entry's kind (points).",
    )
    ref: str | list[str] | None = Field(
        default=None,
        description="What it was about: a perk, post, prompt or experience id, an order id.",
    )
    amount_minor: AmountCondition | None = Field(
        default=None, description="Purchases and returns: the amount, in minor units."
    )


class EventCondition(_Node):
    event: str = Field(
        description="A journal activity (purchase, return, redemption, post, comment, "
        "reaction, answer, booking, check_in, review, ...) or `active` (anything the member "
        "did themself)."
    )
    where: EventWhere | None = None
    within_days: int | None = Field(
        default=None, ge=1, le=36_500, description="Over the last N days; absent: ever."
    )
    count: CountCondition = Field(
        default_factory=CountCondition, description="How many times; absent: at least once."
    )


class SegmentCondition(_Node):
    segment: uuid.UUID = Field(description="A member of this segment of the brand, now.")


class Affinity(_Node):
    item: str = Field(
        pattern=r"^(perk|prompt|experience|post|product):\S{1,150}$",
        description="The recommender's item id, e.g. `perk:<id>`.",
    )
    top_share: float = Field(gt=0, le=1, description="The share of the brand's members, (0, 1].")


class AffinityCondition(_Node):
    affinity: Affinity


def node_kind(node: Any) -> str | None:
    """Which kind of node a raw object or a model is, by its distinguishing key."""
    if isinstance(node, dict):
        for key in ("and", "or", "not", "field", "event", "segment", "affinity"):
            if key in node:
                return key
        return None
    kinds: tuple[tuple[type[BaseModel], str], ...] = (
        (RuleAnd, "and"),
        (RuleOr, "or"),
        (RuleNot, "not"),
        (FieldCondition, "field"),
        (EventCondition, "event"),
        (SegmentCondition, "segment"),
        (AffinityCondition, "affinity"),
    )
    return next((kind for model, kind in kinds if isinstance(node, model)), None)


Rule = Annotated[
    Annotated[RuleAnd, Tag("and")]
    | Annotated[RuleOr, Tag("or")]
    | Annotated[RuleNot, Tag("not")]
    | Annotated[FieldCondition, Tag("field")]
    | Annotated[EventCondition, Tag("event")]
    | Annotated[SegmentCondition, Tag("segment")]
    | Annotated[AffinityCondition, Tag("affinity")],
    Discriminator(node_kind),
]
RuleAnd.model_rebuild()
RuleOr.model_rebuild()
RuleNot.model_rebuild()

# The request's rule as sent: documented as `Rule`, checked by `segments.rules.parse_rule`
# (which reports paths and codes) rather than by pydantic here. At run time it is the raw JSON,
# and written back as it came (an idempotency fingerprint dumps the request).
RuleInput = SkipValidation[Rule]


class _WithRule(BaseModel):
    @field_serializer("rule", check_fields=False)
    def _raw_rule(self, value: Any) -> Any:
        return value


# --- Segments -----------------------------------------------------------------------------


class SegmentCreate(_WithRule):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2_000)
    rule: RuleInput
    purpose: SegmentPurpose = Field(
        description="email_marketing, sms_marketing and push keep only members who gave that "
        "consent (a member who withdraws it leaves the segment); analytics keeps everyone."
    )
    refresh: RefreshEvery = Field(
        default=RefreshEvery.DAILY,
        description="How often the membership is materialised by itself (manual: on demand).",
    )


class SegmentUpdate(_WithRule):
    """Only the fields sent change; a new rule is checked as on create."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2_000)
    rule: RuleInput | None = None
    purpose: SegmentPurpose | None = None
    refresh: RefreshEvery | None = None


class SegmentRead(BaseModel):
    id: uuid.UUID
    name: str
    description: str | None
    rule: dict[str, Any] = Field(description="The rule, as checked (see `Rule`).")
    uses: list[uuid.UUID] = Field(description="Segments the rule names.")
    purpose: SegmentPurpose
    refresh: RefreshEvery
    version: int = Field(description="The last materialised version (0: never).")
    created_at: datetime
    updated_at: datetime


class PreviewRequest(_WithRule):
    model_config = ConfigDict(extra="forbid")

    rule: RuleInput
    purpose: SegmentPurpose = Field(
        default=SegmentPurpose.ANALYTICS,
        description="A marketing purpose keeps only members with that consent.",
    )


class MemberSample(BaseModel):
    """A member of a preview: the id and a few fields that do not say who the member is."""

    member_id: uuid.UUID
    tier: str | None
    locale: str | None
    joined_at: datetime | None
    last_active_at: datetime | None
    order_count: int
    spend_lifetime_minor: int
    points_available: int


class PreviewRead(BaseModel):
    count: int
    sample: list[MemberSample] = Field(description=f"Up to {SAMPLE_SIZE}, by member id.")
    warnings: list[str] = Field(
        default_factory=list,
        description="Conditions that match nobody for a reason outside the rule (a "
        "recommender with no model yet, say).",
    )


class VersionRead(BaseModel):
    segment_id: uuid.UUID
    version: int
    computed_at: datetime
    size: int
    entered: int
    exited: int
    rule: dict[str, Any]


class ChangeKind(StrEnum):
    ENTERED = "entered"
    EXITED = "exited"


class MemberChange(BaseModel):
    member_id: uuid.UUID


class FieldRead(BaseModel):
    name: str
    type: FieldType
    description: str
    personal: bool = Field(description="Readable only with `members:read` as well.")
    operators: list[Op]


class EventKindRead(BaseModel):
    event: str
    description: str


class CatalogRead(BaseModel):
    fields: list[FieldRead]
    events: list[EventKindRead]
    count_operators: list[Op]
