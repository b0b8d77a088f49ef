"""Pydantic I/O of reputation, trust levels and badges. Inputs refuse unknown fields."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    StrictInt,
    StringConstraints,
    field_validator,
)

from services.community.members.abilities import Ability
from services.community.reputation.models import BadgeSource, ReputationReason
from services.community.reputation.trust import MAX_LEVEL
from services.kernel.schemas import Input

MAX_THRESHOLD = 1_000_000_000

Name = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Description = Annotated[str, StringConstraints(max_length=2_000)]
Threshold = Annotated[
    StrictInt,
    Field(
        ge=1,
        le=MAX_THRESHOLD,
        description="Awarded to every member whose reputation reaches it; null: not by reputation.",
    ),
]


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# --- Reputation and trust -----------------------------------------------------------------------


class ReputationRead(Output):
    member_id: uuid.UUID
    reputation: int
    trust_level: int = Field(description="0 new, 1 basic, 2 member, 3 regular, 4 leader.")
    trust_level_locked: bool = Field(
        description="Set by staff: the level does not follow the reputation until unlocked."
    )
    abilities: list[Ability] = Field(description="What the trust level unlocks.")
    next_level: int | None = Field(description="The next level; null at the top.")
    next_level_at: int | None = Field(description="The reputation the next level needs.")


class ReputationEventRead(Output):
    id: uuid.UUID
    delta: int
    reason: ReputationReason
    key: str = Field(description="What earned it: post:<id>, comment:<id> or a reaction.")
    content_id: uuid.UUID = Field(description="The post or comment it belongs to.")
    source_event_id: uuid.UUID = Field(description="The community event that caused it.")
    created_at: datetime


class TrustLevelSet(Input):
    trust_level: Annotated[StrictInt, Field(ge=0, le=MAX_LEVEL)]


# --- Badges -------------------------------------------------------------------------------------


class BadgeCreate(Input):
    name: Name
    description: Description = ""
    icon_url: HttpUrl | None = Field(default=None, description="An http or https URL.")
    reputation_threshold: Threshold | None = None


class BadgeUpdate(Input):
    """Changes to a badge: omitted fields stay, null clears `icon_url` or
    `reputation_threshold`. A new threshold applies from the next reputation change."""

    name: Name | None = None
    description: Description | None = None
    icon_url: HttpUrl | None = None
    reputation_threshold: Threshold | None = None

    @field_validator("name", "description", mode="after")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null; omit the field to keep it")
        return value


class BadgeRead(Output):
    id: uuid.UUID
    name: str
    description: str
    icon_url: str | None
    reputation_threshold: int | None
    created_at: datetime


class MemberBadgeRead(BaseModel):
    id: uuid.UUID = Field(description="This award's id: the list's order and cursor.")
    badge: BadgeRead
    source: BadgeSource
    challenge_id: uuid.UUID | None
    awarded_at: datetime
