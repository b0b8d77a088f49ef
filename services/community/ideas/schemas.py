"""Pydantic I/O of the ideas board. Inputs refuse unknown fields and trim text."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.community.ideas.models import Idea, IdeaCategory, IdeaComment, IdeaStatus
from services.kernel.schemas import Input

MAX_TITLE = 150
MAX_BODY = 5_000
MAX_COMMENT = 2_000
MAX_REPLY = 5_000

Title = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TITLE)]
Body = Annotated[str, StringConstraints(min_length=1, max_length=MAX_BODY)]
CommentBody = Annotated[str, StringConstraints(min_length=1, max_length=MAX_COMMENT)]
Reply = Annotated[str, StringConstraints(min_length=1, max_length=MAX_REPLY)]


class IdeaSort(StrEnum):
    VOTES = "votes"  # most voted first (ties: newest first)
    NEWEST = "newest"


class AnswerStatus(StrEnum):
    """The statuses the brand answers with (`new` is only where an idea starts)."""

    UNDER_REVIEW = IdeaStatus.UNDER_REVIEW.value
    PLANNED = IdeaStatus.PLANNED.value
    LAUNCHED = IdeaStatus.LAUNCHED.value
    DECLINED = IdeaStatus.DECLINED.value


class IdeaCreate(Input):
    title: Title
    body: Body
    category: IdeaCategory


class StatusUpdate(Input):
    status: AnswerStatus
    reply: Reply | None = Field(
        default=None, description="The brand's public answer; omitted keeps the current one."
    )


class CommentCreate(Input):
    body: CommentBody


class IdeaRead(BaseModel):
    id: uuid.UUID
    author_id: uuid.UUID
    author_name: str | None
    title: str
    body: str
    category: IdeaCategory
    status: IdeaStatus
    reply: str | None
    status_changed_at: datetime | None
    vote_count: int
    comment_count: int
    created_at: datetime
    voted: bool | None = Field(
        description="Whether the calling member voted for it; null for staff."
    )

    @classmethod
    def of(cls, idea: Idea, author_name: str | None, voted: bool | None) -> IdeaRead:
        return cls(
            id=idea.id,
            author_id=idea.author_id,
            author_name=author_name,
            title=idea.title,
            body=idea.body,
            category=idea.category,
            status=idea.status,
            reply=idea.reply,
            status_changed_at=idea.status_changed_at,
            vote_count=idea.vote_count,
            comment_count=idea.comment_count,
            created_at=idea.created_at,
            voted=voted,
        )


class CommentRead(BaseModel):
    id: uuid.UUID
    idea_id: uuid.UUID
    author_id: uuid.UUID
    author_name: str | None
    body: str
    created_at: datetime

    @classmethod
    def of(cls, comment: IdeaComment, author_name: str | None) -> CommentRead:
        return cls(
            id=comment.id,
            idea_id=comment.idea_id,
            author_id=comment.author_id,
            author_name=author_name,
            body=comment.body,
            created_at=comment.created_at,
        )


class VoterRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    member_id: uuid.UUID
    voted_at: datetime
