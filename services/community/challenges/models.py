"""Tables of challenges: the challenge and its steps, who joined, and the actions that count."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.community.models import Base, brand_column, created_column, uuid_pk
from services.kernel.db import text_enum


class ChallengeAction(StrEnum):
    """What a step counts, and the community event that counts it."""

    POST = "post"  # a post of the member approved (post.approved)
    PROMPT_ANSWER = "prompt_answer"  # an answer to a prompt approved (post.approved, prompt set)
    EXPERIENCE = "experience"  # attended an experience session (experience.checked_in)
    REACTION = "reaction"  # reacted to someone else's post or comment (reaction.added)
    COMMENT = "comment"  # a comment of the member public (comment.created / comment.approved)


class Challenge(Base):
    """A series of steps over days or weeks ("post three times, answer two prompts"), with a
    badge and points at completion."""

    __tablename__ = "challenges"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="window_order"),
        CheckConstraint("points IS NULL OR points > 0", name="points_positive"),
        Index(None, "brand_id", "ends_at"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    brand_id: Mapped[uuid.UUID] = brand_column()
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, server_default="")
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Advertised; rewards pays them from `challenge.completed` through its activity rules.
    points: Mapped[int | None] = mapped_column(Integer)
    badge_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("badges.id"))
    participant_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    completed_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[datetime] = created_column()


class ChallengeStep(Base):
    """One step: `target` actions of one kind. A challenge counts each kind in one step."""

    __tablename__ = "challenge_steps"
    __table_args__ = (
        UniqueConstraint("challenge_id", "action"),
        CheckConstraint("target > 0", name="target_positive"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    brand_id: Mapped[uuid.UUID] = brand_column()
    challenge_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("challenges.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(SmallInteger)
    action: Mapped[ChallengeAction] = mapped_column(text_enum(ChallengeAction, "challenge_action"))
    target: Mapped[int] = mapped_column(Integer)


class ChallengeParticipant(Base):
    """A member who joined a challenge, with their completion and streaks.

    The streak columns are kept from the member's counted actions (`challenge_actions`) each time
    one is recorded or withdrawn: `streak` is the run of consecutive UTC days with an action that
    ends on `last_active_day`, `longest_streak` the longest run so far.
    """

    __tablename__ = "challenge_participants"
    __table_args__ = (Index(None, "member_id", "joined_at"),)

    challenge_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("challenges.id", ondelete="CASCADE"), primary_key=True
    )
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.member_id"), primary_key=True)
    brand_id: Mapped[uuid.UUID] = brand_column()
    joined_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    streak: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    longest_streak: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    last_active_day: Mapped[date | None] = mapped_column(Date)


class ChallengeActionRecord(Base):
    """An action counted toward a member's challenge: once per subject (the post, comment,
    reacted-to content or experience session), whatever event reports it again."""

    __tablename__ = "challenge_actions"
    __table_args__ = (
        UniqueConstraint("challenge_id", "member_id", "action", "subject_id"),
        Index(None, "member_id", "subject_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    brand_id: Mapped[uuid.UUID] = brand_column()
    challenge_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("challenges.id", ondelete="CASCADE"))
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.member_id"))
    action: Mapped[ChallengeAction] = mapped_column(text_enum(ChallengeAction, "challenge_action"))
    subject_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    source_event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    day: Mapped[date] = mapped_column(Date)  # the UTC day of `occurred_at`: streaks count days
