"""Pydantic I/O of prompts. Inputs refuse unknown fields and trim text; points are strict
integers. Whether an audience fits its kind is checked by the service on the whole prompt (the
fields sent merged with the stored ones)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    field_validator,
    model_validator,
)

from services.community.models import AudienceKind
from services.kernel.schemas import Input, UtcDatetime

MAX_TAGS = 20
MAX_TAG = 50
MAX_AUDIENCE_IDS = 50
MAX_POINTS = 1_000_000_000


def _tags(values: list[str]) -> list[str]:
    """Tags compare ignoring case, spacing and a leading `#`, as posts' tags do."""
    seen: dict[str, None] = {}
    for value in values:
        tag = " ".join(value.lstrip("#").split()).lower()
        if not 1 <= len(tag) <= MAX_TAG:
            raise ValueError(f"each tag must be 1 to {MAX_TAG} characters")
        seen.setdefault(tag, None)
    if len(seen) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags")
    return list(seen)


def _unique(values: list[uuid.UUID]) -> list[uuid.UUID]:
    return list(dict.fromkeys(values))


Title = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Body = Annotated[str, StringConstraints(max_length=5_000)]
Tags = Annotated[
    list[Annotated[str, StringConstraints(max_length=MAX_TAG * 2)]],
    Field(max_length=MAX_TAGS * 2, description=f"At most {MAX_TAGS}, lower-cased."),
    AfterValidator(_tags),
]
TierIds = Annotated[
    list[uuid.UUID],
    Field(max_length=MAX_AUDIENCE_IDS, description="With audience `tiers`: who may answer."),
    AfterValidator(_unique),
]
GroupIds = Annotated[
    list[uuid.UUID],
    Field(
        max_length=MAX_AUDIENCE_IDS,
        description="With audience `groups`: active members of any of these groups may answer.",
    ),
    AfterValidator(_unique),
]
Milestone = Annotated[
    str,
    StringConstraints(min_length=1, max_length=120),
    Field(
        description='With audience `milestone`: e.g. "anniversary:3", "tier:Gold", "first_post".'
    ),
]
Points = Annotated[
    StrictInt,
    Field(
        ge=1,
        le=MAX_POINTS,
        description="Advertised for answering; rewards pays them from `prompt.answered`.",
    ),
]


class PromptCreate(Input):
    title: Title
    body: Body = ""
    tags: Tags = []
    starts_at: UtcDatetime | None = Field(default=None, description="Opens at; omitted: now.")
    ends_at: UtcDatetime | None = Field(default=None, description="Closes at; null: never.")
    audience: AudienceKind = AudienceKind.ALL
    audience_tier_ids: TierIds = []
    audience_group_ids: GroupIds = []
    audience_milestone: Milestone | None = None
    points: Points | None = None

    @model_validator(mode="after")
    def _window(self) -> Self:
        if (
            self.starts_at is not None
            and self.ends_at is not None
            and self.ends_at <= self.starts_at
        ):
            raise ValueError("ends_at must be after starts_at")
        return self


class PromptUpdate(Input):
    """Changes to a prompt: omitted fields stay; null clears `ends_at`, `audience_milestone` or
    `points`. Changing `audience` usually comes with its ids (or milestone)."""

    title: Title | None = None
    body: Body | None = None
    tags: Tags | None = None
    starts_at: UtcDatetime | None = None
    ends_at: UtcDatetime | None = None
    audience: AudienceKind | None = None
    audience_tier_ids: TierIds | None = None
    audience_group_ids: GroupIds | None = None
    audience_milestone: Milestone | None = None
    points: Points | None = None

    @field_validator(
        "title",
        "body",
        "tags",
        "starts_at",
        "audience",
        "audience_tier_ids",
        "audience_group_ids",
        mode="after",
    )
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null; omit the field to keep it")
        return value


class PromptRead(BaseModel):
    """A prompt as staff see it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    body: str
    tags: list[str]
    starts_at: datetime
    ends_at: datetime | None
    audience: AudienceKind
    audience_tier_ids: list[uuid.UUID]
    audience_group_ids: list[uuid.UUID]
    audience_milestone: str | None
    points: int | None
    answer_count: int = Field(description="Answers written (held and later removed ones too).")
    created_at: datetime


class OpenPromptRead(BaseModel):
    """A prompt as the members it is for see it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    body: str
    tags: list[str]
    starts_at: datetime
    ends_at: datetime | None
    points: int | None
    answer_count: int
