"""What members did, from rewards' and community's events: append-only interaction rows with
their kind's weight (`weights`), each item's interaction count, and the member marked for the
next fold-in.

Undoing is a row of the opposite sign (a return, a cancelled redemption or booking, a reaction
taken back), never a delete. Birthday gifts are not interactions: the member did not choose
them. An erased member's events write nothing (see the repository's module doc for how that
holds against an erasure running at the same time).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from recommender.intake import weights
from recommender.intake.repository import (
    IntakeRepository,
    InteractionRow,
    MemberSeen,
    ProductRow,
    StatsDelta,
)
from recommender.store.models import INBOX, InteractionKind, ItemKind, item_id_of
from services.community.experiences.events import (
    ExperienceBooked,
    ExperienceCancelled,
    ExperienceCheckedIn,
)
from services.community.experiences.models import BookingStatus
from services.community.posts.events import (
    CommentCreated,
    PostCreated,
    ReactionAdded,
    ReactionRemoved,
)
from services.community.prompts.events import PromptAnswered
from services.kernel.consumer import ConsumerSpec
from services.kernel.events import Event
from services.rewards.events import (
    DropEntered,
    PerkRedeemed,
    PerkRedemptionCancelled,
    PurchaseRecorded,
    PurchaseReturned,
    RedemptionData,
)


def _row(
    event: Event,
    member_id: uuid.UUID,
    item_id: str,
    kind: InteractionKind,
    weight: float,
    at: datetime | None = None,
) -> InteractionRow:
    return InteractionRow(
        brand_id=event.brand_id,
        member_id=member_id,
        item_id=item_id,
        kind=kind,
        weight=weight,
        occurred_at=at or event.occurred_at,
    )


def _act(
    event: Event,
    member_id: uuid.UUID,
    item_id: str,
    kind: InteractionKind,
    *,
    undo: bool = False,
    at: datetime | None = None,
) -> list[InteractionRow]:
    """One interaction of `kind`, or the row that takes one back (`undo`)."""
    weight = weights.undone(kind) if undo else weights.weight(kind)
    return [_row(event, member_id, item_id, kind, weight, at)]


def _is_gift(redemption: RedemptionData) -> bool:
    """A birthday gift: the only redemption that costs nothing and comes from no drop (perks
    cost at least a point)."""
    return redemption.points == 0 and redemption.drop_id is None


def _lines(event: PurchaseRecorded | PurchaseReturned) -> list[InteractionRow]:
    """A row per line of a purchase or return, its weight by the units (capped)."""
    buying = isinstance(event, PurchaseRecorded)
    kind = InteractionKind.PURCHASE if buying else InteractionKind.RETURN
    weigh = weights.purchase if buying else weights.returned
    return [
        _row(
            event,
            event.data.member_id,
            item_id_of(ItemKind.PRODUCT, line.sku),
            kind,
            weigh(line.quantity),
            event.data.occurred_at,  # when it happened at the till, not when it was reported
        )
        for line in event.data.lines
        if weigh(line.quantity)
    ]


def interactions_of(event: Event) -> list[InteractionRow]:
    """The interaction rows one event stands for (none for an event that is not one)."""
    if isinstance(event, PurchaseRecorded | PurchaseReturned):
        return _lines(event)
    if isinstance(event, PerkRedeemed | PerkRedemptionCancelled):
        redemption = event.data
        if _is_gift(redemption):
            return []
        perk = item_id_of(ItemKind.PERK, redemption.perk_id)
        undo = isinstance(event, PerkRedemptionCancelled)
        return _act(event, redemption.member_id, perk, InteractionKind.REDEMPTION, undo=undo)
    if isinstance(event, DropEntered):
        entry = event.data
        perk = item_id_of(ItemKind.PERK, entry.perk_id)
        return _act(event, entry.member_id, perk, InteractionKind.DROP_ENTRY, at=entry.entered_at)
    if isinstance(event, PostCreated):
        post = event.data
        return _act(
            event, post.author_id, item_id_of(ItemKind.POST, post.post_id), InteractionKind.POST
        )
    if isinstance(event, CommentCreated):
        comment = event.data
        post_id = item_id_of(ItemKind.POST, comment.post_id)
        return _act(event, comment.author_id, post_id, InteractionKind.COMMENT)
    if isinstance(event, ReactionAdded | ReactionRemoved):
        # A reaction to a comment still says the member engaged with the post it is under.
        reaction = event.data
        post_id = item_id_of(ItemKind.POST, reaction.post_id)
        undo = isinstance(event, ReactionRemoved)
        return _act(event, reaction.member_id, post_id, InteractionKind.REACTION, undo=undo)
    if isinstance(event, PromptAnswered):
        answer = event.data
        prompt = item_id_of(ItemKind.PROMPT, answer.prompt_id)
        return _act(event, answer.member_id, prompt, InteractionKind.ANSWER)
    if isinstance(event, ExperienceBooked | ExperienceCheckedIn | ExperienceCancelled):
        visit = event.data
        experience = item_id_of(ItemKind.EXPERIENCE, visit.experience_id)
        if isinstance(event, ExperienceCheckedIn):
            return _act(event, visit.member_id, experience, InteractionKind.CHECK_IN)
        if isinstance(event, ExperienceBooked):
            return _act(event, visit.member_id, experience, InteractionKind.BOOKING)
        # Only a confirmed booking was an `experience.booked`; a waitlist place or an unpaid
        # hold ending (or a late payment given back) undoes nothing.
        if event.data.previous_status != BookingStatus.CONFIRMED:
            return []
        return _act(event, visit.member_id, experience, InteractionKind.BOOKING, undo=True)
    return []


def _products(events: Sequence[Event]) -> list[ProductRow]:
    """The products the batch's purchases name: first seen when, and the last category a line
    gave (a line without one keeps what is known)."""
    found: dict[tuple[uuid.UUID, str], ProductRow] = {}
    for event in events:
        if not isinstance(event, PurchaseRecorded):
            continue
        for line in event.data.lines:
            key = (event.brand_id, item_id_of(ItemKind.PRODUCT, line.sku))
            known = found.get(key)
            category = line.category
            if known is not None:
                category = category or known.category
            found[key] = ProductRow(
                brand_id=event.brand_id,
                item_id=key[1],
                sku=line.sku,
                category=category,
                created_at=known.created_at if known is not None else event.data.occurred_at,
            )
    return list(found.values())


async def apply_interaction_events(session: AsyncSession, events: Sequence[Event]) -> None:
    """The batch in stream order, as one write of each kind: products, members claimed (and
    marked stale at their first interaction of the batch), interactions, item counts."""
    rows = [row for event in events for row in interactions_of(event)]
    repository = IntakeRepository(session)
    await repository.upsert_products(_products(events))
    seen: dict[uuid.UUID, MemberSeen] = {}
    for row in rows:
        if row.member_id not in seen:
            seen[row.member_id] = MemberSeen(
                row.brand_id, row.member_id, joined_at=row.occurred_at, stale_since=row.occurred_at
            )
    live = await repository.claim_members(list(seen.values()))
    kept = [row for row in rows if row.member_id in live]
    await repository.add_interactions(kept)
    counts: dict[tuple[uuid.UUID, str], int] = {}
    for row in kept:
        key = (row.brand_id, row.item_id)
        # Net interactions: an undone one takes its count back.
        counts[key] = counts.get(key, 0) + (1 if row.weight > 0 else -1)
    await repository.bump_stats(
        [StatsDelta(brand_id, item_id, n) for (brand_id, item_id), n in counts.items()]
    )


async def apply_interaction_event(session: AsyncSession, event: Event) -> None:
    await apply_interaction_events(session, [event])


INTERACTIONS_CONSUMER = ConsumerSpec(
    name="recommender.interactions",
    services=["rewards", "community"],
    handler=apply_interaction_event,
    inbox=INBOX,
    event_types=frozenset(
        {
            PurchaseRecorded.event_type(),
            PurchaseReturned.event_type(),
            PerkRedeemed.event_type(),
            PerkRedemptionCancelled.event_type(),
            DropEntered.event_type(),
            PostCreated.event_type(),
            CommentCreated.event_type(),
            ReactionAdded.event_type(),
            ReactionRemoved.event_type(),
            PromptAnswered.event_type(),
            ExperienceBooked.event_type(),
            ExperienceCancelled.event_type(),
            ExperienceCheckedIn.event_type(),
        }
    ),
    handle_many=apply_interaction_events,
)
