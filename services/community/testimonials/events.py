"""Events of testimonials."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import AwareDatetime

from services.community.models import PostKind
from services.kernel.events import Event, EventData


class PostFeaturedData(EventData):
    testimonial_id: uuid.UUID
    post_id: uuid.UUID
    author_id: uuid.UUID
    kind: PostKind
    review_sku: str | None
    skus: list[str]  # the products it is shown next to
    featured_at: AwareDatetime


class PostFeatured(Event):
    """The author agreed to have the brand feature their post: it is now a live testimonial,
    shown next to its products. The subject is the author, who is told."""

    type: Literal["post.featured"] = "post.featured"
    version: Literal[1] = 1
    data: PostFeaturedData


EVENTS: tuple[type[Event], ...] = (PostFeatured,)
