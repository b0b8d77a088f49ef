"""Pydantic I/O of moderation. Inputs refuse unknown fields and trim text; numbers are strict."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StringConstraints,
    model_validator,
)

from services.community.moderation.models import (
    Action,
    Label,
    ReportReason,
    ReportStatus,
    TargetKind,
)
from services.kernel.schemas import Input

MAX_EXAMPLES_PER_UPLOAD = 1_000
MAX_EXAMPLE_LENGTH = 10_000


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# --- Reports ----------------------------------------------------------------------------------


class ReportCreate(Input):
    """A member's report of a post, a comment or another member."""

    target_kind: TargetKind
    target_id: uuid.UUID
    reason: ReportReason
    text: Annotated[str, StringConstraints(max_length=1_000)] | None = Field(
        default=None, description="What is wrong, in the reporter's words (required for `other`)."
    )

    @model_validator(mode="after")
    def _other_needs_text(self) -> Self:
        if self.reason == ReportReason.OTHER and not self.text:
            raise ValueError("a report with reason `other` needs a `text`")
        return self


class ReportRead(Output):
    id: uuid.UUID
    reporter_id: uuid.UUID
    target_kind: TargetKind
    target_id: uuid.UUID
    target_author_id: uuid.UUID
    group_id: uuid.UUID | None
    reason: ReportReason
    text: str | None = Field(validation_alias="note")
    status: ReportStatus
    decision_id: uuid.UUID | None
    created_at: datetime
    resolved_at: datetime | None


# --- The queue --------------------------------------------------------------------------------


class QueueItem(BaseModel):
    """An open report, or content the automatic first pass held: oldest first."""

    id: uuid.UUID = Field(description="The report's id, or the held post's or comment's.")
    item: Literal["report", "held"]
    target_kind: TargetKind
    target_id: uuid.UUID
    target_author_id: uuid.UUID
    group_id: uuid.UUID | None
    reasons: list[str] = Field(description="The report's reason, or why the content was held.")
    text: str | None = Field(description="The reporter's text (reports only).")
    reporter_id: uuid.UUID | None
    body: str | None = Field(description="The reported or held content (null for a member).")
    created_at: datetime

    @classmethod
    def of(cls, row: object) -> QueueItem:
        return cls.model_validate(row, from_attributes=True)


# --- Decisions --------------------------------------------------------------------------------


class DecisionCreate(Input):
    target_kind: TargetKind
    target_id: uuid.UUID
    action: Action
    reason: Annotated[str, StringConstraints(min_length=1, max_length=1_000)] = Field(
        description="Why: kept with the decision and told to the author."
    )
    suspend_days: Annotated[StrictInt, Field(ge=1, le=3_650)] | None = Field(
        default=None,
        description="For `suspend`: how many days; omitted or null suspends indefinitely.",
    )

    @model_validator(mode="after")
    def _days_only_for_suspend(self) -> Self:
        if self.suspend_days is not None and self.action != Action.SUSPEND:
            raise ValueError("`suspend_days` goes only with the `suspend` action")
        return self


class DecisionRead(Output):
    id: uuid.UUID
    target_kind: TargetKind
    target_id: uuid.UUID
    target_author_id: uuid.UUID
    group_id: uuid.UUID | None
    action: Action
    reason: str
    suspend_days: int | None
    suspended_until: datetime | None = Field(
        description="For `suspend`: until when; null with a suspension means indefinitely."
    )
    decided_by_key_id: uuid.UUID | None = Field(description="The staff API key that decided.")
    decided_by_member_id: uuid.UUID | None = Field(description="The group moderator who decided.")
    resolved_reports: int
    created_at: datetime


# --- Blocklist --------------------------------------------------------------------------------


class BlockedTermCreate(Input):
    term: Annotated[str, StringConstraints(min_length=1, max_length=100)] = Field(
        description="A word or phrase; matched as whole words, ignoring case."
    )


class BlockedTermRead(Output):
    id: uuid.UUID
    term: str
    created_at: datetime


# --- Settings ---------------------------------------------------------------------------------


class SettingsBody(Input):
    """A brand's screening settings. PUT replaces them all; an omitted field takes its default."""

    new_member_max_links: Annotated[StrictInt, Field(ge=0, le=100)] = Field(
        default=2, description="New members (trust level 0): more links than this are held."
    )
    new_member_max_mentions: Annotated[StrictInt, Field(ge=0, le=100)] = Field(
        default=2, description="New members: more @mentions than this are held."
    )
    duplicate_window_minutes: Annotated[StrictInt, Field(ge=1, le=43_200)] = Field(
        default=1_440, description="How far back duplicate-spam detection looks."
    )
    duplicate_same_author: Annotated[StrictInt, Field(ge=1, le=100)] = Field(
        default=1,
        description="Held when the author already wrote the same text this many times within "
        "the window.",
    )
    duplicate_other_authors: Annotated[StrictInt, Field(ge=1, le=1_000)] = Field(
        default=2,
        description="Held when this many other authors wrote the same text within the window.",
    )
    duplicate_min_length: Annotated[StrictInt, Field(ge=0, le=10_000)] = Field(
        default=20,
        description='Shorter texts ("Love it!") are never treated as duplicate spam.',
    )
    classifier_threshold: Annotated[StrictFloat | StrictInt, Field(gt=0, le=1)] = Field(
        default=0.8,
        description="Held when the classifier's probability that the text is not ok is above "
        "this; 1 turns the classifier off.",
    )


class SettingsRead(SettingsBody):
    model_config = ConfigDict(from_attributes=True, extra="ignore")


DEFAULT_SETTINGS = SettingsBody()


# --- Classifier -------------------------------------------------------------------------------


class ExampleIn(Input):
    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_EXAMPLE_LENGTH)]
    label: Label


class ExamplesUpload(Input):
    examples: Annotated[list[ExampleIn], Field(min_length=1, max_length=MAX_EXAMPLES_PER_UPLOAD)]


class ExamplesAdded(BaseModel):
    added: int
    total: int


class ExampleRead(Output):
    id: uuid.UUID
    text: str
    label: Label
    created_at: datetime


class ClassifierRead(Output):
    version: int
    example_count: int
    label_counts: dict[str, int]
    trained_at: datetime
