"""The webhooks schema: endpoints with their signing secrets, messages (one per public event
some endpoint wants), deliveries (one per message and endpoint) with the log of their attempts,
and the segment membership that endpoints filtered by segment need, kept from marketing's
events.

A rotation keeps the previous secret for a grace period (`previous_secret_expires_at`) during
which deliveries carry both signatures, so a receiver can switch secrets without losing one
message.
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
    Identity,
    Index,
    Integer,
    SmallInteger,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.kernel.db import make_base, text_enum
from services.kernel.idempotency import IdempotencyStore, idempotency_table
from services.kernel.outbox import Outbox, inbox_table, outbox_table

SCHEMA = "webhooks"

if TYPE_CHECKING:
    # mypy cannot subclass a base made at run time; to it, Base is a plain declarative base.
    class Base(DeclarativeBase): ...
else:
    Base = make_base(SCHEMA)

OUTBOX = Outbox(outbox_table(Base.metadata))
INBOX = inbox_table(Base.metadata)
IDEMPOTENCY = IdempotencyStore(idempotency_table(Base.metadata))


class Endpoint(Base):
    __tablename__ = "endpoints"
    __table_args__ = (Index("ix_endpoints_brand", "brand_id", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    # Exact types or `prefix.*` or `*`, checked against the known event types on save.
    event_types: Mapped[list[str]] = mapped_column(ARRAY(Text))
    segment_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    headers: Mapped[dict[str, str]] = mapped_column(JSONB, server_default="{}")
    enabled: Mapped[bool] = mapped_column(Boolean, server_default="true")
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    # The first failed attempt since the last success: an endpoint failing for days is disabled.
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rate_limit_per_second: Mapped[int | None] = mapped_column(Integer)
    max_concurrency: Mapped[int] = mapped_column(Integer, server_default="16")
    secret: Mapped[str] = mapped_column(Text)  # whsec_<base64 of 32 random bytes>
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Message(Base):
    """A public event as CRMs receive it: its id is the event's (the `webhook-id` of every
    delivery and retry), its payload the event's JSON."""

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_brand", "brand_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    event_type: Mapped[str] = mapped_column(Text)
    member_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # due at `next_attempt_at`, or being attempted (`leased_until`)
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # every attempt of the schedule failed; a resend or recovery retries


class Delivery(Base):
    """A message on its way to one endpoint. `id` follows the order messages arrived in, which
    is the order deliveries about one member must keep at one endpoint.

    A worker that takes a delivery leases it: `leased_until` (also its `next_attempt_at`, so a
    worker that dies leaves it due again once the lease runs out) is the fencing token its
    result must carry to be recorded."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("message_id", "endpoint_id"),
        Index(
            "ix_deliveries_due",
            "endpoint_id",
            "next_attempt_at",
            postgresql_where="status = 'pending'",
        ),
        # Deliveries in flight, counted against an endpoint's concurrency limit.
        Index(
            "ix_deliveries_leased",
            "endpoint_id",
            postgresql_where="status = 'pending' AND leased_until IS NOT NULL",
        ),
        Index("ix_deliveries_message", "message_id"),
        Index(
            "ix_deliveries_failed",
            "endpoint_id",
            "created_at",
            postgresql_where="status = 'failed'",
        ),
        Index(
            "ix_deliveries_member_order",
            "endpoint_id",
            "member_id",
            "id",
            postgresql_where="status = 'pending'",
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    message_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    endpoint_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    member_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    status: Mapped[DeliveryStatus] = mapped_column(text_enum(DeliveryStatus, "delivery_status"))
    attempts: Mapped[int] = mapped_column(SmallInteger, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    leased_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AttemptOutcome(StrEnum):
    SUCCEEDED = "succeeded"  # a 2xx answer
    FAILED = "failed"  # another status, a timeout, a refused or broken connection


class Attempt(Base):
    """One try of one delivery, as the attempt log shows it."""

    __tablename__ = "attempts"
    __table_args__ = (
        Index("ix_attempts_delivery", "message_id", "endpoint_id", "id"),
        Index("ix_attempts_endpoint", "endpoint_id", "attempted_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    delivery_id: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    endpoint_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[AttemptOutcome] = mapped_column(text_enum(AttemptOutcome, "attempt_outcome"))
    response_status: Mapped[int | None] = mapped_column(SmallInteger)
    # At most the first kilobyte of the answer, decoded leniently.
    response_body: Mapped[str | None] = mapped_column(Text)
    # Why an attempt without a status failed: "timeout", "connection refused", ...
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer)
    # When the delivery is tried again after this attempt; None after a success or the last try.
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SegmentMember(Base):
    """Who is in each segment, from `segment.entered` / `segment.exited`: endpoints filtered by
    a segment get only messages about its members."""

    __tablename__ = "segment_members"

    segment_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    member_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
