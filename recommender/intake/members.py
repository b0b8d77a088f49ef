"""What the recommender knows of members besides their interactions, from members' and rewards'
events: interests and join date (`member.*`), the `personalisation` consent, tier
(`tier.changed`), available points (every `points.*` event that states them), and erasure.

A new member, new interests or a consent given back mark the member for the next fold-in, so
their list follows without waiting for a training run. `member.erased` deletes the member's
interactions, exposures and lists and empties their row, which stays, marked erased, so that
no later event brings them back.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from recommender.intake.repository import (
    IntakeRepository,
    MemberConsent,
    MemberInterests,
    MemberPoints,
    MemberRow,
    MemberSeen,
    MemberTier,
)
from recommender.store.models import INBOX
from services.kernel.consumer import ConsumerSpec
from services.kernel.events import Event
from services.members.events import (
    MemberConsentChanged,
    MemberCreated,
    MemberErased,
    MemberUpdated,
)
from services.members.models import ConsentPurpose
from services.rewards.events import TierChanged


@dataclass
class _Member:
    """What a run of events leaves of one member: each kind of fact keeps its last value."""

    brand_id: uuid.UUID
    first_seen: datetime | None = None  # `joined_at` of a row the first change would create
    created_at: datetime | None = None  # the last `member.created`'s time, which fixes it
    interests: list[str] | None = None
    personalised: bool | None = None
    tier: tuple[uuid.UUID | None, str | None] | None = None
    points: int | None = None
    stale_since: datetime | None = None  # the first event that marked them
    erased: bool = False

    @property
    def joined_at(self) -> datetime:
        joined = self.created_at or self.first_seen
        assert joined is not None, "only members something changed for are written"
        return joined


def _member_id(event: Event) -> uuid.UUID | None:
    member_id = getattr(event.data, "member_id", None)
    return member_id if isinstance(member_id, uuid.UUID) else None


def _fold(member: _Member, event: Event) -> None:
    at = event.occurred_at
    marks = False
    changes = True
    if isinstance(event, MemberCreated | MemberUpdated):
        member.interests = list(event.data.interests)
        if isinstance(event, MemberCreated):
            member.created_at = at
            marks = True
        else:
            marks = "interests" in event.data.changed
    elif isinstance(event, MemberConsentChanged):
        if event.data.purpose == ConsentPurpose.PERSONALISATION:
            member.personalised = event.data.granted
            marks = event.data.granted
        else:
            changes = False  # marketing consents do not concern recommendations
    elif isinstance(event, TierChanged):
        member.tier = (event.data.to_tier_id, event.data.to_tier)
    elif isinstance(event, MemberErased):
        member.erased = True
    else:
        # Points events state the balance after the movement (`PointsMovement.available`);
        # the last one of the batch is the member's balance.
        available = getattr(event.data, "available", None)
        if isinstance(available, int):
            member.points = available
        else:
            changes = False  # e.g. `points.expiring_soon`: nothing the recommender keeps
    if changes and member.first_seen is None:
        member.first_seen = at
    if marks and member.stale_since is None:
        member.stale_since = at


async def apply_member_events(session: AsyncSession, events: Sequence[Event]) -> None:
    """The batch in stream order, folded per member, then one statement per kind of fact.

    The batch's rows are created if missing and locked first, all at once (see
    `lock_members`); the statements after it write disjoint columns, so their order does not
    matter, except that the erasure comes last: it empties what the others wrote, as it would
    one event after the other (an erased row then takes no further change).
    """
    members: dict[uuid.UUID, _Member] = {}
    for event in events:
        member_id = _member_id(event)
        if member_id is None:
            continue
        member = members.setdefault(member_id, _Member(event.brand_id))
        if not member.erased:
            _fold(member, event)
    joined: list[MemberInterests] = []
    seen: list[MemberInterests] = []
    consents: list[MemberConsent] = []
    tiers: list[MemberTier] = []
    points: list[MemberPoints] = []
    stale: list[MemberSeen] = []
    erased: list[MemberRow] = []
    locked: list[MemberRow] = []
    for member_id, m in members.items():
        if m.first_seen is None:
            continue  # nothing the recommender keeps changed for them
        row = (m.brand_id, member_id, m.joined_at)
        locked.append(MemberRow(*row))
        if m.interests is not None:
            (seen if m.created_at is None else joined).append(MemberInterests(*row, m.interests))
        if m.personalised is not None:
            consents.append(MemberConsent(*row, m.personalised))
        if m.tier is not None:
            tiers.append(MemberTier(*row, *m.tier))
        if m.points is not None:
            points.append(MemberPoints(*row, m.points))
        if m.stale_since is not None:
            stale.append(MemberSeen(*row, stale_since=m.stale_since))
        if m.erased:
            erased.append(MemberRow(*row))
    repository = IntakeRepository(session)
    await repository.lock_members(locked)
    await repository.set_interests(joined, fix_joined=True)
    await repository.set_interests(seen, fix_joined=False)
    await repository.set_personalised(consents)
    await repository.set_tiers(tiers)
    await repository.set_points(points)
    await repository.mark_stale(stale)
    await repository.erase(erased)


async def apply_member_event(session: AsyncSession, event: Event) -> None:
    await apply_member_events(session, [event])


MEMBERS_CONSUMER = ConsumerSpec(
    name="recommender.members",
    services=["members", "rewards"],
    handler=apply_member_event,
    inbox=INBOX,
    event_types=frozenset({"member.*", TierChanged.event_type(), "points.*"}),
    handle_many=apply_member_events,
)
