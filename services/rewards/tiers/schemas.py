"""Pydantic I/O of tiers and a member's tier status. Inputs refuse unknown fields."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, Field, StrictBool, StrictInt, StringConstraints, model_validator

from services.kernel.schemas import Input
from services.rewards.earning.schemas import (
    MAX_AMOUNT_MINOR,
    Multiplier,
    Name,
    OutMultiplier,
    Output,
)
from services.rewards.models import DowngradeRule, QualificationWindow

MAX_RANK = 1_000
MAX_BENEFITS = 50
MAX_GRACE_DAYS = 366

Rank = Annotated[StrictInt, Field(ge=0, le=MAX_RANK, description="0 is the entry tier")]
Threshold = Annotated[
    StrictInt,
    Field(ge=0, le=MAX_AMOUNT_MINOR, description="Qualifying spend in the window, minor units"),
]
Benefit = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Benefits = Annotated[list[Benefit], Field(max_length=MAX_BENEFITS)]
GraceDays = Annotated[StrictInt, Field(ge=0, le=MAX_GRACE_DAYS)]


class TierCreate(Input):
    name: Name
    rank: Rank
    threshold_minor: Threshold
    multiplier: Multiplier = Field(default=Decimal(1), description="Applies to purchase points")
    priority_booking: StrictBool = False
    benefits: Benefits = Field(default_factory=list, description="Shown to members")
    downgrade_rule: DowngradeRule = DowngradeRule.END_OF_WINDOW
    grace_days: GraceDays = Field(
        default=0, description="Days after the window (or after reaching the tier) before a review"
    )


class TierUpdate(Input):
    """Fields to change; omitted ones stay."""

    name: Name | None = None
    rank: Rank | None = None
    threshold_minor: Threshold | None = None
    multiplier: Multiplier | None = None
    priority_booking: StrictBool | None = None
    benefits: Benefits | None = None
    downgrade_rule: DowngradeRule | None = None
    grace_days: GraceDays | None = None

    @model_validator(mode="after")
    def _not_null(self) -> TierUpdate:
        for field in self.model_fields_set:
            if getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null; omit it to keep it")
        return self


class TierRead(Output):
    id: uuid.UUID
    name: str
    rank: int
    threshold_minor: int
    multiplier: OutMultiplier
    priority_booking: bool
    benefits: list[str]
    downgrade_rule: DowngradeRule
    grace_days: int
    created_at: datetime


class TierList(BaseModel):
    items: list[TierRead] = Field(description="By rank, the entry tier first")


class TierSummary(Output):
    id: uuid.UUID
    name: str
    rank: int
    threshold_minor: int
    multiplier: OutMultiplier
    priority_booking: bool
    benefits: list[str]


class NextTier(BaseModel):
    tier: TierSummary
    remaining_minor: int = Field(description="What more to spend in the window to reach it")
    by: datetime | None = Field(
        description="Before the window closes (calendar year); None for a rolling window"
    )


class KeepTier(BaseModel):
    rule: DowngradeRule
    threshold_minor: int
    spend_minor: int = Field(description="The spend that counts for keeping the tier so far")
    remaining_minor: int = Field(description="What more to spend to keep the tier")
    by: datetime | None = Field(description="The spend must be reached before this time")
    reviewed_at: datetime | None = Field(
        description="When a shortfall would take effect (after the grace period); None: never"
    )


class TierStatus(BaseModel):
    member_id: uuid.UUID
    tier: TierSummary | None
    since: datetime | None
    currency: str
    qualification_window: QualificationWindow
    window_starts_at: datetime
    window_closes_at: datetime | None = Field(
        description="Calendar year: when the window closes; rolling 12 months: None (it rolls)"
    )
    spend_minor: int = Field(description="Qualifying spend in the window so far (after returns)")
    next_tier: NextTier | None
    keep: KeepTier | None = Field(description="What it takes to keep the current tier")
