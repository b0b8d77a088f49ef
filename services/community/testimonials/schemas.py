"""Pydantic I/O of testimonials."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, StringConstraints

from services.community.models import Post, PostKind
from services.community.testimonials.models import FeaturedPost, FeatureStatus
from services.kernel.schemas import Input

Note = Annotated[str, StringConstraints(min_length=1, max_length=1_000)]


class FeatureRequest(Input):
    post_id: uuid.UUID
    note: Note | None = None


class TestimonialRead(BaseModel):
    """A testimonial with the post it shows, as the apps display it next to a product."""

    id: uuid.UUID
    status: FeatureStatus
    note: str | None
    requested_at: datetime
    answered_at: datetime | None
    withdrawn_at: datetime | None
    post_id: uuid.UUID
    author_id: uuid.UUID
    author_name: str | None
    kind: PostKind
    body: str
    media: list[dict[str, Any]]
    rating: int | None
    review_sku: str | None
    skus: list[str]
    posted_at: datetime

    @classmethod
    def of(cls, feature: FeaturedPost, post: Post, author_name: str | None) -> TestimonialRead:
        return cls(
            id=feature.id,
            status=feature.status,
            note=feature.note,
            requested_at=feature.requested_at,
            answered_at=feature.answered_at,
            withdrawn_at=feature.withdrawn_at,
            post_id=post.id,
            author_id=post.author_id,
            author_name=author_name,
            kind=post.kind,
            body=post.body,
            media=post.media,
            rating=post.rating,
            review_sku=post.review_sku,
            skus=feature.skus,
            posted_at=post.created_at,
        )
