"""Pydantic I/O of earning rules, campaigns, purchase bodies and the points breakdown.

Inputs refuse unknown fields. Amounts, quantities, points and caps are strict integers (`"5"` and
`5.0` are refused, not coerced); multipliers are positive decimals with at most three decimals.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    StrictInt,
    StringConstraints,
    model_validator,
)

from services.kernel.clock import utcnow
from services.kernel.schemas import Input, UtcDatetime, as_utc
from services.rewards.models import AudienceKind, Bucket, RuleKind

# How far in the future a purchase's clock may be (tills and shops drift a little).
CLOCK_SKEW = timedelta(minutes=5)
MAX_AMOUNT_MINOR = 10**13
MAX_LINES = 1_000
MAX_QUANTITY = 1_000_000
MAX_AWARD_POINTS = 1_000_000
MAX_CAP = 1_000_000
MAX_CATEGORIES = 100


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _not_in_future(value: datetime) -> datetime:
    value = as_utc(value)
    if value > utcnow() + CLOCK_SKEW:
        raise ValueError(
            f"must not be in the future (more than {int(CLOCK_SKEW.total_seconds() // 60)} "
            "minutes ahead of UTC now); send when the purchase happened"
        )
    return value


# A brand has a handful of multipliers, written into every purchase's breakdown; equal values
# (1.5, 1.50) share an entry, which is right: they go out as one number.
@lru_cache(maxsize=1024)
def _decimal_number(value: Decimal) -> float | int:
    """Multipliers go out as JSON numbers: 2, 1.5 (never "1.500")."""
    normalised = value.normalize()
    return int(normalised) if normalised == normalised.to_integral_value() else float(normalised)


Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Key = Annotated[str, StringConstraints(min_length=1, max_length=128)]
OrderId = Annotated[str, StringConstraints(min_length=1, max_length=255)]
ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=255)]
CurrencyCode = Annotated[
    str,
    StringConstraints(min_length=1, max_length=16),
    Field(description="ISO 4217 code; must be the program's currency"),
]
AmountMinor = Annotated[
    StrictInt, Field(gt=0, le=MAX_AMOUNT_MINOR, description="In minor units (cents); > 0")
]
Quantity = Annotated[StrictInt, Field(gt=0, le=MAX_QUANTITY)]
OccurredAt = Annotated[
    AwareDatetime,
    AfterValidator(_not_in_future),
    Field(description="When it happened (with a time zone); not in the future"),
]
Multiplier = Annotated[
    Decimal,
    Field(gt=0, le=Decimal("999.999"), max_digits=6, decimal_places=3),
    PlainSerializer(_decimal_number, return_type=int | float, when_used="json"),
]
OutMultiplier = Annotated[
    Decimal, PlainSerializer(_decimal_number, return_type=int | float, when_used="json")
]
Exact = Annotated[
    Decimal,
    PlainSerializer(str, return_type=str, when_used="json"),
    Field(description="Exact, before the final rounding; a decimal string"),
]
EventType = Annotated[
    str,
    StringConstraints(
        min_length=3, max_length=100, pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$"
    ),
    Field(
        description=(
            "The activity that earns: an event type such as `post.approved` or "
            "`review.published`, or `birthday`, `profile.completed`"
        )
    ),
]
AwardPoints = Annotated[StrictInt, Field(gt=0, le=MAX_AWARD_POINTS)]
Cap = Annotated[StrictInt, Field(ge=1, le=MAX_CAP)]


def _categories(values: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for value in values:
        seen.setdefault(value, None)
    return list(seen)


Categories = Annotated[list[Key], Field(max_length=MAX_CATEGORIES), AfterValidator(_categories)]


# --- Purchase bodies (shared by purchases and the simulator) --------------------------------


class LineIn(Input):
    sku: Key
    category: Key | None = None
    quantity: Quantity = 1
    amount_minor: AmountMinor = Field(description="The line's total (all units), in minor units")


class PurchaseBody(Input):
    """What a purchase says about money: amount, currency, lines (adding up to the amount, or
    none)."""

    amount_minor: AmountMinor
    currency: CurrencyCode
    lines: Annotated[list[LineIn], Field(max_length=MAX_LINES)] = Field(default_factory=list)


class SimulationRequest(PurchaseBody):
    """A purchase as it would be sent, to see the points it would earn; nothing is written."""

    member_id: uuid.UUID | None = Field(
        default=None, description="With a member, their tier counts"
    )
    external_id: ExternalId | None = None
    order_id: OrderId | None = None
    occurred_at: OccurredAt | None = Field(default=None, description="Defaults to now")

    @model_validator(mode="after")
    def _at_most_one_member(self) -> SimulationRequest:
        if self.member_id is not None and self.external_id is not None:
            raise ValueError("send member_id or external_id, not both")
        return self


# --- The breakdown: how a purchase's points are computed ------------------------------------


class RuleHit(BaseModel):
    rule_id: uuid.UUID
    name: str
    kind: RuleKind
    multiplier: OutMultiplier
    why: str


class CampaignHit(BaseModel):
    campaign_id: uuid.UUID
    name: str
    multiplier: OutMultiplier


class LineBreakdown(BaseModel):
    sku: str | None = Field(description="None for a purchase sent without lines (the whole order)")
    category: str | None
    quantity: int
    amount_minor: int
    base_points: Exact = Field(description="Amount in major units times the base rate")
    rule: RuleHit | None = Field(description="The sku or category rule that applies, if any")
    tier_multiplier: OutMultiplier
    campaign: CampaignHit | None = Field(description="The campaign multiplier that applies")
    multiplier: OutMultiplier = Field(description="rule * tier * campaign")
    points: Exact


class TierApplied(BaseModel):
    tier_id: uuid.UUID
    name: str
    multiplier: OutMultiplier


class CampaignOutcome(BaseModel):
    campaign_id: uuid.UUID
    name: str
    multiplier: OutMultiplier | None
    bonus_points: int | None
    applied: bool
    lines: list[int] = Field(description="Indexes of the lines its multiplier applied to")
    bonus_awarded: int
    why: str


class Breakdown(BaseModel):
    currency: str
    exponent: int = Field(description="ISO 4217 minor-unit digits of the currency")
    points_per_unit: int
    amount_minor: int
    lines: list[LineBreakdown]
    tier: TierApplied | None
    campaigns: list[CampaignOutcome] = Field(
        description="Campaigns live at the purchase time, whether they applied or not, and why"
    )
    bonus_points: int
    exact_points: Exact
    points: int = Field(description="exact_points rounded down, once, on the total")
    reason: str = Field(description="The ledger line's reason")


class TierPreview(BaseModel):
    tier_id: uuid.UUID
    name: str
    rank: int


class SimulationResult(BaseModel):
    member_id: uuid.UUID | None
    occurred_at: datetime
    points: int
    points_bucket: Bucket
    pending_until: datetime | None
    breakdown: Breakdown
    window_spend_minor: int | None = Field(
        description="The member's qualifying spend with this purchase (with a member)"
    )
    tier_upgrade: TierPreview | None = Field(description="The tier this purchase would lift to")


# --- Earning rules --------------------------------------------------------------------------


class CategoryRuleCreate(Input):
    kind: Literal["category_multiplier"]
    name: Name
    category: Key
    multiplier: Multiplier
    active: StrictBool = True


class SkuRuleCreate(Input):
    kind: Literal["sku_multiplier"]
    name: Name
    sku: Key
    multiplier: Multiplier
    active: StrictBool = True


class ActivityRuleCreate(Input):
    kind: Literal["activity"]
    name: Name
    activity: EventType
    points: AwardPoints
    cap_per_day: Cap | None = Field(default=None, description="Awards per member per UTC day")
    cap_per_month: Cap | None = Field(default=None, description="Awards per member per month")
    cap_lifetime: Cap | None = Field(default=None, description="Awards per member, ever")
    active: StrictBool = True


RuleCreate = Annotated[
    CategoryRuleCreate | SkuRuleCreate | ActivityRuleCreate, Field(discriminator="kind")
]


class RuleUpdate(Input):
    """Fields to change; omitted ones stay. A rule's kind cannot change; null clears a cap."""

    name: Name | None = None
    category: Key | None = None
    sku: Key | None = None
    activity: EventType | None = None
    multiplier: Multiplier | None = None
    points: AwardPoints | None = None
    cap_per_day: Cap | None = None
    cap_per_month: Cap | None = None
    cap_lifetime: Cap | None = None
    active: StrictBool | None = None

    @model_validator(mode="after")
    def _only_caps_clear(self) -> RuleUpdate:
        for field in ("name", "category", "sku", "activity", "multiplier", "points", "active"):
            if field in self.model_fields_set and getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null; omit it to keep it")
        return self


class RuleRead(Output):
    id: uuid.UUID
    kind: RuleKind
    name: str
    category: str | None
    sku: str | None
    activity: str | None
    multiplier: OutMultiplier | None
    points: int | None
    cap_per_day: int | None
    cap_per_month: int | None
    cap_lifetime: int | None
    active: bool
    created_at: datetime


# --- Campaigns ------------------------------------------------------------------------------


class CampaignCreate(Input):
    name: Name
    starts_at: UtcDatetime
    ends_at: UtcDatetime = Field(description="Exclusive; must be after starts_at")
    audience: AudienceKind = AudienceKind.ALL
    tier_ids: Annotated[list[uuid.UUID], Field(max_length=50)] = Field(
        default_factory=list, description="With audience `tiers`: the tiers it is for"
    )
    segment_id: uuid.UUID | None = Field(
        default=None,
        description="With audience `segment`: stored now, matched once the marketing service is up",
    )
    categories: Categories = Field(
        default_factory=list, description="Only lines in these categories; empty: every line"
    )
    multiplier: Multiplier | None = None
    bonus_points: AwardPoints | None = Field(default=None, description="Once per purchase")
    active: StrictBool = True


class CampaignUpdate(Input):
    """Fields to change; omitted ones stay. Null clears segment_id, multiplier or bonus_points."""

    name: Name | None = None
    starts_at: UtcDatetime | None = None
    ends_at: UtcDatetime | None = None
    audience: AudienceKind | None = None
    tier_ids: Annotated[list[uuid.UUID], Field(max_length=50)] | None = None
    segment_id: uuid.UUID | None = None
    categories: Categories | None = None
    multiplier: Multiplier | None = None
    bonus_points: AwardPoints | None = None
    active: StrictBool | None = None

    @model_validator(mode="after")
    def _required_not_null(self) -> CampaignUpdate:
        for field in ("name", "starts_at", "ends_at", "audience", "tier_ids", "categories"):
            if field in self.model_fields_set and getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null; omit it to keep it")
        if "active" in self.model_fields_set and self.active is None:
            raise ValueError("active cannot be null; omit it to keep it")
        return self


class CampaignRead(Output):
    id: uuid.UUID
    name: str
    starts_at: datetime
    ends_at: datetime
    audience: AudienceKind
    tier_ids: list[uuid.UUID]
    segment_id: uuid.UUID | None
    categories: list[str]
    multiplier: OutMultiplier | None
    bonus_points: int | None
    active: bool
    created_at: datetime


# --- Simulating an activity -----------------------------------------------------------------


class ActivitySimulationRequest(Input):
    """An activity as a service would report it, to see which rules would pay; writes nothing."""

    activity: EventType
    member_id: uuid.UUID | None = Field(default=None, description="With a member, caps count")
    external_id: ExternalId | None = None
    occurred_at: OccurredAt | None = Field(default=None, description="Defaults to now")

    @model_validator(mode="after")
    def _at_most_one_member(self) -> ActivitySimulationRequest:
        if self.member_id is not None and self.external_id is not None:
            raise ValueError("send member_id or external_id, not both")
        return self


class AwardCountsRead(BaseModel):
    day: int
    month: int
    lifetime: int


class ActivityRuleOutcome(BaseModel):
    rule_id: uuid.UUID
    name: str
    points: int | None
    cap_per_day: int | None
    cap_per_month: int | None
    cap_lifetime: int | None
    awards_so_far: AwardCountsRead | None = Field(description="The member's awards by this rule")
    would_award: bool
    why: str


class ActivitySimulationResult(BaseModel):
    activity: str
    member_id: uuid.UUID | None
    occurred_at: datetime
    rules: list[ActivityRuleOutcome] = Field(description="Every active rule for the activity")
    points: int
