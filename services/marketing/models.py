"""The marketing schema: a journal of every event about members that marketing consumed, the
member-360 projection computed from it, segments with their versioned membership, exports and
their schedules, and the brand's churn models.

The journal is the projection's only source: `audience.repository.refresh_members` computes a
member's 360 row from the member's journal rows alone, so consuming an event and rebuilding
from the history run the same statement and cannot disagree.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Identity,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.kernel.db import make_base, text_enum
from services.kernel.idempotency import IdempotencyStore, idempotency_table
from services.kernel.outbox import Outbox, inbox_table, outbox_table

SCHEMA = "marketing"

if TYPE_CHECKING:
    # mypy cannot subclass a base made at run time; to it, Base is a plain declarative base.
    class Base(DeclarativeBase): ...
else:
    Base = make_base(SCHEMA)

OUTBOX = Outbox(outbox_table(Base.metadata))
INBOX = inbox_table(Base.metadata)
IDEMPOTENCY = IdempotencyStore(idempotency_table(Base.metadata))


class ActivityKind(StrEnum):
    """What a journal row records. Event conditions in segments name these."""

    PROFILE = "profile"  # member.created / member.updated: `data` holds the profile
    CONSENT = "consent"  # `ref` the purpose, `points` 1 granted or 0 withdrawn
    PURCHASE = "purchase"  # `amount_minor`, `categories` of its lines, `ref` the order id
    RETURN = "return"  # `amount_minor` returned, `categories`, `ref` the order id
    POINTS = "points"  # a ledger movement: `points` signed, `category` the entry kind, `data`
    TIER = "tier"  # `ref` the new tier's id, `category` its name
    REDEMPTION = "redemption"  # `ref` the perk, `category` its category, `points` its cost
    REDEMPTION_CANCELLED = "redemption_cancelled"
    DROP_ENTRY = "drop_entry"  # `ref` the perk
    POST = "post"  # `ref` the post
    COMMENT = "comment"
    REACTION = "reaction"
    REACTION_REMOVED = "reaction_removed"
    ANSWER = "answer"  # a prompt answered: `ref` the prompt
    BOOKING = "booking"  # `ref` the experience
    BOOKING_CANCELLED = "booking_cancelled"
    CHECK_IN = "check_in"  # attended an experience: `ref` the experience
    REVIEW = "review"


# What the member did themself: these move `last_active_at`.
ACTIVE_KINDS: frozenset[ActivityKind] = frozenset(
    {
        ActivityKind.PURCHASE,
        ActivityKind.REDEMPTION,
        ActivityKind.DROP_ENTRY,
        ActivityKind.POST,
        ActivityKind.COMMENT,
        ActivityKind.REACTION,
        ActivityKind.ANSWER,
        ActivityKind.BOOKING,
        ActivityKind.CHECK_IN,
        ActivityKind.REVIEW,
    }
)


class JournalEntry(Base):
    """One consumed event about one member, reduced to the facts marketing uses."""

    __tablename__ = "journal"
    __table_args__ = (
        Index("ix_journal_member", "brand_id", "member_id", "occurred_at"),
        # Segments' event conditions count a kind's rows per member over a window: with the
        # member in the index, that count reads the index alone (about 40% off a preview).
        Index(
            "ix_journal_kind",
            "brand_id",
            "kind",
            "occurred_at",
            postgresql_include=["member_id"],
        ),
    )

    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    # Arrival order: breaks ties between events of the same instant (last one wins).
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=False))
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    member_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    kind: Mapped[ActivityKind] = mapped_column(text_enum(ActivityKind, "activity_kind"))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    points: Mapped[int | None] = mapped_column(BigInteger)
    category: Mapped[str | None] = mapped_column(Text)
    categories: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    ref: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class ErasedMember(Base):
    """Members erased: their events, arriving late from other streams, are dropped."""

    __tablename__ = "erased_members"

    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    member_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    erased_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class MemberView(Base):
    """The member 360: one row per member, computed from the journal (and scored daily)."""

    __tablename__ = "members"
    __table_args__ = (Index("ix_members_brand_last_active", "brand_id", "last_active_at"),)

    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    member_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    # Profile (the last member.created / member.updated)
    external_id: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    display_name: Mapped[str | None] = mapped_column(Text)
    locale: Mapped[str | None] = mapped_column(Text)
    time_zone: Mapped[str | None] = mapped_column(Text)
    birthday: Mapped[str | None] = mapped_column(Text)  # YYYY-MM-DD, as the event gives it
    status: Mapped[str | None] = mapped_column(Text)
    traits: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    interests: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    consents: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")  # granted
    joined_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Rewards
    tier_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    tier: Mapped[str | None] = mapped_column(Text)
    tier_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    points_available: Mapped[int] = mapped_column(BigInteger, server_default="0")
    points_pending: Mapped[int] = mapped_column(BigInteger, server_default="0")
    points_lifetime: Mapped[int] = mapped_column(BigInteger, server_default="0")
    spend_lifetime_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    spend_year_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    spend_30d_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    spend_90d_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    spend_365d_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    order_count: Mapped[int] = mapped_column(Integer, server_default="0")
    first_purchase_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_purchase_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    categories_bought: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    redemptions: Mapped[int] = mapped_column(Integer, server_default="0")
    # Community
    posts: Mapped[int] = mapped_column(Integer, server_default="0")
    comments: Mapped[int] = mapped_column(Integer, server_default="0")
    reactions: Mapped[int] = mapped_column(Integer, server_default="0")
    prompts_answered: Mapped[int] = mapped_column(Integer, server_default="0")
    experiences_attended: Mapped[int] = mapped_column(Integer, server_default="0")
    last_active_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Scores (the scoring job; null until a brand is first scored)
    rfm_recency: Mapped[int | None] = mapped_column(SmallInteger)
    rfm_frequency: Mapped[int | None] = mapped_column(SmallInteger)
    rfm_monetary: Mapped[int | None] = mapped_column(SmallInteger)
    churn_probability: Mapped[float | None] = mapped_column(Float)
    scored_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the windows (spend over the last N days) were computed.
    refreshed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SegmentPurpose(StrEnum):
    """What a segment is used for: a marketing channel needs the matching consent."""

    EMAIL_MARKETING = "email_marketing"
    SMS_MARKETING = "sms_marketing"
    PUSH = "push"
    ANALYTICS = "analytics"  # no outreach: no consent filter, and exports say so


class RefreshEvery(StrEnum):
    HOURLY = "hourly"
    DAILY = "daily"
    MANUAL = "manual"  # only on demand


class Segment(Base):
    __tablename__ = "segments"
    __table_args__ = (Index("ix_segments_brand", "brand_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    rule: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # Segments this one's rule names (for cycle checks and deletes).
    uses: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(UUID(as_uuid=True)), server_default="{}")
    purpose: Mapped[SegmentPurpose] = mapped_column(text_enum(SegmentPurpose, "segment_purpose"))
    refresh: Mapped[RefreshEvery] = mapped_column(text_enum(RefreshEvery, "refresh_every"))
    version: Mapped[int] = mapped_column(Integer, server_default="0")  # last materialised
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SegmentVersion(Base):
    __tablename__ = "segment_versions"

    segment_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    size: Mapped[int] = mapped_column(Integer)
    entered: Mapped[int] = mapped_column(Integer)
    exited: Mapped[int] = mapped_column(Integer)
    rule: Mapped[dict[str, Any]] = mapped_column(JSONB)  # the rule this version was computed by


class SegmentMembership(Base):
    """A stay in a segment: member of versions `entered_version` up to, not including,
    `exited_version` (open while still a member). Who entered or exited between two versions
    is a range query, and a version's members need no copy per version."""

    __tablename__ = "segment_memberships"
    __table_args__ = (
        Index(
            "ix_segment_memberships_open",
            "segment_id",
            "member_id",
            unique=True,
            postgresql_where="exited_version IS NULL",
        ),
        Index("ix_segment_memberships_entered", "segment_id", "entered_version"),
        Index("ix_segment_memberships_exited", "segment_id", "exited_version"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    segment_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    member_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    entered_version: Mapped[int] = mapped_column(Integer)
    exited_version: Mapped[int | None] = mapped_column(Integer)


class ExportFormat(StrEnum):
    CSV = "csv"
    NDJSON = "ndjson"
    PARQUET = "parquet"


class ExportMode(StrEnum):
    FULL = "full"
    DELTA = "delta"  # who entered and who exited since a version


class ExportStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class Export(Base):
    __tablename__ = "exports"
    __table_args__ = (Index("ix_exports_brand", "brand_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    segment_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    schedule_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    fields: Mapped[list[str]] = mapped_column(ARRAY(Text))
    format: Mapped[ExportFormat] = mapped_column(text_enum(ExportFormat, "export_format"))
    gzip: Mapped[bool] = mapped_column(Boolean)
    mode: Mapped[ExportMode] = mapped_column(text_enum(ExportMode, "export_mode"))
    since_version: Mapped[int | None] = mapped_column(Integer)  # delta: from this version
    version: Mapped[int | None] = mapped_column(Integer)  # the segment version exported
    # Set when the export is for a purpose other than the segment's marketing channel
    # (a lawful basis such as "contract"): no consent filter, and the file says so.
    lawful_basis: Mapped[str | None] = mapped_column(Text)
    status: Mapped[ExportStatus] = mapped_column(text_enum(ExportStatus, "export_status"))
    rows_done: Mapped[int] = mapped_column(BigInteger, server_default="0")
    rows_total: Mapped[int | None] = mapped_column(BigInteger)
    bytes: Mapped[int | None] = mapped_column(BigInteger)
    location: Mapped[str | None] = mapped_column(Text)  # where the file was written
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ExportSchedule(Base):
    __tablename__ = "export_schedules"
    __table_args__ = (Index("ix_export_schedules_due", "next_run_at"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    segment_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    fields: Mapped[list[str]] = mapped_column(ARRAY(Text))
    format: Mapped[ExportFormat] = mapped_column(text_enum(ExportFormat, "export_format"))
    gzip: Mapped[bool] = mapped_column(Boolean)
    mode: Mapped[ExportMode] = mapped_column(text_enum(ExportMode, "export_mode"))
    lawful_basis: Mapped[str | None] = mapped_column(Text)
    every: Mapped[RefreshEvery] = mapped_column(text_enum(RefreshEvery, "refresh_every"))
    destination: Mapped[str] = mapped_column(Text)  # file:///folder or s3://bucket/prefix
    last_version: Mapped[int | None] = mapped_column(Integer)  # what the last delta reached
    next_run_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    enabled: Mapped[bool] = mapped_column(Boolean, server_default="true")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class TrainingStatus(StrEnum):
    TRAINED = "trained"
    REFUSED = "refused"  # too little history: nothing fitted, the reason says why


class RefusalReason(StrEnum):
    NOT_ENOUGH_HISTORY = "not_enough_history"
    NOT_ENOUGH_MEMBERS = "not_enough_members"
    ONE_SIDED_OUTCOME = "one_sided_outcome"  # (almost) everyone churned, or (almost) no one


class ChurnModel(Base):
    """A brand's churn model run: trained (how good it is, and the fitted estimator) or refused
    (and why), so the list answers both."""

    __tablename__ = "churn_models"
    __table_args__ = (Index("ix_churn_models_brand", "brand_id", "trained_at"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    trained_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[TrainingStatus] = mapped_column(text_enum(TrainingStatus, "training_status"))
    reason: Mapped[RefusalReason | None] = mapped_column(text_enum(RefusalReason, "refusal_reason"))
    detail: Mapped[str | None] = mapped_column(Text)
    horizon_days: Mapped[int] = mapped_column(Integer)
    features: Mapped[list[str]] = mapped_column(ARRAY(Text))
    # Quality on held-out members: ROC AUC, Brier score, and the churn rate they had.
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONB)
    train_members: Mapped[int] = mapped_column(Integer)
    test_members: Mapped[int] = mapped_column(Integer)
    # The fitted estimator; None when refused, and once newer models replaced it.
    artifact: Mapped[bytes | None] = mapped_column(LargeBinary)
