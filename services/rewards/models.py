"""The rewards schema. Points and money are integers (points; minor currency units).

The ledger is append-only: a balance is the sum of a member's entries. `accounts` caches those sums
(updated in the same statement that appends an entry) so a redemption can check and debit the
balance in one conditional UPDATE; the invariant `cached = sum of entries` is tested.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.kernel.db import make_base, text_enum
from services.kernel.idempotency import IdempotencyStore, idempotency_table
from services.kernel.outbox import Outbox, inbox_table, outbox_table

SCHEMA = "rewards"

if TYPE_CHECKING:
    # mypy cannot subclass a base made at run time; to it, Base is a plain declarative base.
    class Base(DeclarativeBase): ...
else:
    Base = make_base(SCHEMA)

OUTBOX = Outbox(outbox_table(Base.metadata))
INBOX = inbox_table(Base.metadata)
IDEMPOTENCY = IdempotencyStore(idempotency_table(Base.metadata))


def _id() -> Mapped[uuid.UUID]:
    return mapped_column(UUID(as_uuid=True), primary_key=True)


def _created() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now())


# --- Program settings -------------------------------------------------------------------------


class ExpiryPolicy(StrEnum):
    NONE = "none"
    DAYS_AFTER_EARNING = "days_after_earning"  # lot by lot, oldest spent first
    INACTIVITY = "inactivity"  # everything, after N months without activity (the Sephora rule)


class QualificationWindow(StrEnum):
    CALENDAR_YEAR = "calendar_year"
    ROLLING_12_MONTHS = "rolling_12_months"


class Program(Base):
    """One brand's loyalty program settings."""

    __tablename__ = "programs"

    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    currency: Mapped[str] = mapped_column(Text)  # ISO 4217; purchases must be in it
    points_per_unit: Mapped[int] = mapped_column(Integer)  # base rate, per major currency unit
    # Purchase points stay pending this long (the return window); 0 makes them available at once.
    pending_days: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    expiry_policy: Mapped[ExpiryPolicy] = mapped_column(
        text_enum(ExpiryPolicy, "expiry_policy"), server_default=ExpiryPolicy.NONE.value
    )
    expiry_days: Mapped[int | None] = mapped_column(Integer)
    inactivity_months: Mapped[int | None] = mapped_column(Integer)
    expiry_reminder_days: Mapped[int] = mapped_column(Integer, server_default=text("30"))
    qualification_window: Mapped[QualificationWindow] = mapped_column(
        text_enum(QualificationWindow, "qualification_window"),
        server_default=QualificationWindow.CALENDAR_YEAR.value,
    )
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()


# --- Members as rewards knows them, and their balances ----------------------------------------


class Account(Base):
    """A member as rewards knows them (from `member.*` events), with cached ledger sums."""

    __tablename__ = "accounts"
    __table_args__ = (
        UniqueConstraint("brand_id", "external_id"),
        Index(None, "brand_id", "member_id"),
        Index(None, "brand_id", "tier_id"),  # the tier review walks a brand's tiered members
    )

    member_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    external_id: Mapped[str | None] = mapped_column(Text)
    birthday: Mapped[date | None] = mapped_column(Date)
    member_status: Mapped[str] = mapped_column(Text, server_default="active")
    tier_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tiers.id"))
    tier_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    available: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    pending: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    lifetime_earned: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    last_activity_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The inactivity expiry date the member was last reminded of (`points.expiring_soon`): one
    # reminder per date; activity moves the date, so a later lapse is announced again.
    inactivity_reminded_for: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created()


class EntryKind(StrEnum):
    EARN = "earn"
    REDEEM = "redeem"
    REFUND = "refund"  # a cancelled redemption gives its points back
    ADJUST = "adjust"  # staff, with a reason
    EXPIRE = "expire"
    REVERSE = "reverse"  # a return takes back what its purchase earned
    RELEASE = "release"  # pending points become available (a pair of entries)
    VOID = "void"  # pending points that will never become available


class Bucket(StrEnum):
    AVAILABLE = "available"
    PENDING = "pending"


class LedgerEntry(Base):
    """One append-only line of a member's points history; never updated, never deleted."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint("points <> 0", name="nonzero"),
        Index(None, "member_id", "id"),
        Index(None, "brand_id", "source_type", "source_id"),
    )

    id: Mapped[uuid.UUID] = _id()
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.member_id"))
    kind: Mapped[EntryKind] = mapped_column(text_enum(EntryKind, "entry_kind"))
    bucket: Mapped[Bucket] = mapped_column(text_enum(Bucket, "bucket"))
    points: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)  # shown to the member and to staff
    source_type: Mapped[str] = mapped_column(Text)  # purchase, return, redemption, activity, ...
    source_id: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created()


class Lot(Base):
    """Available points earned together: spent oldest first, and expiring together if due."""

    __tablename__ = "lots"
    __table_args__ = (
        CheckConstraint("remaining >= 0 AND remaining <= points", name="remaining_in_range"),
        Index("ix_lots_open", "member_id", "earned_at", postgresql_where=text("remaining > 0")),
        Index("ix_lots_expiring", "brand_id", "expires_at", postgresql_where=text("remaining > 0")),
    )

    id: Mapped[uuid.UUID] = _id()
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.member_id"))
    entry_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_entries.id"))
    points: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    earned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reminded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# --- Purchases and returns --------------------------------------------------------------------


class Purchase(Base):
    __tablename__ = "purchases"
    __table_args__ = (
        UniqueConstraint("brand_id", "order_id"),
        Index(None, "member_id", "occurred_at"),
        # The release job's queue: purchases whose points are still pending.
        Index(
            "ix_purchases_pending_release",
            "pending_until",
            postgresql_where=text("points_bucket = 'pending'"),
        ),
    )

    id: Mapped[uuid.UUID] = _id()
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.member_id"))
    order_id: Mapped[str] = mapped_column(Text)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(Text)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    points: Mapped[int] = mapped_column(BigInteger)  # what it earned (pending or available)
    points_bucket: Mapped[Bucket] = mapped_column(text_enum(Bucket, "bucket"))
    pending_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    returned_minor: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    returned_points: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    # How the points were computed (rules, tier, campaigns; exact points per line), as answered.
    breakdown: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'"))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created()


class Return(Base):
    __tablename__ = "returns"
    __table_args__ = (UniqueConstraint("brand_id", "return_id"), Index(None, "purchase_id"))

    id: Mapped[uuid.UUID] = _id()
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    purchase_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("purchases.id"))
    return_id: Mapped[str] = mapped_column(Text)  # the brand's own id: the idempotency key
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    points_reversed: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created()


# --- Tiers ------------------------------------------------------------------------------------


class DowngradeRule(StrEnum):
    NEVER = "never"
    END_OF_WINDOW = "end_of_window"  # at the review after the window closes, after a grace period
    SPEND_DROPS = "spend_drops"  # at the next review once window spend is below the threshold


class Tier(Base):
    __tablename__ = "tiers"
    __table_args__ = (
        UniqueConstraint("brand_id", "rank"),
        UniqueConstraint("brand_id", "name"),
        CheckConstraint("multiplier > 0", name="positive_multiplier"),
        CheckConstraint("threshold_minor >= 0", name="threshold_not_negative"),
    )

    id: Mapped[uuid.UUID] = _id()
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    name: Mapped[str] = mapped_column(Text)
    rank: Mapped[int] = mapped_column(Integer)  # 0 is the entry tier
    threshold_minor: Mapped[int] = mapped_column(BigInteger)  # spend in the window to qualify
    multiplier: Mapped[Decimal] = mapped_column(Numeric(6, 3), server_default=text("1"))
    priority_booking: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    benefits: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    downgrade_rule: Mapped[DowngradeRule] = mapped_column(
        text_enum(DowngradeRule, "downgrade_rule"), server_default=DowngradeRule.END_OF_WINDOW.value
    )
    grace_days: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[datetime] = _created()


class TierChange(Base):
    """Append-only history of every member's tier."""

    __tablename__ = "tier_changes"
    __table_args__ = (Index(None, "member_id", "changed_at"),)

    id: Mapped[uuid.UUID] = _id()
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.member_id"))
    from_tier_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tiers.id"))
    to_tier_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tiers.id"))
    reason: Mapped[str] = mapped_column(Text)
    window_spend_minor: Mapped[int] = mapped_column(BigInteger)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# --- Earning rules and campaigns --------------------------------------------------------------


class RuleKind(StrEnum):
    CATEGORY_MULTIPLIER = "category_multiplier"
    SKU_MULTIPLIER = "sku_multiplier"
    ACTIVITY = "activity"  # points for an event from another service (a review, a prompt answer)


class EarningRule(Base):
    __tablename__ = "earning_rules"
    __table_args__ = (
        CheckConstraint("multiplier IS NULL OR multiplier > 0", name="positive_multiplier"),
        CheckConstraint("points IS NULL OR points > 0", name="positive_points"),
        Index(None, "brand_id", "kind"),
    )

    id: Mapped[uuid.UUID] = _id()
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[RuleKind] = mapped_column(text_enum(RuleKind, "rule_kind"))
    category: Mapped[str | None] = mapped_column(Text)
    sku: Mapped[str | None] = mapped_column(Text)
    activity: Mapped[str | None] = mapped_column(Text)  # e.g. post.approved, review.published
    multiplier: Mapped[Decimal | None] = mapped_column(Numeric(6, 3))
    points: Mapped[int | None] = mapped_column(Integer)  # fixed award (activity rules)
    cap_per_day: Mapped[int | None] = mapped_column(Integer)
    cap_per_month: Mapped[int | None] = mapped_column(Integer)
    cap_lifetime: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = _created()


class AudienceKind(StrEnum):
    ALL = "all"
    TIERS = "tiers"
    SEGMENT = "segment"


class Campaign(Base):
    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        CheckConstraint("multiplier IS NULL OR multiplier > 0", name="positive_multiplier"),
        CheckConstraint("bonus_points IS NULL OR bonus_points > 0", name="positive_bonus"),
        Index(None, "brand_id", "starts_at", "ends_at"),
    )

    id: Mapped[uuid.UUID] = _id()
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    name: Mapped[str] = mapped_column(Text)
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    audience: Mapped[AudienceKind] = mapped_column(text_enum(AudienceKind, "audience_kind"))
    tier_ids: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(UUID(as_uuid=True)), server_default=text("'{}'")
    )
    segment_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    categories: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    multiplier: Mapped[Decimal | None] = mapped_column(Numeric(6, 3))
    bonus_points: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = _created()


class AwardState(StrEnum):
    AVAILABLE = "available"  # paid into the available bucket
    PENDING = "pending"  # content awaiting approval: pending points
    VOIDED = "voided"  # the content was removed before approval: its pending points voided
    REVERSED = "reversed"  # the content was removed after approval: its points taken back


class ActivityAward(Base):
    """Points awarded for an activity event: one per event (idempotent) and counted for caps.

    Awards for content (a post, a review, a prompt answer) carry the content's key: they wait
    in `pending` while the content is held for review, and follow it when it is approved or
    removed.
    """

    __tablename__ = "activity_awards"
    __table_args__ = (
        UniqueConstraint("rule_id", "event_id"),
        Index(None, "member_id", "rule_id", "awarded_at"),
        Index(
            "ix_activity_awards_content",
            "brand_id",
            "content_key",
            postgresql_where=text("content_key IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = _id()
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.member_id"))
    rule_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("earning_rules.id"))
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    points: Mapped[int] = mapped_column(Integer)
    awarded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    content_key: Mapped[str | None] = mapped_column(Text)  # e.g. "post:<id>"
    state: Mapped[AwardState] = mapped_column(
        text_enum(AwardState, "award_state"), server_default=AwardState.AVAILABLE.value
    )


# --- Perks, redemptions, drops ----------------------------------------------------------------


class PerkKind(StrEnum):
    DISCOUNT_CODE = "discount_code"  # a code from the perk's pool
    FREE_PRODUCT = "free_product"
    EXPERIENCE_ACCESS = "experience_access"
    DONATION = "donation"
    CUSTOM = "custom"  # fulfilled by the brand's systems through a webhook


class Perk(Base):
    __tablename__ = "perks"
    __table_args__ = (
        CheckConstraint("cost_points > 0", name="positive_cost"),
        CheckConstraint(
            "inventory_remaining IS NULL OR inventory_remaining >= 0", name="inventory_not_negative"
        ),
        CheckConstraint(
            "valid_until IS NULL OR valid_from IS NULL OR valid_until > valid_from",
            name="valid_window",
        ),
        Index(None, "brand_id", "category"),
    )

    id: Mapped[uuid.UUID] = _id()
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, server_default="")
    image_url: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    kind: Mapped[PerkKind] = mapped_column(text_enum(PerkKind, "perk_kind"))
    cost_points: Mapped[int] = mapped_column(Integer)
    tier_ids: Mapped[list[uuid.UUID]] = mapped_column(  # empty: every tier may redeem
        ARRAY(UUID(as_uuid=True)), server_default=text("'{}'")
    )
    valid_from: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    valid_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    inventory_total: Mapped[int | None] = mapped_column(Integer)  # NULL: unlimited
    inventory_remaining: Mapped[int | None] = mapped_column(Integer)
    per_member_limit: Mapped[int | None] = mapped_column(Integer)
    is_birthday_gift: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    fulfilment: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'"))
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = _created()


class PerkCode(Base):
    """A discount code in a perk's pool; handed to exactly one redemption."""

    __tablename__ = "perk_codes"
    __table_args__ = (
        UniqueConstraint("perk_id", "code"),
        Index("ix_perk_codes_free", "perk_id", postgresql_where=text("redemption_id IS NULL")),
    )

    id: Mapped[uuid.UUID] = _id()
    perk_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("perks.id"))
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    code: Mapped[str] = mapped_column(Text)
    redemption_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))


class RedemptionStatus(StrEnum):
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class Redemption(Base):
    __tablename__ = "redemptions"
    __table_args__ = (
        Index(None, "member_id", "perk_id", "status"),
        Index(None, "member_id", "id"),
        Index(None, "perk_id", "status"),
    )

    id: Mapped[uuid.UUID] = _id()
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.member_id"))
    perk_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("perks.id"))
    points: Mapped[int] = mapped_column(Integer)  # 0 for gifts (birthday)
    status: Mapped[RedemptionStatus] = mapped_column(
        text_enum(RedemptionStatus, "redemption_status")
    )
    code: Mapped[str | None] = mapped_column(Text)
    drop_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = _created()
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the code was first shown (to the member or to staff); a revealed code may be in use,
    # so cancelling retires it instead of returning it to the pool.
    code_revealed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DropMethod(StrEnum):
    DRAW = "draw"  # a seeded, auditable lottery among entrants
    QUEUE = "queue"  # first come, first served


class DropStatus(StrEnum):
    SCHEDULED = "scheduled"
    DRAWN = "drawn"


class Drop(Base):
    __tablename__ = "drops"
    __table_args__ = (
        CheckConstraint("closes_at > opens_at", name="closes_after_open"),
        CheckConstraint("units > 0", name="positive_units"),
        Index(None, "brand_id", "id"),
        Index(None, "perk_id"),
        Index(None, "status", "closes_at"),
    )

    id: Mapped[uuid.UUID] = _id()
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    perk_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("perks.id"))
    method: Mapped[DropMethod] = mapped_column(text_enum(DropMethod, "drop_method"))
    units: Mapped[int] = mapped_column(Integer)
    early_opens_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    early_tier_ids: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(UUID(as_uuid=True)), server_default=text("'{}'")
    )
    opens_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closes_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    seed: Mapped[str] = mapped_column(Text)
    status: Mapped[DropStatus] = mapped_column(
        text_enum(DropStatus, "drop_status"), server_default=DropStatus.SCHEDULED.value
    )
    drawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created()


class DropEntry(Base):
    __tablename__ = "drop_entries"

    drop_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("drops.id"), primary_key=True)
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.member_id"), primary_key=True)
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    entered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    position: Mapped[int | None] = mapped_column(Integer)  # queue order, or draw order
    won: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    redemption_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    # What the draw did with this entrant: won, skipped:<error code>, or NULL (not reached).
    outcome: Mapped[str | None] = mapped_column(Text)


class BirthdayGift(Base):
    """The birthday perk granted to a member for a year: at most once."""

    __tablename__ = "birthday_gifts"

    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.member_id"), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    redemption_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("redemptions.id"))
    granted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
