"""Tables of the ideas board: ideas, one vote per member and idea, and comments on ideas."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import DateTime, ForeignKey, Index, Integer, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from services.community.models import Base, brand_column, created_column, uuid_pk
from services.kernel.db import text_enum


class IdeaCategory(StrEnum):
    """What the idea is about: a fixed set, so the board can be filtered meaningfully."""

    PRODUCT = "product"  # a product, shade, size or formula the brand could make
    PROGRAM = "program"  # the loyalty program: perks, tiers, points
    EXPERIENCE = "experience"  # events, classes, stores
    COMMUNITY = "community"  # the community itself
    OTHER = "other"


class IdeaStatus(StrEnum):
    NEW = "new"  # proposed, not answered yet by the brand
    UNDER_REVIEW = "under_review"
    PLANNED = "planned"
    LAUNCHED = "launched"
    DECLINED = "declined"


class Idea(Base):
    """A member's product or program idea; others vote and comment, the brand answers."""

    __tablename__ = "ideas"
    __table_args__ = (
        # The board's two orders: most voted, and newest (ids are uuid7).
        Index("ix_ideas_by_votes", "brand_id", text("vote_count DESC"), text("id DESC")),
        Index(None, "brand_id", text("id DESC")),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    brand_id: Mapped[uuid.UUID] = brand_column()
    author_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.member_id"))
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    category: Mapped[IdeaCategory] = mapped_column(text_enum(IdeaCategory, "idea_category"))
    status: Mapped[IdeaStatus] = mapped_column(text_enum(IdeaStatus, "idea_status"))
    # The brand's public answer, shown with the status.
    reply: Mapped[str | None] = mapped_column(Text)
    status_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Kept with the votes and comments in the same transaction, for the board's order.
    vote_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    comment_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[datetime] = created_column()


class IdeaVote(Base):
    """One up-vote per member and idea (the unique key is what refuses a double vote)."""

    __tablename__ = "idea_votes"
    __table_args__ = (UniqueConstraint("idea_id", "member_id"), Index(None, "idea_id", "id"))

    id: Mapped[uuid.UUID] = uuid_pk()  # uuid7: voters are paged in the order they voted
    brand_id: Mapped[uuid.UUID] = brand_column()
    idea_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ideas.id", ondelete="CASCADE"))
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.member_id"))
    created_at: Mapped[datetime] = created_column()


class IdeaComment(Base):
    """A comment on an idea: flat (ideas are a suggestion box, not a forum thread)."""

    __tablename__ = "idea_comments"
    __table_args__ = (Index(None, "idea_id", "id"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    brand_id: Mapped[uuid.UUID] = brand_column()
    idea_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ideas.id", ondelete="CASCADE"))
    author_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.member_id"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = created_column()
