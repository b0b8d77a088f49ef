"""What the bulk history path takes: posts, comments, reactions and follows with the moments
they happened. Text is validated and normalised as the API does it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

# A post named by its producer's key (in this batch) or by its id (a post already in the brand).
PostRef = str | uuid.UUID


@dataclass(frozen=True, slots=True)
class HistoricPost:
    key: str  # the producer's name for it, unique per brand: its id derives from it
    author_id: uuid.UUID
    body: str
    created_at: datetime  # timezone-aware
    tags: tuple[str, ...] = ()
    kind: str = "post"  # posts only: reviews and prompt answers have rules of their own


@dataclass(frozen=True, slots=True)
class HistoricComment:
    post: PostRef
    author_id: uuid.UUID
    body: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class HistoricReaction:
    post: PostRef
    member_id: uuid.UUID
    kind: str  # a `ReactionKind` value
    created_at: datetime


@dataclass(frozen=True, slots=True)
class HistoricFollow:
    follower_id: uuid.UUID
    followee_id: uuid.UUID
    created_at: datetime


@dataclass(frozen=True, slots=True)
class HistoricContent:
    posts: Sequence[HistoricPost] = ()
    comments: Sequence[HistoricComment] = ()
    reactions: Sequence[HistoricReaction] = ()
    follows: Sequence[HistoricFollow] = ()


@dataclass(frozen=True, slots=True)
class ContentReport:
    posts: int
    comments: int
    reactions: int
    follows: int
    events: int
    held: int = 0  # posts and comments the first pass held for review, as it would online
