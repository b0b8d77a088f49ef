"""Pydantic I/O of posts, comments, reactions and bookmarks. Inputs refuse unknown fields and
trim text; a post's body is 1 to 10,000 characters once trimmed."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    model_validator,
)

from services.community.models import Comment, ContentStatus, Post, PostKind
from services.community.posts.events import ReactionKind
from services.kernel.schemas import Input

MAX_BODY = 10_000
MAX_COMMENT = 5_000
MAX_MEDIA = 10
MAX_ALT = 500
MAX_URL = 2_048
MAX_TAGS = 20
MAX_TAG = 50
MAX_SKUS = 20
MAX_SKU = 64


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http or https URL with a host")
    return value


def normalise_tag(value: str) -> str:
    """Tags compare ignoring case, spacing and a leading `#`."""
    return " ".join(value.strip().lstrip("#").split()).lower()


def _tags(values: list[str]) -> list[str]:
    """Normalised tags (`normalise_tag`), duplicates dropped."""
    seen: dict[str, None] = {}
    for value in values:
        tag = normalise_tag(value)
        if not 1 <= len(tag) <= MAX_TAG:
            raise ValueError(f"each tag must be 1 to {MAX_TAG} characters")
        seen.setdefault(tag, None)
    if len(seen) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags")
    return list(seen)


def _skus(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


Body = Annotated[str, StringConstraints(min_length=1, max_length=MAX_BODY)]
CommentBody = Annotated[str, StringConstraints(min_length=1, max_length=MAX_COMMENT)]
Url = Annotated[str, StringConstraints(min_length=1, max_length=MAX_URL), AfterValidator(_http_url)]
Sku = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_SKU)]
Tags = Annotated[
    list[Annotated[str, StringConstraints(max_length=MAX_TAG * 2)]],
    Field(max_length=MAX_TAGS * 2, description=f"At most {MAX_TAGS}, lower-cased."),
    AfterValidator(_tags),
]
Skus = Annotated[
    list[Sku],
    Field(max_length=MAX_SKUS, description="Product skus mentioned."),
    AfterValidator(_skus),
]


class Media(Input):
    url: Url = Field(description="An http or https URL.")
    alt: Annotated[str, StringConstraints(max_length=MAX_ALT)] = ""


MediaList = Annotated[list[Media], Field(max_length=MAX_MEDIA, description="At most 10.")]


class PostCreate(Input):
    """A post, or with `kind: review` a review of `review_sku` rated 1 to 5."""

    kind: PostKind = PostKind.POST
    body: Body
    media: MediaList = []
    tags: Tags = []
    skus: Skus = []
    group_id: uuid.UUID | None = None
    review_sku: Sku | None = None
    rating: Annotated[StrictInt, Field(ge=1, le=5)] | None = None

    @model_validator(mode="after")
    def _review_fields(self) -> Self:
        is_review = self.kind == PostKind.REVIEW
        if is_review and (self.review_sku is None or self.rating is None):
            raise ValueError("a review needs review_sku and rating (1 to 5)")
        if not is_review and (self.review_sku is not None or self.rating is not None):
            raise ValueError("review_sku and rating belong to reviews (kind: review) only")
        return self


class PostUpdate(Input):
    """What an author may change: the text, tags and media. The post is screened again."""

    body: Body | None = None
    media: MediaList | None = None
    tags: Tags | None = None

    @model_validator(mode="after")
    def _something(self) -> Self:
        if self.body is None and self.media is None and self.tags is None:
            raise ValueError("send at least one of body, media, tags (none may be null)")
        return self


class CommentCreate(Input):
    body: CommentBody
    parent_id: uuid.UUID | None = Field(default=None, description="The comment this replies to.")


class ReactionCreate(Input):
    kind: ReactionKind


# --- Outputs ----------------------------------------------------------------------------------


class Author(BaseModel):
    member_id: uuid.UUID
    display_name: str | None


class PostRead(BaseModel):
    """A post as members see it. `status` is `held` only in its author's own views."""

    id: uuid.UUID
    author: Author
    kind: PostKind
    body: str
    media: list[dict[str, Any]]
    tags: list[str]
    skus: list[str]
    group_id: uuid.UUID | None
    prompt_id: uuid.UUID | None
    review_sku: str | None
    rating: int | None
    incentivised: bool
    status: ContentStatus
    held_reasons: list[str] = Field(description="Why it awaits review; empty unless held.")
    comment_count: int
    reaction_count: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, post: Post, author_name: str | None) -> PostRead:
        return cls(
            id=post.id,
            author=Author(member_id=post.author_id, display_name=author_name),
            kind=post.kind,
            body=post.body,
            media=post.media,
            tags=post.tags,
            skus=post.skus,
            group_id=post.group_id,
            prompt_id=post.prompt_id,
            review_sku=post.review_sku,
            rating=post.rating,
            incentivised=post.incentivised,
            status=post.status,
            held_reasons=post.held_reasons if post.status == ContentStatus.HELD else [],
            comment_count=post.comment_count,
            reaction_count=post.reaction_count,
            created_at=post.created_at,
            updated_at=post.updated_at,
        )


class PostView(PostRead):
    """A post as the calling member sees it, with what they did to it."""

    my_reactions: list[ReactionKind] = Field(description="The kinds I reacted with, sorted.")
    bookmarked: bool = Field(description="Whether the post is in my bookmarks.")


class PostViews(BaseModel):
    """Posts read by id: those the caller may see, newest first."""

    items: list[PostView]


class StaffPostRead(BaseModel):
    """A post as staff see it: every status, with the screening reasons and lifecycle times."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    author_id: uuid.UUID
    kind: PostKind
    body: str
    media: list[dict[str, Any]]
    tags: list[str]
    skus: list[str]
    group_id: uuid.UUID | None
    prompt_id: uuid.UUID | None
    review_sku: str | None
    rating: int | None
    incentivised: bool
    status: ContentStatus
    held_reasons: list[str]
    body_hash: str
    comment_count: int
    reaction_count: int
    created_at: datetime
    updated_at: datetime
    approved_at: datetime | None
    removed_at: datetime | None


class CommentRead(BaseModel):
    id: uuid.UUID
    post_id: uuid.UUID
    parent_id: uuid.UUID | None
    author: Author
    body: str
    status: ContentStatus
    held_reasons: list[str]
    reaction_count: int
    created_at: datetime

    @classmethod
    def of(cls, comment: Comment, author_name: str | None) -> CommentRead:
        return cls(
            id=comment.id,
            post_id=comment.post_id,
            parent_id=comment.parent_id,
            author=Author(member_id=comment.author_id, display_name=author_name),
            body=comment.body,
            status=comment.status,
            held_reasons=comment.held_reasons if comment.status == ContentStatus.HELD else [],
            reaction_count=comment.reaction_count,
            created_at=comment.created_at,
        )


class StaffCommentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    post_id: uuid.UUID
    parent_id: uuid.UUID | None
    author_id: uuid.UUID
    body: str
    status: ContentStatus
    held_reasons: list[str]
    body_hash: str
    reaction_count: int
    created_at: datetime
    approved_at: datetime | None
    removed_at: datetime | None


class ReactionRead(BaseModel):
    post_id: uuid.UUID
    comment_id: uuid.UUID | None
    kind: ReactionKind
    reaction_count: int = Field(description="The target's reactions, of every kind, now.")


class BookmarkRead(BaseModel):
    post_id: uuid.UUID
    bookmarked_at: datetime


class BookmarkedPost(BaseModel):
    bookmark_id: uuid.UUID = Field(description="The bookmark's id: the list's order and cursor.")
    bookmarked_at: datetime
    post: PostRead
