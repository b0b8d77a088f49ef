"""Badges: defined by staff, awarded by challenges and by reputation, once per member and badge.
Functions here never commit.

A badge with a `reputation_threshold` is awarded to a member the first time a reputation change
leaves them at or above it; lowering a threshold awards nobody at once, the next change of each
member does. A badge is kept for good once awarded, even if the reputation falls again. Every
award emits `badge.awarded`. A badge held by anyone, or offered by a challenge, cannot be deleted.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.members.service import known_member
from services.community.models import OUTBOX
from services.community.reputation.errors import BadgeInUse, BadgeNameTaken, BadgeNotFound
from services.community.reputation.events import BadgeAwarded, BadgeAwardedData
from services.community.reputation.models import Badge, BadgeSource, MemberBadge
from services.community.reputation.repository import BadgeRepository
from services.community.reputation.schemas import BadgeCreate, BadgeUpdate
from services.kernel.clock import utcnow
from services.kernel.ids import new_id
from services.kernel.pagination import PageRequest


def _name_taken(name: str) -> BadgeNameTaken:
    return BadgeNameTaken(f"The brand already has a badge named {name!r}.")


async def create_badge(session: AsyncSession, brand_id: uuid.UUID, payload: BadgeCreate) -> Badge:
    badges = BadgeRepository(session)
    if await badges.name_taken(brand_id, payload.name):
        raise _name_taken(payload.name)
    badge = Badge(
        id=new_id(),
        brand_id=brand_id,
        name=payload.name,
        description=payload.description,
        icon_url=str(payload.icon_url) if payload.icon_url is not None else None,
        reputation_threshold=payload.reputation_threshold,
        created_at=utcnow(),
    )
    await badges.add(badge)
    return badge


async def get_badge(session: AsyncSession, brand_id: uuid.UUID, badge_id: uuid.UUID) -> Badge:
    badge = await BadgeRepository(session).get(brand_id, badge_id)
    if badge is None:
        raise BadgeNotFound(f"No badge {badge_id} in this brand.")
    return badge


async def list_badges(
    session: AsyncSession, brand_id: uuid.UUID, page: PageRequest
) -> Sequence[Badge]:
    return await BadgeRepository(session).page(brand_id, page)


async def update_badge(
    session: AsyncSession, brand_id: uuid.UUID, badge_id: uuid.UUID, payload: BadgeUpdate
) -> Badge:
    badges = BadgeRepository(session)
    badge = await badges.get(brand_id, badge_id, for_update=True)
    if badge is None:
        raise BadgeNotFound(f"No badge {badge_id} in this brand.")
    sent = payload.model_fields_set
    if payload.name is not None and await badges.name_taken(
        brand_id, payload.name, other_than=badge.id
    ):
        raise _name_taken(payload.name)
    for field in sent:
        value = getattr(payload, field)
        if field == "icon_url" and value is not None:
            value = str(value)
        setattr(badge, field, value)
    await session.flush()
    return badge


async def delete_badge(session: AsyncSession, brand_id: uuid.UUID, badge_id: uuid.UUID) -> None:
    badges = BadgeRepository(session)
    badge = await badges.get(brand_id, badge_id, for_update=True)
    if badge is None:
        raise BadgeNotFound(f"No badge {badge_id} in this brand.")
    if await badges.in_use(badge.id):
        raise BadgeInUse()
    await badges.delete(badge)


async def member_badges(
    session: AsyncSession, brand_id: uuid.UUID, member_id: uuid.UUID, page: PageRequest
) -> Sequence[tuple[MemberBadge, Badge]]:
    await known_member(session, brand_id, member_id)
    return await BadgeRepository(session).held(brand_id, member_id, page)


# --- Awarding -----------------------------------------------------------------------------------


async def award(
    session: AsyncSession,
    badge: Badge,
    member_id: uuid.UUID,
    *,
    source: BadgeSource,
    challenge_id: uuid.UUID | None = None,
    at: datetime,
) -> bool:
    """Gives `badge` to the member and emits `badge.awarded`, unless they hold it already."""
    given = await BadgeRepository(session).award(
        badge.brand_id, badge.id, member_id, source=source, challenge_id=challenge_id, at=at
    )
    if given:
        await OUTBOX.add(
            session,
            BadgeAwarded(
                brand_id=badge.brand_id,
                subject_id=member_id,
                occurred_at=at,
                data=BadgeAwardedData(
                    badge_id=badge.id,
                    member_id=member_id,
                    name=badge.name,
                    source=source,
                    challenge_id=challenge_id,
                ),
            ),
        )
    return given


async def award_by_id(
    session: AsyncSession,
    brand_id: uuid.UUID,
    badge_id: uuid.UUID,
    member_id: uuid.UUID,
    *,
    source: BadgeSource,
    challenge_id: uuid.UUID | None = None,
    at: datetime,
) -> bool:
    badge = await BadgeRepository(session).get(brand_id, badge_id)
    if badge is None:  # a challenge's badge cannot be deleted, so this is never reached
        return False
    return await award(session, badge, member_id, source=source, challenge_id=challenge_id, at=at)


@dataclass(frozen=True, slots=True)
class Rise:
    """A change that left a member's reputation higher, at `reputation`."""

    brand_id: uuid.UUID
    member_id: uuid.UUID
    reputation: int
    at: datetime


async def award_for_reputation(session: AsyncSession, rises: Sequence[Rise]) -> None:
    """Every reputation badge a member reached with one of `rises` (in the order they happened)
    and lacks, each awarded at the first rise that reached it: as if after every change."""
    peaks: dict[uuid.UUID, tuple[uuid.UUID, int]] = {}
    for rise in rises:
        peak = peaks.get(rise.member_id)
        if peak is None or rise.reputation > peak[1]:
            peaks[rise.member_id] = (rise.brand_id, rise.reputation)
    reached = await BadgeRepository(session).reached_not_held(
        [(brand_id, member_id, peak) for member_id, (brand_id, peak) in peaks.items()]
    )
    awards: list[tuple[int, int, uuid.UUID, Badge]] = []
    for member_id, badge in reached:
        threshold = badge.reputation_threshold or 0
        first = next(
            i
            for i, rise in enumerate(rises)
            if rise.member_id == member_id and rise.reputation >= threshold
        )
        awards.append((first, threshold, badge.id, badge))
    for first, _, _, badge in sorted(awards, key=lambda award: award[:3]):
        rise = rises[first]
        await award(session, badge, rise.member_id, source=BadgeSource.REPUTATION, at=rise.at)
