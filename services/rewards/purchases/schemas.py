"""Pydantic I/O of purchases and returns. Inputs refuse unknown fields."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints, model_validator

from services.kernel.schemas import Input
from services.rewards.earning.schemas import (
    MAX_LINES,
    AmountMinor,
    Breakdown,
    ExternalId,
    Key,
    OccurredAt,
    OrderId,
    PurchaseBody,
    Quantity,
)
from services.rewards.models import Bucket

ReturnId = Annotated[str, StringConstraints(min_length=1, max_length=255)]


class PurchaseCreate(PurchaseBody):
    """A purchase from the brand's till or shop. The order id is its idempotency key."""

    member_id: uuid.UUID | None = Field(default=None, description="Rewards' member id, or...")
    external_id: ExternalId | None = Field(default=None, description="...the brand's own id")
    order_id: OrderId = Field(description="Unique per brand; a replay returns the first result")
    occurred_at: OccurredAt

    @model_validator(mode="after")
    def _exactly_one_member(self) -> PurchaseCreate:
        if (self.member_id is None) == (self.external_id is None):
            raise ValueError("send exactly one of member_id or external_id")
        return self


class LineRead(BaseModel):
    sku: str
    category: str | None
    quantity: int
    amount_minor: int


class PurchaseResult(BaseModel):
    """The answer to recording a purchase: the same, byte for byte, on every replay."""

    purchase_id: uuid.UUID
    order_id: str
    member_id: uuid.UUID
    amount_minor: int
    currency: str
    lines: list[LineRead]
    occurred_at: datetime
    points: int
    points_bucket: Bucket = Field(description="Where the points went when it was recorded")
    pending_until: datetime | None = Field(description="When pending points become available")
    breakdown: Breakdown


class ReturnSummary(BaseModel):
    return_id: str
    amount_minor: int
    points_reversed: int
    occurred_at: datetime


class PurchaseRead(PurchaseResult):
    """A purchase as it stands now: what was returned of it, and where its points are."""

    returned_minor: int
    returned_points: int
    points_now_in: Bucket = Field(description="pending until released, then available")
    returns: list[ReturnSummary]


class ReturnLineIn(Input):
    sku: Key = Field(description="A sku of the purchase")
    category: Key | None = None
    quantity: Quantity = 1
    amount_minor: AmountMinor


class ReturnCreate(Input):
    """A full or partial return. The return id (the brand's) is its idempotency key."""

    order_id: OrderId
    return_id: ReturnId
    amount_minor: AmountMinor | None = Field(
        default=None, description="What is refunded; or send lines (or both, adding up)"
    )
    lines: Annotated[list[ReturnLineIn], Field(max_length=MAX_LINES)] = Field(default_factory=list)
    occurred_at: OccurredAt

    @model_validator(mode="after")
    def _amount_or_lines(self) -> ReturnCreate:
        if self.amount_minor is None and not self.lines:
            raise ValueError("send amount_minor, lines, or both")
        return self


class ReturnResult(BaseModel):
    """The answer to recording a return: the same on every replay."""

    return_id: str
    order_id: str
    purchase_id: uuid.UUID
    member_id: uuid.UUID
    amount_minor: int
    currency: str
    lines: list[LineRead]
    occurred_at: datetime
    points_reversed: int
    reversed_from: Bucket | None = Field(
        description="pending while the purchase's points were pending, else available"
    )
