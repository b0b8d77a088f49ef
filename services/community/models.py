"""The community schema's shared base and the tables every part of the service stands on.

Each domain package keeps its own tables in its `models.py` on this `Base`; the ones here are
referred to from several packages: the members projection, groups, prompts, posts and comments.
`services.community.module` imports every package, so `Base.metadata` holds the whole schema.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
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

SCHEMA = "community"

if TYPE_CHECKING:
    # mypy cannot subclass a base made at run time; to it, Base is a plain declarative base.
    class Base(DeclarativeBase): ...
else:
    Base = make_base(SCHEMA)

OUTBOX = Outbox(outbox_table(Base.metadata))
INBOX = inbox_table(Base.metadata)
IDEMPOTENCY = IdempotencyStore(idempotency_table(Base.metadata))


def uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(UUID(as_uuid=True), primary_key=True)


def brand_column() -> Mapped[uuid.UUID]:
    return mapped_column(UUID(as_uuid=True))


def created_column() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now())


# --- Members as the community knows them ------------------------------------------------------


class TrustLevel:
    """Discourse's trust levels: earned by reputation, each unlocking abilities."""

    NEW = 0
    BASIC = 1
    MEMBER = 2
    REGULAR = 3
    LEADER = 4


class CommunityMember(Base):
    """A member as the community knows them, kept from `member.*` and `tier.changed` events,
    plus what the community itself decides about them (reputation, trust, suspension)."""

    __tablename__ = "members"
    __table_args__ = (Index(None, "brand_id", "member_id"),)

    member_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    brand_id: Mapped[uuid.UUID] = brand_column()
    display_name: Mapped[str | None] = mapped_column(Text)
    # Mirrors the members service: active, suspended or erased.
    member_status: Mapped[str] = mapped_column(Text, server_default="active")
    joined_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    tier_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    tier_name: Mapped[str | None] = mapped_column(Text)
    reputation: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    trust_level: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    # Set by staff: the trust level then stays as they set it, whatever the reputation does.
    trust_level_locked: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # A moderation decision may suspend a member from the community until a time (or for good).
    suspended_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_column()


# --- Groups -----------------------------------------------------------------------------------


class GroupKind(StrEnum):
    BRAND = "brand"  # run by the brand's staff
    MEMBER = "member"  # started and moderated by members


class Group(Base):
    """An interest community ("Curly hair", "Fragrance collectors") that members join."""

    __tablename__ = "groups"
    __table_args__ = (UniqueConstraint("brand_id", "slug"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    brand_id: Mapped[uuid.UUID] = brand_column()
    slug: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, server_default="")
    kind: Mapped[GroupKind] = mapped_column(text_enum(GroupKind, "group_kind"))
    owner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("members.member_id"))
    member_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    archived: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    created_at: Mapped[datetime] = created_column()


class GroupRole(StrEnum):
    MEMBER = "member"
    MODERATOR = "moderator"


class MembershipStatus(StrEnum):
    ACTIVE = "active"
    LEFT = "left"
    REMOVED = "removed"  # by a group moderator or staff: may not act in the group any more


class GroupMembership(Base):
    __tablename__ = "group_memberships"
    __table_args__ = (Index(None, "member_id"),)

    group_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("groups.id"), primary_key=True)
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.member_id"), primary_key=True)
    brand_id: Mapped[uuid.UUID] = brand_column()
    role: Mapped[GroupRole] = mapped_column(text_enum(GroupRole, "group_role"))
    status: Mapped[MembershipStatus] = mapped_column(
        text_enum(MembershipStatus, "membership_status")
    )
    joined_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = created_column()


# --- Prompts ----------------------------------------------------------------------------------


class AudienceKind(StrEnum):
    ALL = "all"
    TIERS = "tiers"
    GROUPS = "groups"
    MILESTONE = "milestone"  # members who reached a milestone (a join anniversary, say)


class Prompt(Base):
    """A question or task from the brand ("Show us your summer look"); answers are posts."""

    __tablename__ = "prompts"
    __table_args__ = (
        CheckConstraint("ends_at IS NULL OR ends_at > starts_at", name="window_order"),
        Index(None, "brand_id", "starts_at"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    brand_id: Mapped[uuid.UUID] = brand_column()
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text, server_default="")
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    audience: Mapped[AudienceKind] = mapped_column(text_enum(AudienceKind, "audience_kind"))
    audience_tier_ids: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(UUID(as_uuid=True)), server_default="{}"
    )
    audience_group_ids: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(UUID(as_uuid=True)), server_default="{}"
    )
    audience_milestone: Mapped[str | None] = mapped_column(Text)
    # Shown to members; the points themselves come from rewards' `prompt.answered` activity rules.
    points: Mapped[int | None] = mapped_column(Integer)
    answer_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[datetime] = created_column()


# --- Posts and comments -----------------------------------------------------------------------


class PostKind(StrEnum):
    POST = "post"
    REVIEW = "review"  # of a product sku, rated 1-5; one per member and sku


class ContentStatus(StrEnum):
    PUBLISHED = "published"  # approved (by the automatic first pass or a moderator); public
    HELD = "held"  # awaiting review: visible to its author (and moderators) only
    REMOVED = "removed"  # by its author or a moderator: gone from every feed


class Post(Base):
    __tablename__ = "posts"
    __table_args__ = (
        CheckConstraint("rating IS NULL OR rating BETWEEN 1 AND 5", name="rating_range"),
        CheckConstraint("(kind = 'review') = (review_sku IS NOT NULL)", name="review_has_sku"),
        # One live review per member and sku.
        Index(
            "uq_posts_one_review",
            "author_id",
            "review_sku",
            unique=True,
            postgresql_where=text("kind = 'review' AND status <> 'removed'"),
        ),
        # The feeds: an author's posts, a group's, a tag's, a prompt's answers, newest first.
        Index(
            "ix_posts_author_feed",
            "author_id",
            text("id DESC"),
            postgresql_where=text("status = 'published'"),
        ),
        Index(
            "ix_posts_group_feed",
            "group_id",
            text("id DESC"),
            postgresql_where=text("status = 'published' AND group_id IS NOT NULL"),
        ),
        Index(
            "ix_posts_prompt",
            "prompt_id",
            text("id DESC"),
            postgresql_where=text("prompt_id IS NOT NULL"),
        ),
        Index("ix_posts_tags", "tags", postgresql_using="gin"),
        Index(None, "brand_id", text("id DESC")),
        # An author's own view (`/me/posts`) includes held posts, which the feed index leaves out.
        Index(
            "ix_posts_author_own",
            "author_id",
            text("id DESC"),
            postgresql_where=text("status <> 'removed'"),
        ),
        # Staff lists by status (the held ones above all).
        Index(None, "brand_id", "status", "id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()  # uuid7: sorts by creation time
    brand_id: Mapped[uuid.UUID] = brand_column()
    author_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.member_id"))
    kind: Mapped[PostKind] = mapped_column(text_enum(PostKind, "post_kind"))
    body: Mapped[str] = mapped_column(Text)
    # [{"url": "https://...", "alt": "..."}], at most 10.
    media: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default="[]")
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    skus: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    group_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("groups.id"))
    prompt_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("prompts.id"))
    review_sku: Mapped[str | None] = mapped_column(Text)
    rating: Mapped[int | None] = mapped_column(SmallInteger)
    # Points were or will be awarded for it (a review answering a paid prompt, say).
    incentivised: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    status: Mapped[ContentStatus] = mapped_column(text_enum(ContentStatus, "content_status"))
    # Why the automatic first pass held it (blocklist, links, duplicate, classifier, ...).
    held_reasons: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    # For duplicate-spam detection: a hash of the normalised body.
    body_hash: Mapped[str] = mapped_column(Text)
    comment_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    reaction_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[datetime] = created_column()
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = created_column()


class Comment(Base):
    """A comment on a post; `parent_id` threads replies."""

    __tablename__ = "comments"
    __table_args__ = (
        Index(None, "post_id", "id"),
        Index(None, "author_id", "id"),
        Index(None, "brand_id", "status", "id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    brand_id: Mapped[uuid.UUID] = brand_column()
    post_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("posts.id"))
    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("comments.id"))
    author_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.member_id"))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[ContentStatus] = mapped_column(text_enum(ContentStatus, "content_status"))
    held_reasons: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    body_hash: Mapped[str] = mapped_column(Text)
    reaction_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[datetime] = created_column()
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
