"""Rewards' own view of members, kept from `member.*` events (no reads of the members schema).

It gives purchases their member by external id, birthday gifts their dates, and tells rewards
when a member is erased (the account then keeps its ledger, under its id only).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.consumer import ConsumerSpec
from services.kernel.events import Event
from services.members.events import MemberCreated, MemberErased, MemberUpdated
from services.rewards.ledger.repository import LedgerRepository, MemberProfile
from services.rewards.models import INBOX


def _profile(event: Event) -> MemberProfile | None:
    """The account an event leaves behind; None for an event that does not touch it."""
    if isinstance(event, MemberCreated | MemberUpdated):
        return MemberProfile(
            brand_id=event.brand_id,
            member_id=event.data.member_id,
            external_id=event.data.external_id,
            birthday=event.data.birthday,
            member_status=event.data.status.value,
        )
    if isinstance(event, MemberErased):
        return MemberProfile(
            brand_id=event.brand_id,
            member_id=event.data.member_id,
            external_id=None,
            birthday=None,
            member_status="erased",
        )
    return None


async def apply_member_events(session: AsyncSession, events: Sequence[Event]) -> None:
    """Each event sets the whole profile, so the last one per member (in stream order) is the
    member's state after all of them: one upsert for the batch."""
    latest: dict[tuple[uuid.UUID, uuid.UUID], MemberProfile] = {}
    for event in events:
        if (profile := _profile(event)) is not None:
            latest[profile.brand_id, profile.member_id] = profile
    await LedgerRepository(session).upsert_accounts(list(latest.values()))


async def apply_member_event(session: AsyncSession, event: Event) -> None:
    await apply_member_events(session, [event])


MEMBERS_PROJECTION = ConsumerSpec(
    name="rewards.members",
    services=["members"],
    handler=apply_member_event,
    inbox=INBOX,
    event_types=frozenset({"member.created", "member.updated", "member.erased"}),
    handle_many=apply_member_events,
    # Each event sets the whole account profile: an older one redelivered after a newer one
    # (a retried message, a dead letter) must not put the older profile back.
    latest_wins=True,
)
