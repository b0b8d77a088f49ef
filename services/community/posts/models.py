"""Tables of reactions and bookmarks (posts and comments themselves are core tables in
`services.community.models`, since other parts refer to them)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, UniqueConstraint
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.community.models import Base, brand_column, created_column, uuid_pk
from services.community.posts.events import ReactionKind
from services.kernel.db import text_enum


class Reaction(Base):
    """One member's reaction of one kind to a post or to a comment on it.

    `target_id` is the comment's id for a reaction to a comment and the post's otherwise, so one
    unique key covers both targets: the same member, kind and target can exist only once.
    """

    __tablename__ = "reactions"
    __table_args__ = (
        UniqueConstraint("member_id", "target_id", "kind"),
        Index(None, "target_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    brand_id: Mapped[uuid.UUID] = brand_column()
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.member_id"))
    target_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    post_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("posts.id"))
    comment_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("comments.id"))
    kind: Mapped[ReactionKind] = mapped_column(text_enum(ReactionKind, "reaction_kind"))
    created_at: Mapped[datetime] = created_column()


class Bookmark(Base):
    """A post a member saved for later: their private list, newest first by `id`."""

    __tablename__ = "bookmarks"
    __table_args__ = (
        UniqueConstraint("member_id", "post_id"),
        Index(None, "member_id", "id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    brand_id: Mapped[uuid.UUID] = brand_column()
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.member_id"))
    post_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("posts.id"))
    created_at: Mapped[datetime] = created_column()
