"""The consumer that turns other services' events into activity points.

It reads the streams of `ACTIVITY_SOURCES` and hands each event it has an extractor for to
`award_activity`. Today only the members service exists:

- `member.updated` drives `profile.completed`. A profile is complete when it has an email, a
  display name and a birthday (`PROFILE_FIELDS`). An update that touched one of those fields and
  leaves the profile complete (and the member active) is the activity; its event id is derived
  from the member, so a rule pays it once per member, ever, however often the profile changes.
  `member.created` does not count, even with a complete profile: a bulk import would otherwise
  pay every imported customer.

- Community content (`post.*`): a post pays `post.approved` rules, a review `review.published`
  rules. The award is keyed by the post (`content_key`, and an event id derived from the post,
  so the post's creation and its approval are the same award): `post.created` of a post held for
  review pays into `pending`; `post.approved` first settles what is pending, then pays what was
  not paid yet (a post published at once); `post.removed` voids or takes back everything the
  post earned, including the answer to a prompt.

- `prompt.answered` pays `prompt.answered` rules, the prompt's own points when it names them;
  the answer is a post, so its award follows the post (pending while held, settled or revoked
  with it).
- `experience.checked_in` pays `experience.attended`; `experience.reviewed`,
  `challenge.completed` (the challenge's own points when it names them) and `milestone.reached`
  pay rules of their own name. Each pays the member in the event's data, once per event.

Other events whose type is one of `SUBJECT_ACTIVITIES` pay the event's subject with the event's
own id and time.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.challenges.events import ChallengeCompleted
from services.community.experiences.events import ExperienceCheckedIn, ExperienceReviewed
from services.community.milestones.events import MilestoneReached
from services.community.models import ContentStatus, PostKind
from services.community.posts.events import PostApproved, PostCreated, PostData, PostRemoved
from services.community.prompts.events import PromptAnswered
from services.kernel.consumer import ConsumerSpec
from services.kernel.events import Event
from services.members.events import MemberUpdated
from services.members.models import MemberStatus
from services.rewards.activity.service import (
    AVAILABLE_AWARD,
    CHALLENGE_COMPLETED,
    EXPERIENCE_ATTENDED,
    EXPERIENCE_REVIEWED,
    MILESTONE_REACHED,
    POST_APPROVED,
    PROFILE_COMPLETED,
    PROMPT_ANSWERED,
    REFERRAL_PURCHASED,
    REVIEW_PUBLISHED,
    ActivityRules,
    Award,
    award_activity,
    derived_event_id,
    revoke_content,
    settle_content,
)
from services.rewards.models import INBOX, Bucket

# The services whose events can earn activity points.
ACTIVITY_SOURCES: tuple[str, ...] = ("members", "community")

PROFILE_FIELDS: tuple[str, ...] = ("email", "display_name", "birthday")

# Event types that are, by their name, the activity of their subject.
SUBJECT_ACTIVITIES: frozenset[str] = frozenset({REFERRAL_PURCHASED})


@dataclass(frozen=True, slots=True)
class Activity:
    member_id: uuid.UUID
    activity: str
    event_id: uuid.UUID
    occurred_at: datetime
    award: Award = AVAILABLE_AWARD


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


def post_key(post_id: uuid.UUID) -> str:
    """The content key of everything a post earns (its own points and a prompt answer's)."""
    return f"post:{post_id}"


def _post_activity(data: PostData) -> str:
    return REVIEW_PUBLISHED if data.kind == PostKind.REVIEW else POST_APPROVED


def _post_award(event: Event, data: PostData, bucket: Bucket) -> Activity:
    activity = _post_activity(data)
    return Activity(
        member_id=data.author_id,
        activity=activity,
        event_id=derived_event_id(activity, data.post_id),
        occurred_at=event.occurred_at,
        award=Award(bucket=bucket, content_key=post_key(data.post_id)),
    )


def post_created(event: Event) -> Activity | None:
    """A post held for review earns pending points; a published one is paid on approval."""
    if not isinstance(event, PostCreated) or event.data.status != ContentStatus.HELD:
        return None
    return _post_award(event, event.data, Bucket.PENDING)


def post_approved(event: Event) -> Activity | None:
    if not isinstance(event, PostApproved):
        return None
    return _post_award(event, event.data, Bucket.AVAILABLE)


def prompt_answered(event: Event) -> Activity | None:
    if not isinstance(event, PromptAnswered):
        return None
    data = event.data
    held = data.status == ContentStatus.HELD
    return Activity(
        member_id=data.member_id,
        activity=PROMPT_ANSWERED,
        event_id=derived_event_id(PROMPT_ANSWERED, data.post_id),
        occurred_at=event.occurred_at,
        award=Award(
            bucket=Bucket.PENDING if held else Bucket.AVAILABLE,
            content_key=post_key(data.post_id),
            points=data.points,
        ),
    )


def member_activity(event: Event) -> Activity | None:
    """Community events that pay the member their data names, once per event."""
    match event:
        case ExperienceCheckedIn():
            return Activity(event.data.member_id, EXPERIENCE_ATTENDED, event.id, event.occurred_at)
        case ExperienceReviewed():
            return Activity(event.data.member_id, EXPERIENCE_REVIEWED, event.id, event.occurred_at)
        case MilestoneReached():
            return Activity(event.data.member_id, MILESTONE_REACHED, event.id, event.occurred_at)
        case ChallengeCompleted():
            return Activity(
                event.data.member_id,
                CHALLENGE_COMPLETED,
                event.id,
                event.occurred_at,
                Award(points=event.data.points),
            )
    return None


def subject_activity(event: Event) -> Activity | None:
    """The event's type is the activity, and its subject the member who did it."""
    if event.subject_id is None:
        return None
    return Activity(event.subject_id, event.type, event.id, event.occurred_at)


EXTRACTORS: dict[str, Extractor] = {
    "member.updated": profile_completed,
    "post.created": post_created,
    "post.approved": post_approved,
    "prompt.answered": prompt_answered,
    **dict.fromkeys(
        (
            "experience.checked_in",
            "experience.reviewed",
            "milestone.reached",
            "challenge.completed",
        ),
        member_activity,
    ),
    **dict.fromkeys(SUBJECT_ACTIVITIES, subject_activity),
}


async def _settle_post(session: AsyncSession, event: Event) -> None:
    if isinstance(event, PostApproved):
        await settle_content(
            session, event.brand_id, post_key(event.data.post_id), event.occurred_at
        )


async def _revoke_post(session: AsyncSession, event: Event) -> None:
    if isinstance(event, PostRemoved):
        await revoke_content(
            session, event.brand_id, post_key(event.data.post_id), event.occurred_at
        )


# What happens to content's awards when it is approved or removed, before anything new is paid.
CONTENT_LIFECYCLE: dict[str, Callable[[AsyncSession, Event], Awaitable[None]]] = {
    "post.approved": _settle_post,
    "post.removed": _revoke_post,
}


async def handle_activity_events(session: AsyncSession, events: Sequence[Event]) -> None:
    """A stream read in one transaction, its events one by one, the rules read once."""
    rules_of = ActivityRules(session)
    for event in events:
        await handle_activity_event(session, event, rules_of)


async def handle_activity_event(
    session: AsyncSession, event: Event, rules_of: ActivityRules | None = None
) -> None:
    lifecycle = CONTENT_LIFECYCLE.get(event.type)
    if lifecycle is not None:
        await lifecycle(session, event)
    extract = EXTRACTORS.get(event.type)
    found = extract(event) if extract is not None else None
    if found is None:
        return
    await award_activity(
        session,
        event.brand_id,
        found.member_id,
        found.activity,
        found.event_id,
        found.occurred_at,
        found.award,
        rules_of,
    )


ACTIVITY_CONSUMER = ConsumerSpec(
    name="rewards.activity",
    services=ACTIVITY_SOURCES,
    handler=handle_activity_event,
    handle_many=handle_activity_events,
    inbox=INBOX,
    event_types=frozenset(EXTRACTORS) | frozenset(CONTENT_LIFECYCLE),
)
