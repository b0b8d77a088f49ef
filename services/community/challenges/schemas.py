"""Pydantic I/O of challenges and members' progress. Inputs refuse unknown fields and trim text;
counts and points are strict integers."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    field_validator,
    model_validator,
)

from services.community.challenges.models import ChallengeAction, ChallengeStep
from services.kernel.schemas import Input, UtcDatetime

MAX_STEPS = len(ChallengeAction)
MAX_TARGET = 1_000
MAX_POINTS = 1_000_000_000

Title = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(max_length=5_000)]
Points = Annotated[
    StrictInt,
    Field(
        ge=1,
        le=MAX_POINTS,
        description="Advertised for completing it; rewards pays them from `challenge.completed`.",
    ),
]


class StepIn(Input):
    action: ChallengeAction
    target: Annotated[StrictInt, Field(ge=1, le=MAX_TARGET, description="How many times.")]


def _one_step_per_action(steps: list[StepIn]) -> list[StepIn]:
    actions = [step.action for step in steps]
    if len(set(actions)) != len(actions):
        raise ValueError("each action may appear in one step only")
    return steps


Steps = Annotated[
    list[StepIn],
    Field(
        min_length=1,
        max_length=MAX_STEPS,
        description="Counted side by side, in any order; each action in one step only.",
    ),
]


class ChallengeCreate(Input):
    title: Title
    description: Description = ""
    starts_at: UtcDatetime
    ends_at: UtcDatetime
    points: Points | None = None
    badge_id: uuid.UUID | None = Field(default=None, description="Awarded at completion.")
    steps: Steps

    @field_validator("steps", mode="after")
    @classmethod
    def _steps(cls, steps: list[StepIn]) -> list[StepIn]:
        return _one_step_per_action(steps)

    @model_validator(mode="after")
    def _window(self) -> Self:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class ChallengeUpdate(Input):
    """Changes to a challenge: omitted fields stay, null clears `points` or `badge_id`. Once it
    has started, `starts_at` and `steps` are fixed."""

    title: Title | None = None
    description: Description | None = None
    starts_at: UtcDatetime | None = None
    ends_at: UtcDatetime | None = None
    points: Points | None = None
    badge_id: uuid.UUID | None = None
    steps: Steps | None = None

    @field_validator("title", "description", "starts_at", "ends_at", "steps", mode="after")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null; omit the field to keep it")
        return value

    @field_validator("steps", mode="after")
    @classmethod
    def _steps(cls, steps: list[StepIn]) -> list[StepIn]:
        return _one_step_per_action(steps)


# --- Outputs ------------------------------------------------------------------------------------


class StepRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    action: ChallengeAction
    target: int

    @classmethod
    def of(cls, step: ChallengeStep) -> StepRead:
        return cls(action=step.action, target=step.target)


class ChallengeRead(BaseModel):
    id: uuid.UUID
    title: str
    description: str
    starts_at: datetime
    ends_at: datetime
    points: int | None
    badge_id: uuid.UUID | None
    steps: list[StepRead]
    participant_count: int
    completed_count: int
    created_at: datetime


class StepProgress(BaseModel):
    action: ChallengeAction
    target: int
    count: int = Field(description="Counted so far, up to the target.")
    done: bool


class Streak(BaseModel):
    current: int = Field(
        description="Consecutive UTC days with a counted action, up to today (or yesterday, "
        "while today may still extend it); 0 once a day is missed."
    )
    longest: int
    last_active_day: date | None


class ProgressRead(BaseModel):
    member_id: uuid.UUID
    joined_at: datetime
    completed_at: datetime | None
    steps: list[StepProgress]
    streak: Streak


class MyChallengeRead(BaseModel):
    challenge: ChallengeRead
    progress: ProgressRead | None = Field(description="Null until I join it.")
