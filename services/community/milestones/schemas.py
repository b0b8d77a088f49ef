"""Pydantic I/O of milestones and the prompts the brand makes of them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from services.community.models import AudienceKind
from services.community.prompts.schemas import Body, Milestone, Points, PromptCreate, Tags, Title
from services.kernel.schemas import Input, UtcDatetime


class MilestoneRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    milestone: str
    reached_at: datetime


class MilestonePromptCreate(Input):
    """A prompt for the members who reached a milestone, e.g. for "anniversary:3": "Three years
    with us: share your favourite find". The fields are those of `POST /community/v1/prompts`,
    with the audience fixed to the milestone."""

    milestone: Milestone
    title: Title
    body: Body = ""
    tags: Tags = []
    starts_at: UtcDatetime | None = Field(default=None, description="Opens at; omitted: now.")
    ends_at: UtcDatetime | None = Field(default=None, description="Closes at; null: never.")
    points: Points | None = None

    def as_prompt(self) -> PromptCreate:
        """The same prompt as the prompts part takes it. Every field was validated here with
        the prompts part's own types, so nothing is validated twice; the prompts service checks
        the window and the audience on the whole prompt."""
        return PromptCreate.model_construct(
            title=self.title,
            body=self.body,
            tags=self.tags,
            starts_at=self.starts_at,
            ends_at=self.ends_at,
            audience=AudienceKind.MILESTONE,
            audience_tier_ids=[],
            audience_group_ids=[],
            audience_milestone=self.milestone,
            points=self.points,
        )
