"""Events about posts and comments: the contract with rewards (content points), the
recommender, marketing and webhooks."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Literal

from services.community.models import ContentStatus, PostKind
from services.kernel.events import Event, EventData


class PostData(EventData):
    post_id: uuid.UUID
    author_id: uuid.UUID
    kind: PostKind
    status: ContentStatus
    group_id: uuid.UUID | None
    prompt_id: uuid.UUID | None
    review_sku: str | None
    rating: int | None
    tags: list[str]
    skus: list[str]
    incentivised: bool


class PostCreated(Event):
    """A post was written: `status` is `published` when the automatic first pass approved it
    (a `post.approved` follows in the same transaction) or `held` for review."""

    type: Literal["post.created"] = "post.created"
    version: Literal[1] = 1
    data: PostData


class PostApproved(Event):
    """The post is public: approved by the automatic first pass or by a moderator."""

    type: Literal["post.approved"] = "post.approved"
    version: Literal[1] = 1
    data: PostData


class PostRemovedData(PostData):
    removed_by: Literal["author", "moderator"]
    reason: str | None


class PostRemoved(Event):
    """The post is gone from every feed; points tied to it are voided or taken back."""

    type: Literal["post.removed"] = "post.removed"
    version: Literal[1] = 1
    data: PostRemovedData


class CommentData(EventData):
    comment_id: uuid.UUID
    post_id: uuid.UUID
    post_author_id: uuid.UUID
    parent_id: uuid.UUID | None
    author_id: uuid.UUID
    status: ContentStatus


class CommentCreated(Event):
    type: Literal["comment.created"] = "comment.created"
    version: Literal[1] = 1
    data: CommentData


class ReactionKind(StrEnum):
    LOVE = "love"
    HELPFUL = "helpful"
    WOW = "wow"
    HAHA = "haha"
    SUPPORT = "support"


class ReactionData(EventData):
    member_id: uuid.UUID  # who reacted
    kind: ReactionKind
    post_id: uuid.UUID
    comment_id: uuid.UUID | None  # set when the reaction is to a comment on the post
    target_author_id: uuid.UUID  # whose content it is: reactions build their reputation


class ReactionAdded(Event):
    type: Literal["reaction.added"] = "reaction.added"
    version: Literal[1] = 1
    data: ReactionData


class CommentApproved(Event):
    """A held comment was approved by a moderator and is now public."""

    type: Literal["comment.approved"] = "comment.approved"
    version: Literal[1] = 1
    data: CommentData


class CommentRemovedData(CommentData):
    removed_by: Literal["author", "moderator"]
    reason: str | None


class CommentRemoved(Event):
    """The comment is gone from its thread; reputation earned from it is taken back."""

    type: Literal["comment.removed"] = "comment.removed"
    version: Literal[1] = 1
    data: CommentRemovedData


class ReactionRemoved(Event):
    """A member took a reaction back: whatever `reaction.added` earned its target is undone."""

    type: Literal["reaction.removed"] = "reaction.removed"
    version: Literal[1] = 1
    data: ReactionData


EVENTS: tuple[type[Event], ...] = (
    PostCreated,
    PostApproved,
    PostRemoved,
    CommentCreated,
    CommentApproved,
    CommentRemoved,
    ReactionAdded,
    ReactionRemoved,
)
