"""Who follows, blocks and mutes whom. Each relation is one row per (actor, other) pair with a
time-ordered id, so lists of them page by keyset."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from services.community.models import Base, brand_column, created_column, uuid_pk


class Follow(Base):
    """`follower_id` sees `followee_id`'s posts in their following feed."""

    __tablename__ = "follows"
    __table_args__ = (
        # The following feed reads a member's followees through this key.
        UniqueConstraint("follower_id", "followee_id"),
        CheckConstraint("follower_id <> followee_id", name="not_self"),
        Index(None, "followee_id", "id"),
        Index(None, "follower_id", "id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    brand_id: Mapped[uuid.UUID] = brand_column()
    follower_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.member_id"))
    followee_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.member_id"))
    created_at: Mapped[datetime] = created_column()


class Block(Base):
    """`blocker_id` and `blocked_id` no longer see each other's content or interact."""

    __tablename__ = "blocks"
    __table_args__ = (
        UniqueConstraint("blocker_id", "blocked_id"),
        CheckConstraint("blocker_id <> blocked_id", name="not_self"),
        Index(None, "blocked_id", "blocker_id"),
        Index(None, "blocker_id", "id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    brand_id: Mapped[uuid.UUID] = brand_column()
    blocker_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.member_id"))
    blocked_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.member_id"))
    created_at: Mapped[datetime] = created_column()


class Mute(Base):
    """`muter_id` no longer sees `muted_id`'s posts in their feeds; nothing else changes."""

    __tablename__ = "mutes"
    __table_args__ = (
        UniqueConstraint("muter_id", "muted_id"),
        CheckConstraint("muter_id <> muted_id", name="not_self"),
        Index(None, "muter_id", "id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    brand_id: Mapped[uuid.UUID] = brand_column()
    muter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.member_id"))
    muted_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.member_id"))
    created_at: Mapped[datetime] = created_column()
