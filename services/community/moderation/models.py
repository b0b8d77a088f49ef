"""Moderation's tables: reports, decisions, the blocklist, per-brand settings, the labelled
examples a brand supplies and the text classifier trained on them."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.community.models import (
    Base,
    Comment,
    Post,
    brand_column,
    created_column,
    uuid_pk,
)
from services.kernel.db import text_enum


class TargetKind(StrEnum):
    POST = "post"
    COMMENT = "comment"
    MEMBER = "member"


class ReportReason(StrEnum):
    """The fixed set of reasons a member can give; `other` wants a text."""

    SPAM = "spam"
    HARASSMENT = "harassment"
    HATE = "hate"
    NUDITY = "nudity"
    VIOLENCE = "violence"
    MISINFORMATION = "misinformation"
    INTELLECTUAL_PROPERTY = "intellectual_property"
    IMPERSONATION = "impersonation"
    OFF_TOPIC = "off_topic"
    OTHER = "other"


class ReportStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"  # a decision on its target was made


class Action(StrEnum):
    APPROVE = "approve"  # held content is published; reports on it are dismissed
    REMOVE = "remove"  # the content is removed from every feed
    WARN = "warn"  # the author is warned; nothing else changes
    SUSPEND = "suspend"  # the author is suspended from the community (staff only)


class Label(StrEnum):
    OK = "ok"
    SPAM = "spam"
    ABUSIVE = "abusive"


class Report(Base):
    """A member's report of a post, a comment or another member."""

    __tablename__ = "reports"
    __table_args__ = (
        # One open report per reporter and target; a second while it is open returns the first.
        Index(
            "uq_reports_open",
            "reporter_id",
            "target_kind",
            "target_id",
            unique=True,
            postgresql_where=text("status = 'open'"),
        ),
        Index("ix_reports_open_queue", "brand_id", "id", postgresql_where=text("status = 'open'")),
        Index(None, "target_id", "status"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    brand_id: Mapped[uuid.UUID] = brand_column()
    reporter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.member_id"))
    target_kind: Mapped[TargetKind] = mapped_column(text_enum(TargetKind, "target_kind"))
    target_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    # Whose content it is (or the reported member): the author a decision acts on.
    target_author_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.member_id"))
    # The group the content is in, so the group's moderators see it in their queue.
    group_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("groups.id"))
    reason: Mapped[ReportReason] = mapped_column(text_enum(ReportReason, "report_reason"))
    note: Mapped[str | None] = mapped_column(Text)
    status: Mapped[ReportStatus] = mapped_column(text_enum(ReportStatus, "report_status"))
    decision_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("decisions.id"))
    created_at: Mapped[datetime] = created_column()
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Decision(Base):
    """A moderation decision: what was done to which target, by whom, why and when."""

    __tablename__ = "decisions"
    __table_args__ = (
        CheckConstraint(
            "(decided_by_key_id IS NULL) <> (decided_by_member_id IS NULL)", name="one_decider"
        ),
        Index(None, "brand_id", "target_id"),
        Index(None, "brand_id", "target_author_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    brand_id: Mapped[uuid.UUID] = brand_column()
    target_kind: Mapped[TargetKind] = mapped_column(text_enum(TargetKind, "target_kind"))
    target_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    target_author_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.member_id"))
    group_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("groups.id"))
    action: Mapped[Action] = mapped_column(text_enum(Action, "moderation_action"))
    reason: Mapped[str] = mapped_column(Text)
    # For `suspend`: how long (null with a suspension: indefinitely) and until when.
    suspend_days: Mapped[int | None] = mapped_column(Integer)
    suspended_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Who decided: a staff API key, or a group moderator (a member).
    decided_by_key_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    decided_by_member_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("members.member_id"))
    resolved_reports: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[datetime] = created_column()


class BlockedTerm(Base):
    """A word or phrase the brand does not want published: a match holds the content."""

    __tablename__ = "blocked_terms"
    __table_args__ = (UniqueConstraint("brand_id", "term"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    brand_id: Mapped[uuid.UUID] = brand_column()
    term: Mapped[str] = mapped_column(Text)  # normalised: NFKC, case-folded, spaces collapsed
    created_at: Mapped[datetime] = created_column()


class ModerationSettings(Base):
    """A brand's screening settings; a brand without a row uses the defaults in `schemas`."""

    __tablename__ = "moderation_settings"

    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    new_member_max_links: Mapped[int] = mapped_column(Integer)
    new_member_max_mentions: Mapped[int] = mapped_column(Integer)
    duplicate_window_minutes: Mapped[int] = mapped_column(Integer)
    duplicate_same_author: Mapped[int] = mapped_column(Integer)
    duplicate_other_authors: Mapped[int] = mapped_column(Integer)
    duplicate_min_length: Mapped[int] = mapped_column(Integer)
    classifier_threshold: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = created_column()


class TrainingExample(Base):
    """A labelled text the brand supplies to train its classifier."""

    __tablename__ = "training_examples"
    __table_args__ = (Index(None, "brand_id", "id"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    brand_id: Mapped[uuid.UUID] = brand_column()
    text: Mapped[str] = mapped_column(Text)
    label: Mapped[Label] = mapped_column(text_enum(Label, "training_label"))
    created_at: Mapped[datetime] = created_column()


class Classifier(Base):
    """The brand's trained text classifier, kept as plain parameters (vocabulary, idf weights,
    coefficients) rather than a pickle: loading it runs no code, and any version of scikit-learn
    can rebuild it."""

    __tablename__ = "classifiers"

    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONB)
    example_count: Mapped[int] = mapped_column(Integer)
    label_counts: Mapped[dict[str, int]] = mapped_column(JSONB)
    trained_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# Screening looks up recent copies of a body (duplicate spam); the queue walks held content.
Index("ix_posts_body_hash", Post.brand_id, Post.body_hash, Post.created_at)
Index("ix_comments_body_hash", Comment.brand_id, Comment.body_hash, Comment.created_at)
Index("ix_posts_held", Post.brand_id, Post.id, postgresql_where=text("status = 'held'"))
Index("ix_comments_held", Comment.brand_id, Comment.id, postgresql_where=text("status = 'held'"))
