"""The community's view of members, kept from `member.*` events (display name, status, join
date) and rewards' `tier.changed` (tier, for audiences and priority booking)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.members.repository import CommunityMemberRepository
from services.community.models import INBOX
from services.kernel.consumer import ConsumerSpec
from services.kernel.events import Event
from services.members.events import MemberCreated, MemberErased, MemberUpdated
from services.rewards.events import TierChanged


async def apply_member_event(session: AsyncSession, event: Event) -> None:
    repository = CommunityMemberRepository(session)
    if isinstance(event, MemberCreated | MemberUpdated):
        await repository.upsert_profile(
            brand_id=event.brand_id,
            member_id=event.data.member_id,
            display_name=event.data.display_name,
            member_status=event.data.status.value,
            seen_at=event.occurred_at,
            joined=isinstance(event, MemberCreated),
        )
    elif isinstance(event, MemberErased):
        await repository.upsert_profile(
            brand_id=event.brand_id,
            member_id=event.data.member_id,
            display_name=None,
            member_status="erased",
            seen_at=event.occurred_at,
            joined=False,
        )
    elif isinstance(event, TierChanged):
        await repository.upsert_tier(
            brand_id=event.brand_id,
            member_id=event.data.member_id,
            tier_id=event.data.to_tier_id,
            tier_name=event.data.to_tier,
            seen_at=event.occurred_at,
        )


MEMBERS_PROJECTION = ConsumerSpec(
    name="community.members",
    services=["members", "rewards"],
    handler=apply_member_event,
    inbox=INBOX,
    event_types=frozenset({"member.created", "member.updated", "member.erased", "tier.changed"}),
)
