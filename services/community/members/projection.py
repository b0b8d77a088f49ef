"""The community's view of members, kept from `member.*` events (display name, status, join
date) and rewards' `tier.changed` (tier, for audiences and priority booking). `member.erased`
also erases what the member wrote and what the community keeps about them
(`services.community.erasure`), in the same transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.erasure.service import erase_member_content
from services.community.members.repository import (
    CommunityMemberRepository,
    MemberProfile,
    MemberTier,
)
from services.community.models import INBOX
from services.kernel.consumer import ConsumerSpec
from services.kernel.events import Event
from services.members.events import MemberCreated, MemberErased, MemberUpdated
from services.rewards.events import TierChanged


@dataclass
class _Member:
    """What a run of events leaves of one member: members events and tier changes set
    different columns, so each keeps its own last event."""

    first_seen: datetime  # `joined_at` of a row the first event would have created
    erased: bool = False  # a `member.erased` was among the events
    profile: tuple[str | None, str] | None = None  # display name and status, last event's
    joined_at: datetime | None = None  # the last `member.created`'s time, which fixes it
    tier: tuple[uuid.UUID | None, str | None] | None = None  # tier id and name, last event's


async def apply_member_events(session: AsyncSession, events: Sequence[Event]) -> None:
    """The events in stream order, folded per member into what applying them one after the
    other would leave, then written with one upsert per kind of change."""
    members: dict[tuple[uuid.UUID, uuid.UUID], _Member] = {}
    for event in events:
        if not isinstance(event, MemberCreated | MemberUpdated | MemberErased | TierChanged):
            continue
        member = members.setdefault(
            (event.brand_id, event.data.member_id), _Member(first_seen=event.occurred_at)
        )
        if isinstance(event, MemberCreated | MemberUpdated):
            member.profile = (event.data.display_name, event.data.status.value)
        elif isinstance(event, MemberErased):
            member.profile = (None, "erased")
            member.erased = True
        else:
            member.tier = (event.data.to_tier_id, event.data.to_tier)
        if isinstance(event, MemberCreated):
            member.joined_at = event.occurred_at
    joined: list[MemberProfile] = []
    seen: list[MemberProfile] = []
    tiers: list[MemberTier] = []
    for (brand_id, member_id), member in members.items():
        # A row the batch creates gets the join date sequential handling would give it.
        joined_at = member.joined_at or member.first_seen
        if member.profile is not None:
            name, status = member.profile
            profile = MemberProfile(brand_id, member_id, name, status, joined_at)
            (seen if member.joined_at is None else joined).append(profile)
        if member.tier is not None:
            tier_id, tier_name = member.tier
            tiers.append(MemberTier(brand_id, member_id, tier_id, tier_name, joined_at))
    repository = CommunityMemberRepository(session)
    # The three write disjoint columns (tiers vs the rest; a member is joined or seen, not
    # both), so their order does not matter.
    await repository.upsert_profiles(joined, joined=True)
    await repository.upsert_profiles(seen, joined=False)
    await repository.upsert_tiers(tiers)
    # In the transaction that marks the member erased, from which on their writes are refused.
    for (brand_id, member_id), member in members.items():
        if member.erased:
            await erase_member_content(session, brand_id, member_id)


async def apply_member_event(session: AsyncSession, event: Event) -> None:
    await apply_member_events(session, [event])


def _state_of(event: Event) -> str:
    """Members events rewrite the member's profile whole, `tier.changed` their tier whole: an
    older event of one kind is superseded only by a newer one of the same kind."""
    return "tier" if isinstance(event, TierChanged) else "profile"


MEMBERS_PROJECTION = ConsumerSpec(
    name="community.members",
    services=["members", "rewards"],
    handler=apply_member_event,
    inbox=INBOX,
    event_types=frozenset({"member.created", "member.updated", "member.erased", "tier.changed"}),
    handle_many=apply_member_events,
    latest_wins=True,
    state_of=_state_of,
)
