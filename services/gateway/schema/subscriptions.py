"""Subscriptions over `graphql-transport-ws`: the member's points and tier as they change, and
their notifications (a reply, a reaction, a place from the waitlist, a drop won).

Each subscription listens to the member's Redis channel (see `services.gateway.notifications`),
where the workers publish what events mean for that member. A subscription sees what is published
while it is open and nothing from before: reconnecting never replays old news, so an app that
reconnects reads its state with a query and then follows the changes.

Answers are built from the message alone, with no call to a service: a socket may stay open for
hours, and its context's DataLoaders would be as old.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncGenerator, Callable
from enum import Enum
from typing import Annotated, TypeVar

import strawberry
import structlog
from pydantic import ValidationError

from services.gateway.context import GatewayInfo
from services.gateway.ids import encode_global_id
from services.gateway.notifications.channels import MemberChannels, channels_of, member_channel
from services.gateway.notifications.messages import (
    BookingPromotedMessage,
    DropWonMessage,
    MemberMessage,
    PointsMessage,
    ReactionMessage,
    ReplyMessage,
    TierMessage,
    decode,
)
from services.gateway.schema.rewards_types import LedgerEntry, ledger_entry_from_json

log = structlog.get_logger(__name__)

T = TypeVar("T")

# Global id type names of the objects notifications are about (those `node(id:)` fetches).
MEMBER, POST, COMMENT, BOOKING, SESSION, EXPERIENCE = (
    "Member",
    "Post",
    "Comment",
    "Booking",
    "Session",
    "Experience",
)
TIER, DROP, PERK, REDEMPTION = "Tier", "Drop", "Perk", "Redemption"


def _gid(type_name: str, raw: uuid.UUID | None) -> strawberry.ID | None:
    return encode_global_id(type_name, raw) if raw is not None else None


# --- Points and tier ----------------------------------------------------------------------------


@strawberry.type(description="The member's points moved: the ledger entry and the balances after.")
class PointsChange:
    available: int = strawberry.field(description="Points the member can spend now.")
    pending: int = strawberry.field(description="Points earned but not yet available.")
    entry: LedgerEntry = strawberry.field(description="The ledger entry that moved them.")


def _points_change(message: MemberMessage) -> PointsChange | None:
    if not isinstance(message, PointsMessage):
        return None
    entry = ledger_entry_from_json(
        {
            "kind": message.entry_kind,
            "bucket": message.bucket,
            "points": message.points,
            "reason": message.reason,
            "source_type": message.source_type,
            "source_id": message.source_id,
            "occurred_at": message.occurred_at.isoformat(),
        }
    )
    return PointsChange(available=message.available, pending=message.pending, entry=entry)


@strawberry.enum
class TierChangeDirection(Enum):
    UP = "up"
    DOWN = "down"


@strawberry.type(description="The member moved to another tier.")
class TierChange:
    direction: TierChangeDirection
    from_tier_id: strawberry.ID | None = strawberry.field(
        description="The tier left (a `Tier` id), or null when the member had none."
    )
    from_tier_name: str | None
    to_tier_id: strawberry.ID | None = strawberry.field(description="The tier reached.")
    to_tier_name: str | None
    reason: str = strawberry.field(description="Why, in words shown to the member.")
    changed_at: dt.datetime


def _tier_change(message: MemberMessage) -> TierChange | None:
    if not isinstance(message, TierMessage):
        return None
    return TierChange(
        direction=TierChangeDirection(message.direction),
        from_tier_id=_gid(TIER, message.from_tier_id),
        from_tier_name=message.from_tier,
        to_tier_id=_gid(TIER, message.to_tier_id),
        to_tier_name=message.to_tier,
        reason=message.reason,
        changed_at=message.occurred_at,
    )


# --- Notifications ------------------------------------------------------------------------------


@strawberry.enum
class NotificationKind(Enum):
    REPLY = "reply"
    REACTION = "reaction"
    BOOKING_PROMOTED = "booking_promoted"
    DROP_WON = "drop_won"


@strawberry.interface(description="Something that just happened for the member.")
class Notification:
    kind: NotificationKind
    text: str = strawberry.field(description="What happened, in words to show the member.")
    subject_id: strawberry.ID | None = strawberry.field(
        description="The global id of what it is about (a comment, a post, a booking, a drop)."
    )
    created_at: dt.datetime


@strawberry.type(description="Someone replied on the member's post.")
class ReplyNotification(Notification):
    actor_id: strawberry.ID = strawberry.field(description="Who replied (a `Member` id).")
    post_id: strawberry.ID
    reply_id: strawberry.ID = strawberry.field(description="The reply (a `Comment` id).")
    parent_comment_id: strawberry.ID | None = strawberry.field(
        description="The comment it answers, or null for a reply to the post itself."
    )


@strawberry.type(description="Someone reacted to the member's post or comment.")
class ReactionNotification(Notification):
    actor_id: strawberry.ID = strawberry.field(description="Who reacted (a `Member` id).")
    reaction: str = strawberry.field(description="love, helpful, wow, haha or support.")
    post_id: strawberry.ID
    comment_id: strawberry.ID | None = strawberry.field(
        description="The comment reacted to, or null for the post itself."
    )


@strawberry.type(description="A place opened up: the member's waitlisted booking is confirmed.")
class BookingPromotedNotification(Notification):
    booking_id: strawberry.ID
    session_id: strawberry.ID
    experience_id: strawberry.ID
    seats: int
    starts_at: dt.datetime


@strawberry.type(description="The member won a drop: the perk is theirs.")
class DropWonNotification(Notification):
    drop_id: strawberry.ID
    perk_id: strawberry.ID
    redemption_id: strawberry.ID = strawberry.field(description="The redemption made for them.")
    position: int = strawberry.field(description="Their place among the winners, from 1.")


# A union of types that implement `Notification`: query the shared fields with
# `... on Notification { kind text subjectId createdAt }`.
AnyNotification = (
    ReplyNotification | ReactionNotification | BookingPromotedNotification | DropWonNotification
)
MemberNotification = Annotated[
    AnyNotification, strawberry.union("MemberNotification", description="A notification, by kind.")
]


def _reply(message: ReplyMessage) -> ReplyNotification:
    on_thread = message.parent_id is not None
    return ReplyNotification(
        kind=NotificationKind.REPLY,
        text="Someone replied in a thread on your post."
        if on_thread
        else "Someone replied to your post.",
        subject_id=encode_global_id(COMMENT, message.comment_id),
        created_at=message.occurred_at,
        actor_id=encode_global_id(MEMBER, message.author_id),
        post_id=encode_global_id(POST, message.post_id),
        reply_id=encode_global_id(COMMENT, message.comment_id),
        parent_comment_id=_gid(COMMENT, message.parent_id),
    )


def _reaction(message: ReactionMessage) -> ReactionNotification:
    on_comment = message.comment_id is not None
    return ReactionNotification(
        kind=NotificationKind.REACTION,
        text=f"Someone reacted “{message.reaction}” to your {'comment' if on_comment else 'post'}.",
        subject_id=encode_global_id(COMMENT, message.comment_id)
        if message.comment_id is not None
        else encode_global_id(POST, message.post_id),
        created_at=message.occurred_at,
        actor_id=encode_global_id(MEMBER, message.member_id),
        reaction=message.reaction,
        post_id=encode_global_id(POST, message.post_id),
        comment_id=_gid(COMMENT, message.comment_id),
    )


def _booking_promoted(message: BookingPromotedMessage) -> BookingPromotedNotification:
    seats = "a seat" if message.seats == 1 else f"{message.seats} seats"
    return BookingPromotedNotification(
        kind=NotificationKind.BOOKING_PROMOTED,
        text=f"A place opened up: you are off the waitlist with {seats}.",
        subject_id=encode_global_id(BOOKING, message.booking_id),
        created_at=message.occurred_at,
        booking_id=encode_global_id(BOOKING, message.booking_id),
        session_id=encode_global_id(SESSION, message.session_id),
        experience_id=encode_global_id(EXPERIENCE, message.experience_id),
        seats=message.seats,
        starts_at=message.starts_at,
    )


def _drop_won(message: DropWonMessage) -> DropWonNotification:
    return DropWonNotification(
        kind=NotificationKind.DROP_WON,
        text="You won the drop! Your perk is waiting in your redemptions.",
        subject_id=encode_global_id(DROP, message.drop_id),
        created_at=message.occurred_at,
        drop_id=encode_global_id(DROP, message.drop_id),
        perk_id=encode_global_id(PERK, message.perk_id),
        redemption_id=encode_global_id(REDEMPTION, message.redemption_id),
        position=message.position,
    )


def _notification(message: MemberMessage) -> AnyNotification | None:
    if isinstance(message, ReplyMessage):
        return _reply(message)
    if isinstance(message, ReactionMessage):
        return _reaction(message)
    if isinstance(message, BookingPromotedMessage):
        return _booking_promoted(message)
    if isinstance(message, DropWonMessage):
        return _drop_won(message)
    return None


# --- Following the member's channel -------------------------------------------------------------


async def _follow(
    info: GatewayInfo, convert: Callable[[MemberMessage], T | None]
) -> AsyncGenerator[T, None]:
    """Checks the token before the subscription starts (so a refusal is the operation's `error`
    message, with code UNAUTHENTICATED), then streams the member's messages that `convert` keeps."""
    context = info.context
    member = await context.subscriber()
    assert context.request is not None, "subscriptions are served over a websocket"
    channels = channels_of(context.request.app)
    return _stream(channels, member_channel(member.brand_id, member.member_id), convert)


async def _stream(
    channels: MemberChannels, channel: str, convert: Callable[[MemberMessage], T | None]
) -> AsyncGenerator[T, None]:
    async with channels.listen(channel) as queue:
        while True:
            raw = await queue.get()
            try:
                message = decode(raw)
            except ValidationError:
                # A newer publisher's kind of message: this version has nothing to say about it.
                log.warning("gateway.subscription.unreadable_message", channel=channel)
                continue
            answer = convert(message)
            if answer is not None:
                yield answer


@strawberry.type
class MemberSubscription:
    @strawberry.subscription(
        description="The member's points each time they move: the new balances and the ledger "
        'entry. Needs a member token (in `connection_init`: `{Authorization: "Bearer …"}`).'
    )
    async def points_changed(self, info: GatewayInfo) -> AsyncGenerator[PointsChange, None]:
        return await _follow(info, _points_change)

    @strawberry.subscription(description="The member's tier each time it changes.")
    async def tier_changed(self, info: GatewayInfo) -> AsyncGenerator[TierChange, None]:
        return await _follow(info, _tier_change)

    @strawberry.subscription(
        description="Replies and reactions to the member's posts and comments, places from a "
        "waitlist and drops won, as they happen."
    )
    async def notifications(self, info: GatewayInfo) -> AsyncGenerator[MemberNotification, None]:
        return await _follow(info, _notification)
