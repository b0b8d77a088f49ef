"""The consumer that moves challenge progress from the community's own events.

| event                                   | member            | action (subject)                  |
| --------------------------------------- | ----------------- | --------------------------------- |
| `post.approved`                         | the author        | post (the post)                   |
| `post.approved` of an answer (prompt set) | the author      | also prompt_answer (the post)     |
| `comment.created` published, `comment.approved` | the author | comment (the comment)            |
| `reaction.added` to another's content   | who reacted       | reaction (the post or comment)    |
| `experience.checked_in`                 | who attended      | experience (the session)          |
| `post.removed`, `comment.removed`       | the author        | withdrawn (see `progress`)        |

Prompt answers count when they are approved, from `post.approved` with its `prompt_id`, not from
`prompt.answered`: that event is written once, when the answer is made, possibly while it is
held for review, and nothing would count the answer when a moderator approves it later; the
approval, automatic or not, is reported by `post.approved` exactly once.

The kernel's inbox makes each event take effect once; the subjects' uniqueness keeps a
repeated report harmless even without it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.challenges import progress
from services.community.challenges.models import ChallengeAction
from services.community.experiences.events import ExperienceCheckedIn
from services.community.models import INBOX, ContentStatus
from services.community.posts.events import (
    CommentApproved,
    CommentCreated,
    CommentRemoved,
    PostApproved,
    PostRemoved,
    ReactionAdded,
)
from services.kernel.consumer import ConsumerSpec
from services.kernel.events import Event


@dataclass(frozen=True, slots=True)
class Counted:
    member_id: uuid.UUID
    action: ChallengeAction
    subject_id: uuid.UUID


def counted(event: Event) -> list[Counted]:
    """The actions an event reports, per the table above."""
    if isinstance(event, PostApproved):
        post = event.data
        found = [Counted(post.author_id, ChallengeAction.POST, post.post_id)]
        if post.prompt_id is not None:
            found.append(Counted(post.author_id, ChallengeAction.PROMPT_ANSWER, post.post_id))
        return found
    if isinstance(event, CommentCreated | CommentApproved):
        comment = event.data
        if comment.status != ContentStatus.PUBLISHED:
            return []
        return [Counted(comment.author_id, ChallengeAction.COMMENT, comment.comment_id)]
    if isinstance(event, ReactionAdded):
        reaction = event.data
        if reaction.member_id == reaction.target_author_id:
            return []
        target = reaction.comment_id or reaction.post_id
        return [Counted(reaction.member_id, ChallengeAction.REACTION, target)]
    if isinstance(event, ExperienceCheckedIn):
        attended = event.data
        return [Counted(attended.member_id, ChallengeAction.EXPERIENCE, attended.session_id)]
    return []


async def apply_challenge_event(session: AsyncSession, event: Event) -> None:
    if isinstance(event, PostRemoved):
        await progress.withdraw(session, event.brand_id, event.data.author_id, event.data.post_id)
        return
    if isinstance(event, CommentRemoved):
        data = event.data
        await progress.withdraw(session, event.brand_id, data.author_id, data.comment_id)
        return
    for found in counted(event):
        await progress.record_action(
            session,
            event.brand_id,
            found.member_id,
            found.action,
            found.subject_id,
            source_event_id=event.id,
            at=event.occurred_at,
        )


def _members_of(event: Event) -> list[uuid.UUID]:
    """Whose challenges the event may move."""
    if isinstance(event, PostRemoved | CommentRemoved):
        return [event.data.author_id]
    return [found.member_id for found in counted(event)]


async def apply_challenge_events(session: AsyncSession, events: Sequence[Event]) -> None:
    """As `apply_challenge_event` on each, in order, but asking once which of the members take
    part in a challenge: most take part in none, and their events change nothing. (An event
    cannot make a member join, so the answer holds through the batch.)"""
    taking_part = await progress.taking_part(
        session, {(event.brand_id, member) for event in events for member in _members_of(event)}
    )
    for event in events:
        if any((event.brand_id, member) in taking_part for member in _members_of(event)):
            await apply_challenge_event(session, event)


CHALLENGES_CONSUMER = ConsumerSpec(
    name="community.challenges",
    services=["community"],
    handler=apply_challenge_event,
    handle_many=apply_challenge_events,
    inbox=INBOX,
    event_types=frozenset(
        {
            PostApproved.event_type(),
            PostRemoved.event_type(),
            CommentCreated.event_type(),
            CommentApproved.event_type(),
            CommentRemoved.event_type(),
            ReactionAdded.event_type(),
            ExperienceCheckedIn.event_type(),
        }
    ),
)
