"""Events of the community's prompts."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import AwareDatetime

from services.community.models import AudienceKind, ContentStatus
from services.kernel.events import Event, EventData


class PromptPublishedData(EventData):
    """A prompt as members will see it: every field, so the last event alone describes it."""

    prompt_id: uuid.UUID
    title: str
    body: str
    tags: list[str]
    starts_at: AwareDatetime
    ends_at: AwareDatetime | None  # null: open-ended
    audience: AudienceKind
    audience_tier_ids: list[uuid.UUID]  # for a `tiers` audience; empty otherwise


class PromptPublished(Event):
    """A prompt was written or changed by staff (its window, text, audience...)."""

    type: Literal["prompt.published"] = "prompt.published"
    version: Literal[1] = 1
    data: PromptPublishedData


class PromptDeletedData(EventData):
    prompt_id: uuid.UUID


class PromptDeleted(Event):
    """Staff deleted a prompt nobody had answered: it is gone."""

    type: Literal["prompt.deleted"] = "prompt.deleted"
    version: Literal[1] = 1
    data: PromptDeletedData


class PromptAnsweredData(EventData):
    prompt_id: uuid.UUID
    post_id: uuid.UUID  # the answer, a post: its `post.approved` / `post.removed` follow it
    member_id: uuid.UUID
    status: ContentStatus  # the answer's status when written: published or held for review
    points: int | None  # the prompt's advertised points; null for a prompt without points


class PromptAnswered(Event):
    """A member answered a prompt with a post (in the same transaction as its `post.created`).

    Points for it stay pending while the answer is held and are voided if it is removed: key
    them by `post_id`."""

    type: Literal["prompt.answered"] = "prompt.answered"
    version: Literal[1] = 1
    data: PromptAnsweredData


EVENTS: tuple[type[Event], ...] = (PromptPublished, PromptDeleted, PromptAnswered)
