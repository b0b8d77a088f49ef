"""The consumer that turns other services' events into activity points.

It reads the streams of `ACTIVITY_SOURCES` and hands each event it has an extractor for to
`award_activity`. Today only the members service exists:

- `member.updated` drives `profile.completed`. A profile is complete when it has an email, a
  display name and a birthday (`PROFILE_FIELDS`). An update that touched one of those fields and
  leaves the profile complete (and the member active) is the activity; its event id is derived
  from the member, so a rule pays it once per member, ever, however often the profile changes.
  `member.created` does not count, even with a complete profile: a bulk import would otherwise
  pay every imported customer.

When the community service lands, add it to `ACTIVITY_SOURCES`: its events whose type is one of
`SUBJECT_ACTIVITIES` then pay the event's subject (the member who posted, answered, attended),
with the event's own id and time. An event type whose subject is not the member to pay gets an
extractor of its own in `EXTRACTORS`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.consumer import ConsumerSpec
from services.kernel.events import Event
from services.members.events import MemberUpdated
from services.members.models import MemberStatus
from services.rewards.activity.service import (
    EXPERIENCE_ATTENDED,
    POST_APPROVED,
    PROFILE_COMPLETED,
    PROMPT_ANSWERED,
    REFERRAL_PURCHASED,
    REVIEW_PUBLISHED,
    award_activity,
    derived_event_id,
)
from services.rewards.models import INBOX

# The services whose events can earn activity points.
ACTIVITY_SOURCES: tuple[str, ...] = ("members",)

PROFILE_FIELDS: tuple[str, ...] = ("email", "display_name", "birthday")

# Event types that are, by their name, the activity of their subject.
SUBJECT_ACTIVITIES: frozenset[str] = frozenset(
    {POST_APPROVED, REVIEW_PUBLISHED, PROMPT_ANSWERED, EXPERIENCE_ATTENDED, REFERRAL_PURCHASED}
)


@dataclass(frozen=True, slots=True)
class Activity:
    member_id: uuid.UUID
    activity: str
    event_id: uuid.UUID
    occurred_at: datetime


Extractor = Callable[[Event], Activity | None]


def profile_completed(event: Event) -> Activity | None:
    if not isinstance(event, MemberUpdated):
        return None
    data = event.data
    if data.status != MemberStatus.ACTIVE or not set(data.changed) & set(PROFILE_FIELDS):
        return None
    if any(getattr(data, name) in (None, "") for name in PROFILE_FIELDS):
        return None
    return Activity(
        member_id=data.member_id,
        activity=PROFILE_COMPLETED,
        event_id=derived_event_id(PROFILE_COMPLETED, data.member_id),
        occurred_at=event.occurred_at,
    )


def subject_activity(event: Event) -> Activity | None:
    """The event's type is the activity, and its subject the member who did it."""
    if event.subject_id is None:
        return None
    return Activity(event.subject_id, event.type, event.id, event.occurred_at)


EXTRACTORS: dict[str, Extractor] = {
    "member.updated": profile_completed,
    **dict.fromkeys(SUBJECT_ACTIVITIES, subject_activity),
}


async def handle_activity_event(session: AsyncSession, event: Event) -> None:
    extract = EXTRACTORS.get(event.type)
    found = extract(event) if extract is not None else None
    if found is None:
        return
    await award_activity(
        session, event.brand_id, found.member_id, found.activity, found.event_id, found.occurred_at
    )


ACTIVITY_CONSUMER = ConsumerSpec(
    name="rewards.activity",
    services=ACTIVITY_SOURCES,
    handler=handle_activity_event,
    inbox=INBOX,
    event_types=frozenset(EXTRACTORS),
)
