"""Tables of milestones: each reached once per member, and the tally of reactions received."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.community.models import Base, brand_column, created_column, uuid_pk


class ReachedMilestone(Base):
    """A milestone a member reached ("anniversary:3", "tier:Gold", "first_post", ...).

    The unique key is what makes each one happen once per member, whichever consumer, job or
    redelivery gets there first. `member_id` has no foreign key to the members projection on
    purpose: `tier.changed` comes from another stream and may arrive before the member's
    `member.created`; the milestone is real either way.
    """

    __tablename__ = "milestones"
    __table_args__ = (
        UniqueConstraint("member_id", "milestone"),
        Index(None, "brand_id", "member_id", text("id DESC")),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    brand_id: Mapped[uuid.UUID] = brand_column()
    member_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    milestone: Mapped[str] = mapped_column(Text)
    reached_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_column()


class ReactionTally(Base):
    """Reactions a member's content has received from others, net of those taken back: kept
    from `reaction.added` / `reaction.removed`, for the "hundredth reaction" milestone."""

    __tablename__ = "milestone_reaction_tallies"

    member_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    brand_id: Mapped[uuid.UUID] = brand_column()
    received: Mapped[int] = mapped_column(Integer, server_default=text("0"))
