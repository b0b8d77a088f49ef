"""What each consumed event leaves in the journal: one row per event about a member, holding
the facts the member 360 and segments' event conditions read. Events about no one member
(catalog changes, sessions scheduled) leave nothing."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.community.experiences.events import (
    ExperienceBooked,
    ExperienceCancelled,
    ExperienceCheckedIn,
    ExperienceReviewed,
)
from services.community.posts.events import (
    CommentCreated,
    PostCreated,
    ReactionAdded,
    ReactionRemoved,
)
from services.community.prompts.events import PromptAnswered
from services.kernel.events import Event
from services.marketing.models import ActivityKind
from services.members.events import MemberConsentChanged, MemberCreated, MemberUpdated
from services.rewards.events import (
    DropEntered,
    PerkRedeemed,
    PerkRedemptionCancelled,
    PointsAdjusted,
    PointsEarned,
    PointsExpired,
    PointsPending,
    PointsRedeemed,
    PurchaseRecorded,
    PurchaseReturned,
    TierChanged,
)

# The profile fields a `member.created` / `member.updated` carries into the 360.
PROFILE_FIELDS = (
    "external_id",
    "email",
    "display_name",
    "locale",
    "time_zone",
    "birthday",
    "status",
    "traits",
    "interests",
)


@dataclass(frozen=True, slots=True)
class JournalRow:
    event_id: uuid.UUID
    brand_id: uuid.UUID
    member_id: uuid.UUID
    kind: ActivityKind
    occurred_at: datetime
    amount_minor: int | None = None
    points: int | None = None
    category: str | None = None
    categories: list[str] | None = None
    ref: str | None = None
    data: dict[str, Any] | None = None


def _row(event: Event, member_id: uuid.UUID, kind: ActivityKind, **facts: Any) -> JournalRow:
    at = facts.pop("at", None) or event.occurred_at
    return JournalRow(event.id, event.brand_id, member_id, kind, at, **facts)


def _categories(lines: list[Any]) -> list[str]:
    return sorted({line.category for line in lines if line.category})


PointsEvent = PointsEarned | PointsPending | PointsRedeemed | PointsExpired | PointsAdjusted


def journal_row(event: Event) -> JournalRow | None:
    """The journal row an event stands for, or None for one marketing does not record."""
    if isinstance(event, MemberCreated | MemberUpdated):
        profile = event.data.model_dump(mode="json", include=set(PROFILE_FIELDS))
        return _row(
            event,
            event.data.member_id,
            ActivityKind.PROFILE,
            ref="created" if isinstance(event, MemberCreated) else "updated",
            data=profile,
        )
    if isinstance(event, MemberConsentChanged):
        consent = event.data
        return _row(
            event,
            consent.member_id,
            ActivityKind.CONSENT,
            ref=consent.purpose.value,
            points=1 if consent.granted else 0,
            at=consent.changed_at,
        )
    if isinstance(event, PurchaseRecorded | PurchaseReturned):
        sale = event.data
        kind = ActivityKind.PURCHASE if isinstance(event, PurchaseRecorded) else ActivityKind.RETURN
        return _row(
            event,
            sale.member_id,
            kind,
            amount_minor=sale.amount_minor,
            categories=_categories(sale.lines),
            ref=sale.order_id,
            at=sale.occurred_at,  # when it happened at the till, not when it was reported
        )
    if isinstance(event, PointsEvent):
        movement = event.data
        return _row(
            event,
            movement.member_id,
            ActivityKind.POINTS,
            points=movement.points,
            category=movement.kind.value,
            ref=movement.bucket.value,
            data={"available": movement.available, "pending": movement.pending},
        )
    if isinstance(event, TierChanged):
        change = event.data
        return _row(
            event,
            change.member_id,
            ActivityKind.TIER,
            ref=str(change.to_tier_id) if change.to_tier_id else None,
            category=change.to_tier,
            data={"from_tier": change.from_tier, "direction": change.direction},
        )
    if isinstance(event, PerkRedeemed | PerkRedemptionCancelled):
        redemption = event.data
        kind = (
            ActivityKind.REDEMPTION
            if isinstance(event, PerkRedeemed)
            else ActivityKind.REDEMPTION_CANCELLED
        )
        return _row(
            event,
            redemption.member_id,
            kind,
            ref=str(redemption.perk_id),
            category=redemption.category,
            points=redemption.points,
        )
    if isinstance(event, DropEntered):
        entry = event.data
        return _row(
            event,
            entry.member_id,
            ActivityKind.DROP_ENTRY,
            ref=str(entry.perk_id),
            at=entry.entered_at,
        )
    if isinstance(event, PostCreated):
        return _row(event, event.data.author_id, ActivityKind.POST, ref=str(event.data.post_id))
    if isinstance(event, CommentCreated):
        comment = event.data
        return _row(event, comment.author_id, ActivityKind.COMMENT, ref=str(comment.post_id))
    if isinstance(event, ReactionAdded | ReactionRemoved):
        reaction = event.data
        kind = (
            ActivityKind.REACTION
            if isinstance(event, ReactionAdded)
            else ActivityKind.REACTION_REMOVED
        )
        return _row(event, reaction.member_id, kind, ref=str(reaction.post_id))
    if isinstance(event, PromptAnswered):
        answer = event.data
        return _row(event, answer.member_id, ActivityKind.ANSWER, ref=str(answer.prompt_id))
    if isinstance(event, ExperienceBooked | ExperienceCancelled | ExperienceCheckedIn):
        visit = event.data
        kind = {
            ExperienceBooked: ActivityKind.BOOKING,
            ExperienceCancelled: ActivityKind.BOOKING_CANCELLED,
            ExperienceCheckedIn: ActivityKind.CHECK_IN,
        }[type(event)]
        return _row(event, visit.member_id, kind, ref=str(visit.experience_id))
    if isinstance(event, ExperienceReviewed):
        review = event.data
        return _row(event, review.member_id, ActivityKind.REVIEW, ref=str(review.experience_id))
    return None
