"""The member 360's rules: what a batch of events does to the journal and the projection, a
rebuild from the journal, and reading one member."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.kernel.events import Event
from services.marketing.audience.journal import JournalRow, journal_row
from services.marketing.audience.repository import AudienceRepository
from services.marketing.errors import MemberNotFound
from services.marketing.models import JournalEntry, MemberView
from services.members.events import MemberErased

# Members refreshed per statement in a rebuild: big enough to be set-based, small enough that
# one statement's working set stays a few MB.
REBUILD_PAGE = 5_000


async def apply_events(session: AsyncSession, events: Sequence[Event]) -> None:
    """A batch in stream order: erasures first take effect (an erased member's other events in
    the batch, and any later, are dropped), the rest go to the journal, and every member the
    batch touched is recomputed once."""
    repository = AudienceRepository(session)
    erasures = [event for event in events if isinstance(event, MemberErased)]
    for erasure in erasures:
        await repository.erase(erasure.brand_id, erasure.data.member_id, erasure.data.erased_at)
    rows = [row for event in events if (row := journal_row(event)) is not None]
    erased = await repository.erased_among(
        [row.brand_id for row in rows], [row.member_id for row in rows]
    )
    kept = [row for row in rows if (row.brand_id, row.member_id) not in erased]
    await repository.add_journal(kept)
    now = utcnow()
    for brand_id, member_ids in _by_brand(kept).items():
        await repository.refresh_members(brand_id, sorted(member_ids), now)


async def apply_event(session: AsyncSession, event: Event) -> None:
    await apply_events(session, [event])


def _by_brand(rows: Sequence[JournalRow]) -> dict[uuid.UUID, set[uuid.UUID]]:
    touched: dict[uuid.UUID, set[uuid.UUID]] = {}
    for row in rows:
        touched.setdefault(row.brand_id, set()).add(row.member_id)
    return touched


async def refresh_brand(
    session: AsyncSession, brand_id: uuid.UUID, now: datetime | None = None
) -> int:
    """Recompute every member of the brand from the journal (a rebuild, or the daily move of
    the spend windows); members with no journal rows left are dropped. Returns the count."""
    repository = AudienceRepository(session)
    at = now or utcnow()
    done = 0
    after: uuid.UUID | None = None
    while page := await repository.member_ids_after(brand_id, after, REBUILD_PAGE):
        await repository.refresh_members(brand_id, page, at)
        done += len(page)
        after = page[-1]
    await repository.drop_members_without_journal(brand_id)
    return done


@dataclass(frozen=True, slots=True)
class Member360:
    view: MemberView
    tier_history: list[JournalEntry]
    segments: list[uuid.UUID]


async def member_360(session: AsyncSession, brand_id: uuid.UUID, member_id: uuid.UUID) -> Member360:
    repository = AudienceRepository(session)
    view = await repository.get(brand_id, member_id)
    if view is None:
        raise MemberNotFound(member_id)
    return Member360(
        view=view,
        tier_history=await repository.tier_history(brand_id, member_id),
        segments=await repository.open_segments_of(brand_id, member_id),
    )
