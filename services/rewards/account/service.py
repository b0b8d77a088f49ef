"""The member view's rules: a summary built from the cached balances and the open lots.

Balance is `accounts`' cached sums (equal to the ledger's, which a test checks). Expiring soon
follows the program's policy (see `expiry.service.expiring_soon`): open lots that expire within
`expiry_reminder_days` (including any that are due and wait for tonight's job) with the next
dates, or, under `inactivity`, the whole balance once its deadline is within that window; the
deadline itself is always shown under that policy. A member with an erased account is not found.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.rewards.account.schemas import ExpiringPoints, ExpiringSoonRead, SummaryRead
from services.rewards.expiry.service import expiring_soon
from services.rewards.ledger.members import MemberSource
from services.rewards.ledger.service import account_for, balances_of, program_for
from services.rewards.tiers import service as tiers


async def summary(
    session: AsyncSession,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    *,
    now: datetime | None = None,
    members: MemberSource | None,
    with_tier: bool = False,
) -> SummaryRead:
    account = await account_for(session, brand_id, member_id=member_id, members=members)
    program = await program_for(session, brand_id)
    soon = await expiring_soon(session, program, account, now=now)
    return SummaryRead(
        member_id=account.member_id,
        balance=await balances_of(session, account),
        expiring_soon=ExpiringSoonRead(
            policy=soon.policy,
            window_days=soon.window_days,
            points=soon.points,
            next=[ExpiringPoints(points=g.points, expires_at=g.expires_at) for g in soon.next],
            inactivity_expires_at=soon.inactivity_expires_at,
        ),
        last_activity_at=account.last_activity_at,
        tier=await tiers.status_of(session, program, account, now) if with_tier else None,
    )
