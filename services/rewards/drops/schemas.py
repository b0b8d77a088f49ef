"""Pydantic I/O of fair drops. Inputs refuse unknown fields."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from services.kernel.schemas import Input, UtcDatetime
from services.rewards.models import DropEntry, DropMethod, DropStatus
from services.rewards.perks.schemas import TierIds

Units = Annotated[StrictInt, Field(ge=1, le=1_000_000, description="How many winners at most.")]
Seed = Annotated[
    str,
    StringConstraints(min_length=8, max_length=200),
    Field(
        description="The draw's seed. Default: 128 random bits. Only its SHA-256 is shown until "
        "the draw; the audit reveals it afterwards."
    ),
]


class _Windows(Input):
    @field_validator("closes_at", mode="after", check_fields=False)
    @classmethod
    def _closes_after_open(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        opens = info.data.get("opens_at")
        if value is not None and opens is not None and value <= opens:
            raise ValueError("must be after opens_at")
        return value

    @field_validator("early_opens_at", mode="after", check_fields=False)
    @classmethod
    def _early_before_open(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        opens = info.data.get("opens_at")
        if value is not None and opens is not None and value >= opens:
            raise ValueError("must be before opens_at")
        return value


class DropCreate(_Windows):
    """A drop of a scarce perk: who enters when, and how winners are picked."""

    perk_id: uuid.UUID
    method: DropMethod = Field(
        description="`draw`: a seeded lottery among entrants; `queue`: first to enter first."
    )
    units: Units
    opens_at: UtcDatetime
    closes_at: UtcDatetime = Field(description="Entries close and the draw runs at this time.")
    early_opens_at: UtcDatetime | None = Field(
        default=None, description="An earlier opening for members of `early_tier_ids`."
    )
    early_tier_ids: TierIds = Field(default_factory=list, validate_default=True)
    seed: Seed | None = None

    @field_validator("early_tier_ids", mode="after")
    @classmethod
    def _early_pair(cls, value: list[uuid.UUID], info: ValidationInfo) -> list[uuid.UUID]:
        early = info.data.get("early_opens_at")
        if early is not None and not value:
            raise ValueError("name the tiers that enter early (early_opens_at is set)")
        if early is None and value and "early_opens_at" in info.data:
            raise ValueError("set early_opens_at for the early tiers")
        return value


class DropUpdate(_Windows):
    """Changes before the drop opens; omitted fields stay, null clears the early window."""

    method: DropMethod | None = None
    units: Units | None = None
    opens_at: UtcDatetime | None = None
    closes_at: UtcDatetime | None = None
    early_opens_at: UtcDatetime | None = None
    early_tier_ids: TierIds | None = None
    seed: Seed | None = None

    @field_validator("method", "units", "opens_at", "closes_at", "seed", mode="after")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null; omit the field to keep it")
        return value


class DropRead(BaseModel):
    id: uuid.UUID
    perk_id: uuid.UUID
    method: DropMethod
    units: int
    early_opens_at: datetime | None
    early_tier_ids: list[uuid.UUID]
    opens_at: datetime
    closes_at: datetime
    status: DropStatus
    drawn_at: datetime | None
    seed_sha256: str = Field(description="SHA-256 of the seed, published before the draw.")
    seed: str | None = Field(description="The seed itself, once drawn.")
    created_at: datetime


class EntryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    drop_id: uuid.UUID
    member_id: uuid.UUID
    entered_at: datetime
    position: int | None = Field(description="Place in the draw's order, once drawn.")
    won: bool
    redemption_id: uuid.UUID | None
    outcome: str | None = Field(
        description="Once drawn: `won`, `skipped:<error code>` (e.g. skipped:InsufficientPoints), "
        "or null when the draw ended before reaching this entrant."
    )

    @classmethod
    def of(cls, entry: DropEntry) -> EntryRead:
        return cls.model_validate(entry)


class MyDrop(BaseModel):
    """A drop as one member sees it."""

    id: uuid.UUID
    perk_id: uuid.UUID
    method: DropMethod
    units: int
    opens_at: datetime = Field(
        description="When I may enter (earlier if my tier has early access)."
    )
    closes_at: datetime
    early_access: bool
    status: DropStatus
    entry: EntryRead | None


class AuditLine(BaseModel):
    position: int
    member_id: uuid.UUID
    entered_at: datetime
    outcome: str = Field(description="won, skipped:<error code>, or not_reached")


class DropAudit(BaseModel):
    """Everything needed to re-run a draw outside Kinfolk and check its winners."""

    drop_id: uuid.UUID
    perk_id: uuid.UUID
    method: DropMethod
    units: int
    status: DropStatus
    drawn_at: datetime | None
    seed_sha256: str
    seed: str | None = Field(description="Revealed once drawn.")
    entrants_count: int
    entrants_sha256: str = Field(
        description="SHA-256 of the sorted entrant ids (lower-case, hyphenated), joined by \\n."
    )
    entrants: list[uuid.UUID] = Field(description="Entrant ids, sorted as strings.")
    order: list[AuditLine] = Field(description="The draw's order, once drawn.")
    winners: list[uuid.UUID]
    procedure: str
