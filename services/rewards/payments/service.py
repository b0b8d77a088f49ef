"""Charging and refunding points on another service's behalf.

- `charge`: takes the points from the member's available balance (a `redeem` entry whose
  `source_type`/`source_id` name what was bought), or declines with `points.payment_declined`
  when the member has too few points or is not active. Never below zero. Charging the same
  source twice charges once (redelivered requests, replays).
- `refund`: gives back up to `points` of what the source was charged (a `refund` entry); all
  refunds of a source together never exceed its charge, so a redelivered or repeated refund
  gives nothing more, and a source never charged gets nothing.
Both run under the member's account lock, in the consumer's transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from services.rewards.errors import InsufficientPoints, MemberNotFound
from services.rewards.events import DeclineReason, PaymentDeclinedData, PointsPaymentDeclined
from services.rewards.ledger.repository import LedgerRepository
from services.rewards.ledger.service import Movement, post
from services.rewards.models import OUTBOX, Bucket, EntryKind
from services.rewards.payments.repository import PaymentRepository


class ChargeOutcome(StrEnum):
    CHARGED = "charged"
    ALREADY_CHARGED = "already_charged"
    DECLINED = "declined"


@dataclass(frozen=True, slots=True)
class Charge:
    brand_id: uuid.UUID
    member_id: uuid.UUID
    points: int
    source_type: str
    source_id: str
    reason: str  # the ledger line the member reads, e.g. "Masterclass: 2 seats"
    occurred_at: datetime


async def charge(session: AsyncSession, request: Charge) -> ChargeOutcome:
    if request.points <= 0:
        raise ValueError("a payment in points charges a positive number of points")
    ledger = LedgerRepository(session)
    program = await ledger.program(request.brand_id)
    account = await ledger.lock_account(request.brand_id, request.member_id)
    if account is None:
        raise MemberNotFound(f"No member {request.member_id} in this brand (yet).")
    payments = PaymentRepository(session)
    if await payments.settled_points(
        request.brand_id, request.source_type, request.source_id, EntryKind.REDEEM
    ):
        return ChargeOutcome.ALREADY_CHARGED
    if program is None or account.member_status != "active":
        await _decline(session, request, "member_inactive", account.available)
        return ChargeOutcome.DECLINED
    try:
        await post(
            session,
            request.brand_id,
            program,
            Movement(
                member_id=request.member_id,
                kind=EntryKind.REDEEM,
                bucket=Bucket.AVAILABLE,
                points=-request.points,
                reason=request.reason,
                source_type=request.source_type,
                source_id=request.source_id,
                occurred_at=request.occurred_at,
            ),
        )
    except InsufficientPoints:
        await _decline(session, request, "insufficient_points", account.available)
        return ChargeOutcome.DECLINED
    return ChargeOutcome.CHARGED


async def refund(
    session: AsyncSession,
    *,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    source_type: str,
    source_id: str,
    points: int,
    reason: str,
    occurred_at: datetime,
) -> int:
    """Refund up to `points` of what the source was charged; returns the points refunded now."""
    ledger = LedgerRepository(session)
    program = await ledger.program(brand_id)
    if program is None or await ledger.lock_account(brand_id, member_id) is None:
        return 0
    payments = PaymentRepository(session)
    charged = -(
        await payments.settled_points(brand_id, source_type, source_id, EntryKind.REDEEM) or 0
    )
    refunded = (
        await payments.settled_points(brand_id, source_type, source_id, EntryKind.REFUND) or 0
    )
    owed = min(points, charged - refunded)
    if owed <= 0:
        return 0
    await post(
        session,
        brand_id,
        program,
        Movement(
            member_id=member_id,
            kind=EntryKind.REFUND,
            bucket=Bucket.AVAILABLE,
            points=owed,
            reason=reason,
            source_type=source_type,
            source_id=source_id,
            occurred_at=occurred_at,
        ),
    )
    return owed


async def _decline(
    session: AsyncSession, request: Charge, reason: DeclineReason, available: int
) -> None:
    await OUTBOX.add(
        session,
        PointsPaymentDeclined(
            brand_id=request.brand_id,
            subject_id=request.member_id,
            occurred_at=request.occurred_at,
            data=PaymentDeclinedData(
                member_id=request.member_id,
                source_type=request.source_type,
                source_id=request.source_id,
                points=request.points,
                reason=reason,
                available=available,
            ),
        ),
    )
