"""Tables of reputation and badges.

`reputation_events` is the history behind `CommunityMember.reputation`: every change is a row,
so the score always equals the sum of its member's deltas, and what a piece of content earned
can be found and taken back when the content is removed.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.community.models import Base, brand_column, created_column, uuid_pk
from services.kernel.db import text_enum


class ReputationReason(StrEnum):
    POST_APPROVED = "post_approved"
    COMMENT_APPROVED = "comment_approved"
    REACTION_RECEIVED = "reaction_received"
    REACTION_REMOVED = "reaction_removed"  # the reacting member took it back
    CONTENT_REMOVED = "content_removed"  # what the removed post or comment had earned


class ReputationEvent(Base):
    """One change of a member's reputation.

    `key` names what earned the points ("post:<id>", "comment:<id>",
    "reaction:<member>:<target>:<kind>"); the sum of a key's deltas is what that grant still
    contributes, 0 or its amount, so a grant is never paid twice and never taken back twice.
    `content_id` is the post or comment the points belong to, so removing it takes back every
    key under it.
    """

    __tablename__ = "reputation_events"
    __table_args__ = (
        # A redelivered event never changes anything twice (the inbox prevents it too).
        UniqueConstraint("source_event_id", "member_id", "key"),
        Index(None, "member_id", "key"),
        Index(None, "member_id", "content_id"),
        Index(None, "member_id", "id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    brand_id: Mapped[uuid.UUID] = brand_column()
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.member_id"))
    delta: Mapped[int] = mapped_column(Integer)
    reason: Mapped[ReputationReason] = mapped_column(
        text_enum(ReputationReason, "reputation_reason")
    )
    key: Mapped[str] = mapped_column(Text)
    content_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    source_event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Badge(Base):
    """A badge the brand's staff define; awarded by challenges and by reputation milestones."""

    __tablename__ = "badges"
    __table_args__ = (
        UniqueConstraint("brand_id", "name"),
        CheckConstraint(
            "reputation_threshold IS NULL OR reputation_threshold > 0",
            name="threshold_positive",
        ),
        Index(None, "brand_id", "reputation_threshold"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    brand_id: Mapped[uuid.UUID] = brand_column()
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, server_default="")
    icon_url: Mapped[str | None] = mapped_column(Text)
    # Awarded automatically to every member whose reputation reaches it (null: not by reputation).
    reputation_threshold: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = created_column()


class BadgeSource(StrEnum):
    CHALLENGE = "challenge"
    REPUTATION = "reputation"


class MemberBadge(Base):
    """A badge a member holds: once per member and badge, kept for good."""

    __tablename__ = "member_badges"
    __table_args__ = (
        UniqueConstraint("badge_id", "member_id"),
        Index(None, "member_id", "id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    brand_id: Mapped[uuid.UUID] = brand_column()
    badge_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("badges.id"))
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.member_id"))
    source: Mapped[BadgeSource] = mapped_column(text_enum(BadgeSource, "badge_source"))
    # The challenge whose completion awarded it, when `source` is challenge.
    challenge_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    awarded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
