"""The recommender schema: what members did (interactions), what can be recommended (items, with
the facts its serving rules need), what is known of each member, the trained model versions, the
lists computed for each member, and every list served (exposures).

Items of every surface share one table and one id space, `<kind>:<id>` (`perk:…`, `post:…`,
`product:<sku>`), so one model learns across surfaces: skincare purchases lift skincare perks.
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
    Index,
    Integer,
    LargeBinary,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, REAL, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.kernel.db import make_base, text_enum
from services.kernel.idempotency import IdempotencyStore, idempotency_table
from services.kernel.outbox import Outbox, inbox_table, outbox_table

SCHEMA = "recommender"

if TYPE_CHECKING:
    # mypy cannot subclass a base made at run time; to it, Base is a plain declarative base.
    class Base(DeclarativeBase): ...
else:
    Base = make_base(SCHEMA)

OUTBOX = Outbox(outbox_table(Base.metadata))
INBOX = inbox_table(Base.metadata)
IDEMPOTENCY = IdempotencyStore(idempotency_table(Base.metadata))


class ItemKind(StrEnum):
    """What an item is; the prefix of its id."""

    PERK = "perk"
    PROMPT = "prompt"
    EXPERIENCE = "experience"
    POST = "post"
    PRODUCT = "product"  # learned from, never served


class InteractionKind(StrEnum):
    PURCHASE = "purchase"
    RETURN = "return"
    REDEMPTION = "redemption"
    DROP_ENTRY = "drop_entry"
    POST = "post"  # the member wrote it
    COMMENT = "comment"
    REACTION = "reaction"
    ANSWER = "answer"  # a prompt answered
    BOOKING = "booking"
    CHECK_IN = "check_in"
    CLICK = "click"
    DISMISS = "dismiss"


class VersionStatus(StrEnum):
    SERVING = "serving"  # the brand's current model; exactly one per brand
    CANDIDATE = "candidate"  # trained, kept for an A/B arm or comparison
    REJECTED = "rejected"  # worse than the serving version on the held-out members
    RETIRED = "retired"  # served once, replaced


def item_id_of(kind: ItemKind, key: object) -> str:
    return f"{kind.value}:{key}"


class Item(Base):
    """Something a member can be recommended or interact with, and what the serving rules need."""

    __tablename__ = "items"
    __table_args__ = (Index(None, "brand_id", "kind", "created_at"),)

    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    item_id: Mapped[str] = mapped_column(Text, primary_key=True)  # "<kind>:<id>"
    kind: Mapped[ItemKind] = mapped_column(text_enum(ItemKind, "item_kind"))
    title: Mapped[str] = mapped_column(Text, server_default="")
    content: Mapped[str] = mapped_column(
        Text, server_default=""
    )  # description and tags, for TF-IDF
    category: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    # Perks: cost, the tiers that may redeem (empty: all), validity window, stock.
    cost_points: Mapped[int | None] = mapped_column(Integer)
    tier_ids: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(UUID(as_uuid=True)), server_default=text("'{}'")
    )
    valid_from: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    valid_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    stock: Mapped[int | None] = mapped_column(Integer)  # NULL: unlimited
    per_member_limit: Mapped[int | None] = mapped_column(Integer)
    # Posts and experiences: who made it (never recommended their own work).
    author_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    # False once removed, deactivated or withdrawn: never served again.
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Session(Base):
    """A session of an experience: an experience is served only while one is bookable."""

    __tablename__ = "sessions"
    __table_args__ = (Index(None, "brand_id", "item_id", "starts_at"),)

    session_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    item_id: Mapped[str] = mapped_column(Text)  # the experience's item id
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    capacity: Mapped[int | None] = mapped_column(Integer)  # NULL: unlimited
    booked: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    cancelled: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))


class Interaction(Base):
    """One thing a member did with an item, with the weight its kind carries. Append-only; a
    return or an undone reaction is a negative-weight row, so sums stay right."""

    __tablename__ = "interactions"
    __table_args__ = (
        Index(None, "brand_id", "member_id", "occurred_at"),
        Index(None, "brand_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    member_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    item_id: Mapped[str] = mapped_column(Text)
    kind: Mapped[InteractionKind] = mapped_column(text_enum(InteractionKind, "interaction_kind"))
    weight: Mapped[float] = mapped_column(REAL)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The list it came from, for clicks and dismissals.
    exposure_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))


class MemberFacts(Base):
    """What the serving rules and the models know of a member besides interactions."""

    __tablename__ = "members"

    member_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    tier_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    tier_name: Mapped[str | None] = mapped_column(Text)
    points_available: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    interests: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    # Without the `personalisation` consent a member gets the non-personalised lists.
    personalised: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    erased: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    joined_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Set when something new about the member awaits the next fold-in; cleared by it.
    stale_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ModelVersion(Base):
    """A trained model: where its artifact is, how it did offline, whether it serves."""

    __tablename__ = "model_versions"
    __table_args__ = (
        Index(
            "uq_model_versions_serving",
            "brand_id",
            unique=True,
            postgresql_where=text("status = 'serving'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    number: Mapped[int] = mapped_column(Integer)  # 1, 2, … per brand
    status: Mapped[VersionStatus] = mapped_column(text_enum(VersionStatus, "version_status"))
    artifact_bytes: Mapped[int] = mapped_column(BigInteger)  # size of its `ArtifactChunk`s
    # {"ndcg@100", "recall@20", "recall@50", "users", "items", "interactions", "seconds", ...}
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'"))
    # The serving version's score on the same held-out members when this one was judged.
    compared_to: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    trained_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ArtifactChunk(Base):
    """A model version's serialised form, in chunks (a bytea holds at most 1 GB). Kept in
    PostgreSQL so every worker reads the same bytes and a database backup includes the models."""

    __tablename__ = "artifact_chunks"

    version_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Recommendation(Base):
    """A member's precomputed list for one surface: what serving filters and logs."""

    __tablename__ = "recommendations"

    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    # The nil UUID holds the brand's non-personalised list (cold start, holdout) per tier: see
    # `segment`.
    member_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    surface: Mapped[str] = mapped_column(Text, primary_key=True)
    segment: Mapped[str] = mapped_column(Text, primary_key=True, server_default="")
    version_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    arm: Mapped[str] = mapped_column(Text, server_default="")
    item_ids: Mapped[list[str]] = mapped_column(ARRAY(Text))
    scores: Mapped[list[float]] = mapped_column(ARRAY(REAL))
    reasons: Mapped[list[str]] = mapped_column(ARRAY(Text))
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Exposure(Base):
    """A list as served: items, positions, scores, the policy and each item's propensity."""

    __tablename__ = "exposures"
    __table_args__ = (Index(None, "brand_id", "member_id", "served_at"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    member_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    surface: Mapped[str] = mapped_column(Text)
    version_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    arm: Mapped[str] = mapped_column(Text, server_default="")
    item_ids: Mapped[list[str]] = mapped_column(ARRAY(Text))
    propensities: Mapped[list[float]] = mapped_column(ARRAY(REAL))
    explored: Mapped[list[bool]] = mapped_column(ARRAY(Boolean))
    served_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Experiment(Base):
    """An A/B test: members split by a stable hash into arms, each a policy."""

    __tablename__ = "experiments"
    __table_args__ = (
        Index(
            "uq_experiments_running",
            "brand_id",
            unique=True,
            postgresql_where=text("ended_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    name: Mapped[str] = mapped_column(Text)
    # [{"name": "holdout", "share": 0.1, "policy": "popular"|"serving"|"version",
    #   "version_id": "…"|null}]; the shares add up to at most 1, the rest is the serving arm.
    arms: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ItemStats(Base):
    """Per item, how often it was shown and taken: the Beta posterior exploration samples from."""

    __tablename__ = "item_stats"

    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    item_id: Mapped[str] = mapped_column(Text, primary_key=True)
    shown: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    taken: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    interactions: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
