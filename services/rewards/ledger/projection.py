"""Rewards' own view of members, kept from `member.*` events (no reads of the members schema).

It gives purchases their member by external id, birthday gifts their dates, and tells rewards
when a member is erased (the account then keeps its ledger, under its id only).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.consumer import ConsumerSpec
from services.kernel.events import Event
from services.members.events import MemberCreated, MemberErased, MemberUpdated
from services.rewards.ledger.repository import LedgerRepository
from services.rewards.models import INBOX


async def apply_member_event(session: AsyncSession, event: Event) -> None:
    repository = LedgerRepository(session)
    if isinstance(event, MemberCreated | MemberUpdated):
        await repository.upsert_account(
            brand_id=event.brand_id,
            member_id=event.data.member_id,
            external_id=event.data.external_id,
            birthday=event.data.birthday,
            member_status=event.data.status.value,
        )
    elif isinstance(event, MemberErased):
        await repository.upsert_account(
            brand_id=event.brand_id,
            member_id=event.data.member_id,
            external_id=None,
            birthday=None,
            member_status="erased",
        )


MEMBERS_PROJECTION = ConsumerSpec(
    name="rewards.members",
    services=["members"],
    handler=apply_member_event,
    inbox=INBOX,
    event_types=frozenset({"member.created", "member.updated", "member.erased"}),
)
