"""The testimonials table: a post the brand asked to feature, and the author's answer."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import DateTime, ForeignKey, Index, Text, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.community.models import Base, brand_column, created_column, uuid_pk
from services.kernel.db import text_enum


class FeatureStatus(StrEnum):
    REQUESTED = "requested"  # staff asked; waiting for the author's consent
    LIVE = "live"  # the author accepted: shown next to the products it names
    DECLINED = "declined"  # the author said no; the brand may not ask again for this post
    WITHDRAWN = "withdrawn"  # staff unfeatured it (before or after the author's answer)


class FeaturedPost(Base):
    """A testimonial: a published post or review the brand features with its author's consent.

    (Not named `Testimonial`: pytest would take a class starting with "Test" for a test.)
    """

    __tablename__ = "testimonials"
    __table_args__ = (
        # At most one open (asked or live) feature per post; declined and withdrawn ones stay
        # as history.
        Index(
            "uq_testimonials_open_post",
            "post_id",
            unique=True,
            postgresql_where=text("status IN ('requested', 'live')"),
        ),
        # Live testimonials next to a product: by sku, newest first.
        Index(
            "ix_testimonials_live_skus",
            "skus",
            postgresql_using="gin",
            postgresql_where=text("status = 'live'"),
        ),
        Index(None, "brand_id", "status", text("id DESC")),
        Index(None, "author_id", text("id DESC")),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    brand_id: Mapped[uuid.UUID] = brand_column()
    post_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("posts.id"))
    author_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.member_id"))
    status: Mapped[FeatureStatus] = mapped_column(text_enum(FeatureStatus, "feature_status"))
    # The products it is shown with: the review's sku and the skus the post mentions (fixed
    # once written: authors edit text, tags and media only).
    skus: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    # What staff tell the author when asking ("We'd love to show your review on the product page").
    note: Mapped[str | None] = mapped_column(Text)
    requested_by: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))  # the staff key
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_column()
