"""Events of the community's prompts."""

from __future__ import annotations

import uuid
from typing import Literal

from services.community.models import ContentStatus
from services.kernel.events import Event, EventData


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


EVENTS: tuple[type[Event], ...] = (PromptAnswered,)
