"""Helpers for the experiences tests: bodies, a session made through the API, bookings, and the
few direct changes that stand for time passing (a session moved into the past)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.experiences.models import Booking, ExperienceSession
from services.community.models import CommunityMember
from services.kernel.clock import utcnow
from services.kernel.events import Event
from services.kernel.ids import new_id
from services.rewards.events import PaymentDeclinedData, PointsMovement, PointsPaymentDeclined
from services.rewards.events import PointsRedeemed as RewardsPointsRedeemed
from services.rewards.models import Bucket, EntryKind
from tests.conftest import MemberFixture

API = "/community/v1"


def experience_body(**changes: Any) -> dict[str, Any]:
    return {
        "title": "Summer glow masterclass",
        "description": "Layering SPF under make-up, with our artists.",
        "kind": "masterclass",
        "tags": ["skincare"],
        **changes,
    }


def session_body(**changes: Any) -> dict[str, Any]:
    starts = utcnow() + timedelta(days=3)
    return {
        "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=2)).isoformat(),
        "time_zone": "Europe/Paris",
        "place": {"kind": "address", "address": "12 rue de Rivoli, Paris"},
        "capacity": 10,
        **changes,
    }


async def create_experience(
    client: httpx.AsyncClient, headers: dict[str, str], **changes: Any
) -> dict[str, Any]:
    response = await client.post(
        f"{API}/experiences", json=experience_body(**changes), headers=headers
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def create_session(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    experience_id: str | None = None,
    **changes: Any,
) -> dict[str, Any]:
    """A session (of a new brand-hosted experience unless one is given)."""
    if experience_id is None:
        experience_id = (await create_experience(client, headers))["id"]
    response = await client.post(
        f"{API}/experiences/{experience_id}/sessions", json=session_body(**changes), headers=headers
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def book(
    client: httpx.AsyncClient,
    member: MemberFixture,
    session_id: str,
    key: str | None = None,
    **body: Any,
) -> httpx.Response:
    return await client.post(
        f"{API}/sessions/{session_id}/bookings",
        json=body,
        headers={**member.headers, "Idempotency-Key": key or uuid.uuid4().hex},
    )


async def booking_count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Booking)) or 0)


async def seats_taken(session: AsyncSession, session_id: str) -> int:
    value = await session.scalar(
        select(ExperienceSession.seats_taken).where(ExperienceSession.id == uuid.UUID(session_id))
    )
    return int(value or 0)


async def move_session(
    session: AsyncSession, session_id: str, starts_at: datetime, ends_at: datetime | None = None
) -> None:
    """Time passes: the session now starts (and ends) at these times."""
    await session.execute(
        update(ExperienceSession)
        .where(ExperienceSession.id == uuid.UUID(session_id))
        .values(starts_at=starts_at, ends_at=ends_at or starts_at + timedelta(hours=2))
    )


async def set_tier(session: AsyncSession, member_id: uuid.UUID, tier_id: uuid.UUID) -> None:
    """As the projection of `tier.changed` would."""
    await session.execute(
        update(CommunityMember)
        .where(CommunityMember.member_id == member_id)
        .values(tier_id=tier_id)
    )


def points_redeemed(
    brand_id: uuid.UUID, member_id: uuid.UUID, booking_id: str, points: int
) -> Event:
    """Rewards' answer when it took the points for a booking (a debit: negative points)."""
    return RewardsPointsRedeemed(
        brand_id=brand_id,
        subject_id=member_id,
        data=PointsMovement(
            member_id=member_id,
            entry_id=new_id(),
            kind=EntryKind.REDEEM,
            bucket=Bucket.AVAILABLE,
            points=-points,
            reason="Summer glow masterclass",
            source_type="experience_booking",
            source_id=booking_id,
            available=1000,
            pending=0,
        ),
    )


def payment_declined(
    brand_id: uuid.UUID, member_id: uuid.UUID, booking_id: str, points: int
) -> Event:
    return PointsPaymentDeclined(
        brand_id=brand_id,
        subject_id=member_id,
        data=PaymentDeclinedData(
            member_id=member_id,
            source_type="experience_booking",
            source_id=booking_id,
            points=points,
            reason="insufficient_points",
            available=0,
        ),
    )


def error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, str(response.json()["error"])
