"""What goes on a member's channel, and which events become what for whom.

A message is small and self-contained: a subscription turns it into its GraphQL answer without
calling any service. Who receives it comes from the event's payload alone:

- points moved (`points.earned/pending/redeemed/expired/adjusted`): `data.member_id`;
- `tier.changed`: `data.member_id`;
- a reply (`comment.created` once published, or `comment.approved` for one held first): the
  post's author (`data.post_author_id`). A reply to a comment also goes to the post's author: the
  payload does not carry the parent comment's author;
- `reaction.added`: the author of the post or comment reacted to (`data.target_author_id`);
- `experience.booked` with `promoted_from_waitlist`: `data.member_id`;
- `drop.won`: `data.member_id`.

Nobody is told about what they did themselves (a reaction to one's own post), nor about what
happened long ago (`NEWS_MAX_AGE`).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from services.community.experiences.events import ExperienceBooked
from services.community.models import ContentStatus
from services.community.posts.events import CommentApproved, CommentCreated, ReactionAdded
from services.kernel.events import Event
from services.rewards.events import (
    DropWon,
    PointsAdjusted,
    PointsEarned,
    PointsExpired,
    PointsPending,
    PointsRedeemed,
    TierChanged,
)

POINTS_EVENTS = (PointsEarned, PointsPending, PointsRedeemed, PointsExpired, PointsAdjusted)
NOTIFYING_EVENTS: tuple[type[Event], ...] = (
    *POINTS_EVENTS,
    TierChanged,
    CommentCreated,
    CommentApproved,
    ReactionAdded,
    ExperienceBooked,
    DropWon,
)

# A brand's history loaded in bulk comes through the same events, with their own (old) times:
# those are history, not news. Points are the exception: a purchase's points carry the purchase's
# time, and a till that sends yesterday's sales today still moves today's balance.
NEWS_MAX_AGE = timedelta(hours=1)


class Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: uuid.UUID
    occurred_at: AwareDatetime


class PointsMessage(Message):
    kind: Literal["points"] = "points"
    entry_kind: str  # the ledger entry's kind: earn, redeem, refund, adjust, expire, ...
    bucket: str  # available or pending
    points: int
    reason: str
    source_type: str  # what caused it: purchase, redemption, activity, ...
    source_id: str | None
    available: int
    pending: int


class TierMessage(Message):
    kind: Literal["tier"] = "tier"
    direction: Literal["up", "down"]
    from_tier_id: uuid.UUID | None
    from_tier: str | None
    to_tier_id: uuid.UUID | None
    to_tier: str | None
    reason: str


class ReplyMessage(Message):
    kind: Literal["reply"] = "reply"
    author_id: uuid.UUID  # who replied
    post_id: uuid.UUID
    comment_id: uuid.UUID
    parent_id: uuid.UUID | None


class ReactionMessage(Message):
    kind: Literal["reaction"] = "reaction"
    member_id: uuid.UUID  # who reacted
    reaction: str
    post_id: uuid.UUID
    comment_id: uuid.UUID | None


class BookingPromotedMessage(Message):
    kind: Literal["booking_promoted"] = "booking_promoted"
    booking_id: uuid.UUID
    session_id: uuid.UUID
    experience_id: uuid.UUID
    seats: int
    starts_at: AwareDatetime


class DropWonMessage(Message):
    kind: Literal["drop_won"] = "drop_won"
    drop_id: uuid.UUID
    perk_id: uuid.UUID
    redemption_id: uuid.UUID
    position: int


NotificationMessage = ReplyMessage | ReactionMessage | BookingPromotedMessage | DropWonMessage
MemberMessage = Annotated[
    PointsMessage | TierMessage | NotificationMessage, Field(discriminator="kind")
]
MESSAGE = TypeAdapter[MemberMessage](MemberMessage)


def encode(message: MemberMessage) -> bytes:
    return MESSAGE.dump_json(message)


def decode(raw: bytes | str) -> MemberMessage:
    """Raises pydantic's `ValidationError` for what this version does not understand."""
    return MESSAGE.validate_json(raw)


def message_for(event: Event, now: datetime) -> tuple[uuid.UUID, MemberMessage] | None:
    """The member of `event.brand_id` to tell, and what; None for what tells nobody."""
    at = event.occurred_at
    if isinstance(event, POINTS_EVENTS):
        movement = event.data
        return movement.member_id, PointsMessage(
            event_id=event.id,
            occurred_at=at,
            entry_kind=movement.kind.value,
            bucket=movement.bucket.value,
            points=movement.points,
            reason=movement.reason,
            source_type=movement.source_type,
            source_id=movement.source_id,
            available=movement.available,
            pending=movement.pending,
        )
    if now - event.occurred_at > NEWS_MAX_AGE:
        return None
    if isinstance(event, TierChanged):
        tier = event.data
        return tier.member_id, TierMessage(
            event_id=event.id,
            occurred_at=at,
            direction=tier.direction,
            from_tier_id=tier.from_tier_id,
            from_tier=tier.from_tier,
            to_tier_id=tier.to_tier_id,
            to_tier=tier.to_tier,
            reason=tier.reason,
        )
    if isinstance(event, CommentCreated | CommentApproved):
        comment = event.data
        if comment.status != ContentStatus.PUBLISHED or comment.author_id == comment.post_author_id:
            return None
        return comment.post_author_id, ReplyMessage(
            event_id=event.id,
            occurred_at=at,
            author_id=comment.author_id,
            post_id=comment.post_id,
            comment_id=comment.comment_id,
            parent_id=comment.parent_id,
        )
    if isinstance(event, ReactionAdded):
        reaction = event.data
        if reaction.member_id == reaction.target_author_id:
            return None
        return reaction.target_author_id, ReactionMessage(
            event_id=event.id,
            occurred_at=at,
            member_id=reaction.member_id,
            reaction=reaction.kind.value,
            post_id=reaction.post_id,
            comment_id=reaction.comment_id,
        )
    if isinstance(event, ExperienceBooked):
        booked = event.data
        if not booked.promoted_from_waitlist:
            return None
        return booked.member_id, BookingPromotedMessage(
            event_id=event.id,
            occurred_at=at,
            booking_id=booked.booking_id,
            session_id=booked.session_id,
            experience_id=booked.experience_id,
            seats=booked.seats,
            starts_at=booked.starts_at,
        )
    if isinstance(event, DropWon):
        won = event.data
        return won.member_id, DropWonMessage(
            event_id=event.id,
            occurred_at=at,
            drop_id=won.drop_id,
            perk_id=won.perk_id,
            redemption_id=won.redemption_id,
            position=won.position,
        )
    return None
