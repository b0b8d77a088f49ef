"""Bulk loading of prompt answers: what `service.answer` would have left, written with COPY.

**What a load stands for.** Each answer is replayed as if the member had answered online with
the clock at its `answered_at` (`POST /prompts/{id}/answers`, then posts' `create_post`):

- the same checks, in the same order, each against that moment: the member is known and free
  to act (404 `MemberNotFound`, 403 `MemberSuspended`), the prompt exists in the brand (404
  `PromptNotFound`), it was open then (409 `PromptClosed`), the member is in its audience (403
  `NotInAudience`, by the online SQL condition), then the post's own rules: an active
  membership of its group, trust for links (403 `TrustLevelTooLow`), one live review per sku
  (409 `ReviewExists`, counting the batch's own). An answer after `now` is 422. Everything is
  checked before anything is written: a refused batch writes nothing, and the error names the
  answer (its index in the batch).
- the automatic first pass (`moderation.screening.verdict`, the online decision) with the
  brand's rules as they are now, and copies of the body counted as of `answered_at`: the
  posts and comments already written in the window before it, and the batch's earlier answers;
- the answer as a post (created, updated and approved at `answered_at`; its id a UUIDv7 of that
  moment, `kernel.ids.id_at`, so ids still sort by creation), the prompt's `answer_count`, and
  the online path's events in its order: `post.created`, `post.approved` when published at
  once, `prompt.answered`, each at `answered_at` (built by the online builders: posts'
  `written_post_events`, prompts' `answered_event`). The consumers (rewards' activity points,
  reputation, challenges) do the rest from them.

**Batches.** The caller commits per batch. Answers are replayed in time order (ties in the
order given).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.errors import MemberNotFound, MemberSuspended
from services.community.groups.membership import require_active_membership
from services.community.members.abilities import Ability
from services.community.members.service import is_suspended, require_ability
from services.community.models import (
    OUTBOX,
    AudienceKind,
    CommunityMember,
    ContentStatus,
    Post,
    PostKind,
    Prompt,
)
from services.community.moderation.repository import Copy
from services.community.moderation.screening import (
    duplicate_window,
    historic_copies,
    may_be_duplicate,
    screening_rules,
    too_many_copies,
    verdict,
)
from services.community.posts.errors import ReviewExists
from services.community.posts.repository import PostRepository
from services.community.posts.schemas import PostCreate
from services.community.posts.service import written_post_events
from services.community.posts.text import body_hash, has_link
from services.community.prompts.errors import NotInAudience, PromptNotFound
from services.community.prompts.repository import ANSWER_COLUMNS, PromptRepository
from services.community.prompts.service import answered_event, require_open
from services.kernel.clock import utcnow
from services.kernel.errors import KinfolkError, ValidationFailed
from services.kernel.events import Event
from services.kernel.ids import id_at


@dataclass(frozen=True, slots=True)
class HistoricAnswer:
    prompt_id: uuid.UUID
    member_id: uuid.UUID
    answered_at: datetime
    post: PostCreate


@dataclass(frozen=True, slots=True)
class AnswersReport:
    answers: int
    published: int
    held: int
    events: int


def _refusal(index: int, error: KinfolkError) -> KinfolkError:
    """The online error, naming the answer of the batch it refuses."""
    return type(error)({"answer": index, "detail": error.detail})


def _screened_text(post: PostCreate) -> str:
    """What the first pass reads: the text and every alt text (as posts' `create_post`)."""
    return "\n".join([post.body, *(item.alt for item in post.media if item.alt)])


async def _check(
    session: AsyncSession,
    brand_id: uuid.UUID,
    ordered: Sequence[tuple[int, HistoricAnswer]],
    now: datetime,
) -> tuple[dict[uuid.UUID, CommunityMember], dict[uuid.UUID, Prompt]]:
    """Every answer's checks, in the online order; raises the first refusal."""
    prompts_repository = PromptRepository(session)
    members = await prompts_repository.members(brand_id, {a.member_id for _, a in ordered})
    prompts = await prompts_repository.many(brand_id, {a.prompt_id for _, a in ordered})
    audience: dict[tuple[uuid.UUID, uuid.UUID], bool] = {}
    posts = PostRepository(session)
    reviews: set[tuple[uuid.UUID, str]] = set()
    for index, answer in ordered:
        at = answer.answered_at
        try:
            if at > now:
                raise ValidationFailed(
                    [
                        {
                            "loc": ["body", index, "answered_at"],
                            "msg": f"is after now ({now.isoformat()})",
                            "type": "value_error",
                        }
                    ]
                )
            member = members.get(answer.member_id)
            if member is None or member.member_status == "erased":
                raise MemberNotFound(f"No member {answer.member_id} in this brand's community.")
            if is_suspended(member, at):
                raise MemberSuspended()
            prompt = prompts.get(answer.prompt_id)
            if prompt is None:
                raise PromptNotFound(f"No prompt {answer.prompt_id} in this brand.")
            require_open(prompt, at)
            if prompt.audience != AudienceKind.ALL:
                key = (prompt.id, member.member_id)
                if key not in audience:
                    audience[key] = await prompts_repository.is_for(prompt.id, member)
                if not audience[key]:
                    raise NotInAudience()
            post = answer.post
            if post.group_id is not None:
                await require_active_membership(session, brand_id, post.group_id, member.member_id)
            if has_link(post.body):
                require_ability(member, Ability.POST_LINKS)
            if post.kind == PostKind.REVIEW:
                assert post.review_sku is not None
                review = (member.member_id, post.review_sku)
                if review in reviews or await posts.live_review(*review) is not None:
                    raise ReviewExists(f"A live review of {post.review_sku!r} exists already.")
                reviews.add(review)
        except KinfolkError as error:
            raise _refusal(index, error) from error
    return members, prompts


async def load_answers(
    session: AsyncSession,
    brand_id: uuid.UUID,
    answers: Sequence[HistoricAnswer],
    now: datetime | None = None,
) -> AnswersReport:
    """Writes `answers` of the brand's members to its prompts, as answered at their times."""
    now = now or utcnow()
    ordered = sorted(enumerate(answers), key=lambda item: item[1].answered_at)
    if not ordered:
        return AnswersReport(answers=0, published=0, held=0, events=0)
    members, prompts = await _check(session, brand_id, ordered, now)

    rules = await screening_rules(session, brand_id)
    texts = {index: (_screened_text(a.post), body_hash(a.post.body)) for index, a in ordered}
    candidates = {
        digest for text, digest in texts.values() if may_be_duplicate(rules.settings, text)
    }
    copies = await historic_copies(
        session,
        brand_id,
        rules.settings,
        candidates,
        ordered[0][1].answered_at,
        ordered[-1][1].answered_at,
    )
    window = duplicate_window(rules.settings)
    records: list[tuple[object, ...]] = []
    events: list[Event] = []
    counts: Counter[uuid.UUID] = Counter()
    published = 0
    for index, answer in ordered:
        at, payload = answer.answered_at, answer.post
        member, prompt = members[answer.member_id], prompts[answer.prompt_id]
        text, digest = texts[index]
        duplicate = may_be_duplicate(rules.settings, text) and too_many_copies(
            rules.settings, copies.count(digest, member.member_id, at - window, at)
        )
        screening = verdict(rules, member, text, duplicate)
        is_published = screening.status == ContentStatus.PUBLISHED
        post = Post(
            id=id_at(at),
            brand_id=brand_id,
            author_id=member.member_id,
            kind=payload.kind,
            body=payload.body,
            media=[item.model_dump() for item in payload.media],
            tags=payload.tags,
            skus=payload.skus,
            group_id=payload.group_id,
            prompt_id=prompt.id,
            review_sku=payload.review_sku,
            rating=payload.rating,
            incentivised=prompt.points is not None,
            status=screening.status,
            held_reasons=list(screening.reasons),
            body_hash=digest,
            created_at=at,
            updated_at=at,
            approved_at=at if is_published else None,
        )
        records.append(
            tuple(
                orjson.dumps(post.media).decode()
                if column == "media"
                else getattr(post, column).value
                if column in ("kind", "status")
                else getattr(post, column)
                for column in ANSWER_COLUMNS
            )
        )
        copies.add(Copy(digest, member.member_id, at))
        events.extend(written_post_events(post))
        published += is_published
        events.append(answered_event(prompt, post, at))
        counts[prompt.id] += 1

    repository = PromptRepository(session)
    await repository.copy_answers(records)
    await repository.count_answers(dict(counts))
    written = await OUTBOX.copy_many(session, events)
    return AnswersReport(
        answers=len(records), published=published, held=len(records) - published, events=written
    )


# --- What a loader that resumes asks --------------------------------------------------------------


async def find_prompt(
    session: AsyncSession, brand_id: uuid.UUID, title: str, starts_at: datetime
) -> Prompt | None:
    """The brand's prompt with this title opening at this moment (the oldest, if several)."""
    return await PromptRepository(session).named(brand_id, title, starts_at)


async def has_answered(session: AsyncSession, prompt_id: uuid.UUID, member_id: uuid.UUID) -> bool:
    """Whether the member answered the prompt (an answer a batch wrote is there)."""
    return await PromptRepository(session).answered(prompt_id, member_id)
