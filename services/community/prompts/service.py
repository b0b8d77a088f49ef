"""Prompts: questions or tasks from the brand, answered with posts. Functions here never commit.

**Defining (staff).** A prompt has a title, a body, tags, a window (`starts_at`, default now;
`ends_at`, null for open-ended, after the start), advertised points (null: none) and an audience
that fits its kind, checked on the whole prompt after every change (`InvalidAudience`, 422):

- `all`: every member; no ids, no milestone;
- `tiers`: members whose tier (as rewards last reported it with `tier.changed`) is one of
  `audience_tier_ids` (not empty; the community cannot check tier ids, so any are kept);
- `groups`: active members of one of `audience_group_ids` (not empty, each a group of the brand);
- `milestone`: members who reached `audience_milestone` (a milestone the community records:
  `services.community.milestones.keys.is_known`), as recorded by the milestones part.

A prompt nobody answered may be deleted; one with answers stays (`PromptHasAnswers`, 409).
Writing or changing a prompt emits `prompt.published` (the whole prompt, as it is after the
change), deleting it `prompt.deleted`, in the same transaction: the recommender's catalog.

**Answering (members).** In this order: the member may act (`CurrentMember`: 404/403), the
prompt exists in the brand (`PromptNotFound`, 404), it is open now: `starts_at <= now <
ends_at` (`PromptClosed`, 409, with the window), the member is in its audience
(`NotInAudience`, 403). Then the answer is written by posts' `create_post` (its own checks
apply: group membership, links, reviews, screening), marked incentivised when the prompt offers
points, and `prompt.answered` is emitted in the same transaction with the answer's status.
A member may answer a prompt more than once (several looks for "show us your summer look");
rewards' activity rules cap what answers pay.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.milestones.keys import is_known
from services.community.models import OUTBOX, AudienceKind, CommunityMember, Post, Prompt
from services.community.posts.schemas import PostCreate
from services.community.posts.service import create_post
from services.community.prompts.errors import (
    InvalidAudience,
    NotInAudience,
    PromptClosed,
    PromptHasAnswers,
    PromptNotFound,
)
from services.community.prompts.events import (
    PromptAnswered,
    PromptAnsweredData,
    PromptDeleted,
    PromptDeletedData,
    PromptPublished,
    PromptPublishedData,
)
from services.community.prompts.repository import PromptRepository
from services.community.prompts.schemas import PromptCreate, PromptUpdate
from services.kernel.clock import utcnow
from services.kernel.errors import ValidationFailed
from services.kernel.ids import new_id
from services.kernel.pagination import PageRequest


@dataclass(frozen=True, slots=True)
class Audience:
    """Who a prompt is for, as sent or stored (field names as in the API)."""

    audience: AudienceKind
    audience_tier_ids: list[uuid.UUID]
    audience_group_ids: list[uuid.UUID]
    audience_milestone: str | None


_AUDIENCE_FIELDS = ("audience_tier_ids", "audience_group_ids", "audience_milestone")
# The field each kind needs; every other audience field must be empty.
_NEEDS: dict[AudienceKind, str | None] = {
    AudienceKind.ALL: None,
    AudienceKind.TIERS: "audience_tier_ids",
    AudienceKind.GROUPS: "audience_group_ids",
    AudienceKind.MILESTONE: "audience_milestone",
}


def _not_found(prompt_id: uuid.UUID) -> PromptNotFound:
    return PromptNotFound(f"No prompt {prompt_id} in this brand.")


def _problem(field: str, message: str) -> dict[str, Any]:
    return {"loc": ["body", field], "msg": message, "type": "value_error"}


async def _check_audience(
    prompts: PromptRepository, brand_id: uuid.UUID, audience: Audience
) -> None:
    kind = audience.audience
    needed = _NEEDS[kind]
    problems = [
        _problem(field, f"must be empty for audience {kind.value!r}")
        for field in _AUDIENCE_FIELDS
        if field != needed and getattr(audience, field)
    ]
    if needed is not None and not getattr(audience, needed):
        problems.append(_problem(needed, f"audience {kind.value!r} needs it"))
    if kind == AudienceKind.GROUPS and audience.audience_group_ids:
        known = await prompts.groups_of_brand(brand_id, audience.audience_group_ids)
        unknown = [str(g) for g in audience.audience_group_ids if g not in known]
        if unknown:
            problems.append(
                _problem(
                    "audience_group_ids", f"no such groups in this brand: {', '.join(unknown)}"
                )
            )
    milestone = audience.audience_milestone
    if kind == AudienceKind.MILESTONE and milestone and not is_known(milestone):
        problems.append(
            _problem(
                "audience_milestone",
                "not a milestone the community records: anniversary:<years>, tier:<name>, "
                "first_post or reactions:100",
            )
        )
    if problems:
        raise InvalidAudience(problems)


def _window(prompt: Prompt) -> dict[str, str | None]:
    return {
        "starts_at": prompt.starts_at.isoformat(),
        "ends_at": prompt.ends_at.isoformat() if prompt.ends_at is not None else None,
    }


# --- Staff --------------------------------------------------------------------------------------


async def create_prompt(
    session: AsyncSession,
    brand_id: uuid.UUID,
    payload: PromptCreate,
    now: datetime | None = None,
) -> Prompt:
    """`now` is when staff wrote it (a bulk loader replaying history passes that moment)."""
    now = now or utcnow()
    starts_at = payload.starts_at or now
    if payload.ends_at is not None and payload.ends_at <= starts_at:
        raise ValidationFailed([_problem("ends_at", "must be after starts_at")])
    prompts = PromptRepository(session)
    await _check_audience(
        prompts,
        brand_id,
        Audience(
            payload.audience,
            payload.audience_tier_ids,
            payload.audience_group_ids,
            payload.audience_milestone,
        ),
    )
    prompt = Prompt(
        id=new_id(),
        brand_id=brand_id,
        title=payload.title,
        body=payload.body,
        tags=payload.tags,
        starts_at=starts_at,
        ends_at=payload.ends_at,
        audience=payload.audience,
        audience_tier_ids=payload.audience_tier_ids,
        audience_group_ids=payload.audience_group_ids,
        audience_milestone=payload.audience_milestone,
        points=payload.points,
        answer_count=0,
        created_at=now,
    )
    await prompts.add(prompt)
    await OUTBOX.add(session, published_event(prompt, now))
    return prompt


def published_event(prompt: Prompt, at: datetime) -> PromptPublished:
    """`prompt.published`: the prompt as it is after staff wrote or changed it at `at`."""
    return PromptPublished(
        brand_id=prompt.brand_id,
        occurred_at=at,
        data=PromptPublishedData(
            prompt_id=prompt.id,
            title=prompt.title,
            body=prompt.body,
            tags=list(prompt.tags),
            starts_at=prompt.starts_at,
            ends_at=prompt.ends_at,
            audience=prompt.audience,
            audience_tier_ids=list(prompt.audience_tier_ids),
        ),
    )


async def get_prompt(session: AsyncSession, brand_id: uuid.UUID, prompt_id: uuid.UUID) -> Prompt:
    prompt = await PromptRepository(session).get(brand_id, prompt_id)
    if prompt is None:
        raise _not_found(prompt_id)
    return prompt


async def list_prompts(
    session: AsyncSession, brand_id: uuid.UUID, page: PageRequest
) -> Sequence[Prompt]:
    return await PromptRepository(session).page(brand_id, page)


async def prompts_by_ids(
    session: AsyncSession, brand_id: uuid.UUID, prompt_ids: list[uuid.UUID]
) -> Sequence[Prompt]:
    """The brand's prompts among these ids (staff)."""
    return await PromptRepository(session).many_by_ids(brand_id, prompt_ids)


async def update_prompt(
    session: AsyncSession, brand_id: uuid.UUID, prompt_id: uuid.UUID, payload: PromptUpdate
) -> Prompt:
    prompts = PromptRepository(session)
    prompt = await prompts.get(brand_id, prompt_id, for_update=True)
    if prompt is None:
        raise _not_found(prompt_id)
    changes = {field: getattr(payload, field) for field in payload.model_fields_set}
    starts_at = changes.get("starts_at", prompt.starts_at)
    ends_at = changes.get("ends_at", prompt.ends_at)
    if ends_at is not None and ends_at <= starts_at:
        raise ValidationFailed([_problem("ends_at", "must be after starts_at")])
    # Check the prompt as it would be, before anything is written: a refusal leaves it as it was.
    stored = {field: getattr(prompt, field) for field in ("audience", *_AUDIENCE_FIELDS)}
    await _check_audience(
        prompts,
        brand_id,
        Audience(
            **{**stored, **{field: value for field, value in changes.items() if field in stored}}
        ),
    )
    for field, value in changes.items():
        setattr(prompt, field, value)
    await session.flush()
    await OUTBOX.add(session, published_event(prompt, utcnow()))
    return prompt


async def delete_prompt(session: AsyncSession, brand_id: uuid.UUID, prompt_id: uuid.UUID) -> None:
    prompts = PromptRepository(session)
    prompt = await prompts.get(brand_id, prompt_id, for_update=True)
    if prompt is None:
        raise _not_found(prompt_id)
    if await prompts.has_answers(prompt.id):
        raise PromptHasAnswers()
    await prompts.delete(prompt)
    await OUTBOX.add(
        session,
        PromptDeleted(
            brand_id=brand_id, occurred_at=utcnow(), data=PromptDeletedData(prompt_id=prompt_id)
        ),
    )


# --- Members ------------------------------------------------------------------------------------


async def open_prompts(
    session: AsyncSession, member: CommunityMember, page: PageRequest
) -> Sequence[Prompt]:
    """The prompts the member can answer now, newest first."""
    return await PromptRepository(session).open_for(member, utcnow(), page)


async def member_prompts(
    session: AsyncSession,
    member: CommunityMember,
    page: PageRequest,
    prompt_ids: list[uuid.UUID] | None = None,
) -> Sequence[Prompt]:
    """The prompts a member may read: for them and started (open now or closed since), newest
    first; with `prompt_ids`, those among the ids (all of them, unpaged). Prompts not yet
    started, or for an audience the member is not in, stay unseen."""
    prompts = PromptRepository(session)
    if prompt_ids is not None:
        return await prompts.started_for_by_ids(member, utcnow(), prompt_ids)
    return await prompts.started_for(member, utcnow(), page)


def require_open(prompt: Prompt, now: datetime) -> None:
    """409 `PromptClosed` unless `starts_at <= now < ends_at`."""
    if now < prompt.starts_at:
        raise PromptClosed(
            {"message": f"This prompt opens at {prompt.starts_at.isoformat()}.", **_window(prompt)}
        )
    if prompt.ends_at is not None and now >= prompt.ends_at:
        raise PromptClosed(
            {"message": f"This prompt closed at {prompt.ends_at.isoformat()}.", **_window(prompt)}
        )


async def answer(
    session: AsyncSession,
    member: CommunityMember,
    prompt_id: uuid.UUID,
    payload: PostCreate,
    now: datetime | None = None,
) -> Post:
    now = now or utcnow()
    prompts = PromptRepository(session)
    prompt = await prompts.get(member.brand_id, prompt_id, keep=True)
    if prompt is None:
        raise _not_found(prompt_id)
    require_open(prompt, now)
    if not await prompts.is_for(prompt.id, member):
        raise NotInAudience()
    post = await create_post(
        session, member, payload, prompt_id=prompt.id, incentivised=prompt.points is not None
    )
    await prompts.count_answer(prompt.id)
    await OUTBOX.add(session, answered_event(prompt, post, now))
    return post


def answered_event(prompt: Prompt, answer: Post, at: datetime) -> PromptAnswered:
    """`prompt.answered` for an answer written at `at` (online and by the bulk loader)."""
    return PromptAnswered(
        brand_id=answer.brand_id,
        subject_id=answer.author_id,
        occurred_at=at,
        data=PromptAnsweredData(
            prompt_id=prompt.id,
            post_id=answer.id,
            member_id=answer.author_id,
            status=answer.status,
            points=prompt.points,
        ),
    )


async def answers(
    session: AsyncSession,
    brand_id: uuid.UUID,
    prompt_id: uuid.UUID,
    viewer_id: uuid.UUID | None,
    page: PageRequest,
) -> list[tuple[Post, str | None]]:
    """A prompt's published answers, newest first."""
    prompts = PromptRepository(session)
    if await prompts.get(brand_id, prompt_id) is None:
        raise _not_found(prompt_id)
    return await prompts.answers(brand_id, prompt_id, viewer_id, page)
