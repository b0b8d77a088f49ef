"""What can be recommended, from the catalog events of rewards and community: perks, prompts,
posts, experiences and their sessions, with the facts the serving rules filter on.

Each catalog event carries the whole item (`perk.updated`, `prompt.published`, `post.*`,
`experience.session_*`), so the last one describes it; redemptions move a perk's stock and
bookings a session's seats in between. An item's `created_at` is the time of its first event,
`updated_at` the time of its last.

A perk's stock is the `inventory_remaining` of its last `perk.updated`, moved by the
redemptions after it. That needs them in the order rewards committed them, which the stream
keeps for one perk: a redemption and a change of the same perk both lock its row, so the later
one writes its outbox row after the earlier one committed. Moves for an item not known yet are
dropped: its first `perk.updated` precedes them in the stream and states the stock.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace

from sqlalchemy.ext.asyncio import AsyncSession

from recommender.intake.repository import (
    IntakeRepository,
    ItemChange,
    ItemRow,
    SeatsDelta,
    SessionRow,
)
from recommender.store.models import INBOX, ItemKind, item_id_of
from services.community.experiences.events import (
    ExperienceBooked,
    ExperienceCancelled,
    SessionCancelledEvent,
    SessionScheduled,
)
from services.community.experiences.models import BookingStatus
from services.community.models import AudienceKind, ContentStatus
from services.community.posts.events import PostApproved, PostCreated, PostRemoved
from services.community.prompts.events import PromptDeleted, PromptPublished
from services.kernel.consumer import ConsumerSpec
from services.kernel.events import Event
from services.rewards.events import PerkRedeemed, PerkRedemptionCancelled, PerkUpdated

# Audiences the recommender can tell from a member's facts; a group's or milestone's members
# it cannot, so such prompts are learned from but never served.
_SERVABLE_AUDIENCES = frozenset({AudienceKind.ALL, AudienceKind.TIERS})


def _text(*parts: str | None) -> str:
    """Item text for the content model: the non-empty parts, one per line."""
    return "\n".join(part for part in parts if part)


def _first(tags: Sequence[str]) -> str | None:
    return tags[0] if tags else None


def item_of(event: Event) -> ItemRow | None:
    """The whole item a catalog event describes; None for an event that only moves one."""
    if isinstance(event, PerkUpdated):
        perk = event.data
        return ItemRow(
            brand_id=event.brand_id,
            item_id=item_id_of(ItemKind.PERK, perk.perk_id),
            kind=ItemKind.PERK,
            title=perk.name,
            content=_text(perk.name, perk.description, perk.category, " ".join(perk.tags)),
            category=perk.category,
            tags=list(perk.tags),
            cost_points=perk.cost_points,
            tier_ids=list(perk.tier_ids),
            valid_from=perk.valid_from,
            valid_until=perk.valid_until,
            stock=perk.inventory_remaining,
            per_member_limit=perk.per_member_limit,
            author_id=None,
            # A birthday gift is granted, never redeemed: nothing to recommend.
            active=perk.active and not perk.is_birthday_gift,
            seen_at=event.occurred_at,
        )
    if isinstance(event, PromptPublished):
        prompt = event.data
        return ItemRow(
            brand_id=event.brand_id,
            item_id=item_id_of(ItemKind.PROMPT, prompt.prompt_id),
            kind=ItemKind.PROMPT,
            title=prompt.title,
            content=_text(prompt.title, prompt.body, " ".join(prompt.tags)),
            category=_first(prompt.tags),
            tags=list(prompt.tags),
            cost_points=None,
            tier_ids=list(prompt.audience_tier_ids),
            valid_from=prompt.starts_at,
            valid_until=prompt.ends_at,
            stock=None,
            per_member_limit=None,
            author_id=None,
            active=prompt.audience in _SERVABLE_AUDIENCES,
            seen_at=event.occurred_at,
        )
    if isinstance(event, PostCreated | PostApproved | PostRemoved):
        post = event.data
        if isinstance(event, PostCreated):
            # A held post waits for its `post.approved`.
            active = post.status == ContentStatus.PUBLISHED
        else:
            active = isinstance(event, PostApproved)
        # A group's posts are for its members, whom the recommender does not know (yet): they
        # are learned from but not recommended.
        active = active and post.group_id is None
        return ItemRow(
            brand_id=event.brand_id,
            item_id=item_id_of(ItemKind.POST, post.post_id),
            kind=ItemKind.POST,
            title="",
            # Events carry no post text (the body stays in the community): its kind, tags and
            # the products it names describe it.
            content=_text(
                post.kind.value, " ".join(post.tags), post.review_sku, " ".join(post.skus)
            ),
            category=_first(post.tags),
            tags=list(post.tags),
            cost_points=None,
            tier_ids=[],
            valid_from=None,
            valid_until=None,
            stock=None,
            per_member_limit=None,
            author_id=post.author_id,
            active=active,
            seen_at=event.occurred_at,
        )
    if isinstance(event, SessionScheduled | SessionCancelledEvent):
        # Every session event repeats its experience's title, kind, tags and host.
        session = event.data
        return ItemRow(
            brand_id=event.brand_id,
            item_id=item_id_of(ItemKind.EXPERIENCE, session.experience_id),
            kind=ItemKind.EXPERIENCE,
            title=session.title,
            content=_text(session.title, session.kind.value, " ".join(session.tags)),
            category=_first(session.tags),
            tags=list(session.tags),
            cost_points=None,
            tier_ids=[],
            valid_from=None,
            valid_until=None,
            stock=None,
            per_member_limit=None,
            author_id=session.host_member_id,
            # Served while it has a bookable session: the serving rules look at sessions.
            active=True,
            seen_at=event.occurred_at,
        )
    return None


def session_of(event: Event) -> SessionRow | None:
    """A session as a scheduling event describes it (no seats: bookings move those)."""
    if isinstance(event, SessionScheduled | SessionCancelledEvent):
        session = event.data
        return SessionRow(
            session_id=session.session_id,
            brand_id=event.brand_id,
            item_id=item_id_of(ItemKind.EXPERIENCE, session.experience_id),
            starts_at=session.starts_at,
            capacity=session.capacity,
            cancelled=isinstance(event, SessionCancelledEvent),
            booked_delta=0,
        )
    return None


def seats_moved(event: Event) -> SeatsDelta | None:
    if isinstance(event, ExperienceBooked):
        booking = event.data
        return SeatsDelta(booking.session_id, event.brand_id, booking.seats)
    if isinstance(event, ExperienceCancelled):
        # Only a confirmed booking counted its seats here (see `ExperienceBooked`).
        if event.data.previous_status != BookingStatus.CONFIRMED:
            return None
        return SeatsDelta(event.data.session_id, event.brand_id, -event.data.seats)
    return None


def change_of(event: Event) -> ItemChange | None:
    """A move of an item that leaves the rest as it is: stock, or a withdrawal."""
    if isinstance(event, PerkRedeemed | PerkRedemptionCancelled):
        delta = -1 if isinstance(event, PerkRedeemed) else 1
        item_id = item_id_of(ItemKind.PERK, event.data.perk_id)
        return ItemChange(event.brand_id, item_id, stock_delta=delta, deactivate=False)
    if isinstance(event, PromptDeleted):
        item_id = item_id_of(ItemKind.PROMPT, event.data.prompt_id)
        return ItemChange(event.brand_id, item_id, stock_delta=0, deactivate=True)
    return None


@dataclass
class _Item:
    """What a run of events leaves of one item: its last description, and the moves since."""

    row: ItemRow | None = None
    stock_delta: int = 0
    deactivate: bool = False


@dataclass
class _Session:
    """Seats moved before the batch's first description of the session (they apply only to a
    session already known), its last description, and seats moved after the first one."""

    brand_id: uuid.UUID
    seats_before: int = 0
    row: SessionRow | None = None
    seats_after: int = 0


async def apply_catalog_events(session: AsyncSession, events: Sequence[Event]) -> None:
    """The batch in stream order, folded per item and per session into what applying the
    events one by one leaves, then written with one statement per kind of change."""
    items: dict[tuple[uuid.UUID, str], _Item] = {}
    sessions: dict[uuid.UUID, _Session] = {}
    for event in events:
        if (row := item_of(event)) is not None:
            # A description states the stock and activity: earlier moves are in it.
            items[row.brand_id, row.item_id] = _Item(row=row)
        if (change := change_of(event)) is not None:
            item = items.setdefault((change.brand_id, change.item_id), _Item())
            item.stock_delta += change.stock_delta
            item.deactivate = item.deactivate or change.deactivate
        if (scheduled := session_of(event)) is not None:
            known = sessions.setdefault(scheduled.session_id, _Session(scheduled.brand_id))
            known.row = scheduled
        if (seats := seats_moved(event)) is not None:
            known = sessions.setdefault(seats.session_id, _Session(seats.brand_id))
            if known.row is None:
                known.seats_before += seats.booked_delta
            else:
                known.seats_after += seats.booked_delta
    described: list[ItemRow] = []
    moved: list[ItemChange] = []
    for (brand_id, item_id), item in items.items():
        if item.row is None:
            moved.append(ItemChange(brand_id, item_id, item.stock_delta, item.deactivate))
            continue
        stock = item.row.stock
        described.append(
            replace(
                item.row,
                stock=None if stock is None else stock + item.stock_delta,
                active=item.row.active and not item.deactivate,
            )
        )
    repository = IntakeRepository(session)
    await repository.lock_catalog(list(items), list(sessions))
    await repository.change_items(moved)
    await repository.upsert_items(described)
    # Seats moved before a session's first description in the batch land first, on the
    # session as it was before the batch.
    await repository.move_seats(
        [
            SeatsDelta(session_id, s.brand_id, s.seats_before)
            for session_id, s in sessions.items()
            if s.seats_before
        ]
    )
    await repository.upsert_sessions(
        [replace(s.row, booked_delta=s.seats_after) for s in sessions.values() if s.row is not None]
    )


async def apply_catalog_event(session: AsyncSession, event: Event) -> None:
    await apply_catalog_events(session, [event])


CATALOG_CONSUMER = ConsumerSpec(
    name="recommender.catalog",
    services=["rewards", "community"],
    handler=apply_catalog_event,
    inbox=INBOX,
    event_types=frozenset(
        {
            PerkUpdated.event_type(),
            PerkRedeemed.event_type(),
            PerkRedemptionCancelled.event_type(),
            PromptPublished.event_type(),
            PromptDeleted.event_type(),
            PostCreated.event_type(),
            PostApproved.event_type(),
            PostRemoved.event_type(),
            SessionScheduled.event_type(),
            SessionCancelledEvent.event_type(),
            ExperienceBooked.event_type(),
            ExperienceCancelled.event_type(),
        }
    ),
    handle_many=apply_catalog_events,
)
