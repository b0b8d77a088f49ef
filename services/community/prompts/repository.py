"""All SQL of prompts and their answers. Every query filters by brand, or by a prompt id already
resolved within the brand.

Who a prompt is for is one SQL condition (`_for_member`), used both to list the prompts open to a
member and to check one before they answer it, so the two can never disagree.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Select,
    and_,
    any_,
    bindparam,
    exists,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.milestones.models import ReachedMilestone
from services.community.models import (
    AudienceKind,
    CommunityMember,
    Group,
    GroupMembership,
    MembershipStatus,
    Post,
    Prompt,
)
from services.community.social.repository import not_blocked_between
from services.kernel.db import copy_records, table_of
from services.kernel.pagination import PageRequest, keyset

# A literal, so the planner matches the partial index on published posts.
_PUBLISHED: ColumnElement[str] = literal_column("'published'")
# Arrays, one parameter each: a batch's ids would exceed the protocol's 32,767 parameters.
_IDS = bindparam("ids", type_=ARRAY(UUID(as_uuid=True)))

# Column order of the answers' records the bulk loader builds (`prompts.bulk`).
ANSWER_COLUMNS = (
    "id",
    "brand_id",
    "author_id",
    "kind",
    "body",
    "media",
    "tags",
    "skus",
    "group_id",
    "prompt_id",
    "review_sku",
    "rating",
    "incentivised",
    "status",
    "held_reasons",
    "body_hash",
    "created_at",
    "updated_at",
    "approved_at",
)


def _for_member(member: CommunityMember) -> ColumnElement[bool]:
    """The prompts whose audience includes `member`: everyone; their tier; an active membership
    of one of the groups (not archived); or a milestone they reached."""
    return _for(member.brand_id, member.member_id, _tiers(member))


def _tiers(member: CommunityMember) -> list[uuid.UUID]:
    return [member.tier_id] if member.tier_id is not None else []


# A value, or the parameter of a statement built once and bound when run.
Bound = ColumnElement[Any] | uuid.UUID | list[uuid.UUID] | datetime


def _for(brand_id: Bound, member_id: Bound, tiers: Bound) -> ColumnElement[bool]:
    """`_for_member`, of the member's brand, id and tiers (none, or theirs)."""
    in_group = exists().where(
        GroupMembership.member_id == member_id,
        GroupMembership.status == MembershipStatus.ACTIVE,
        GroupMembership.group_id == any_(Prompt.audience_group_ids),
        Group.id == GroupMembership.group_id,
        Group.archived.is_(False),
    )
    reached = exists().where(
        ReachedMilestone.brand_id == brand_id,
        ReachedMilestone.member_id == member_id,
        ReachedMilestone.milestone == Prompt.audience_milestone,
    )
    return or_(
        Prompt.audience == AudienceKind.ALL,
        and_(Prompt.audience == AudienceKind.TIERS, Prompt.audience_tier_ids.overlap(tiers)),
        and_(Prompt.audience == AudienceKind.GROUPS, in_group),
        and_(Prompt.audience == AudienceKind.MILESTONE, reached),
    )


def _started_for(brand_id: Bound, member_id: Bound, tiers: Bound, now: Bound) -> Select[Prompt]:
    return select(Prompt).where(
        Prompt.brand_id == brand_id, Prompt.starts_at <= now, _for(brand_id, member_id, tiers)
    )


# The started prompts among some ids that a member may read, behind every prompt the apps show
# (the gateway's `by_id`): built once and bound when run, since building it for every call cost
# a good part of the call's CPU.
_STARTED_FOR_BY_IDS = (
    _started_for(
        bindparam("brand_id", type_=UUID(as_uuid=True)),
        bindparam("member_id", type_=UUID(as_uuid=True)),
        bindparam("tiers", type_=ARRAY(UUID(as_uuid=True))),
        bindparam("now", type_=DateTime(timezone=True)),
    )
    .where(Prompt.id == any_(_IDS))
    .order_by(Prompt.id.desc())
)


def _open_at(now: datetime) -> ColumnElement[bool]:
    return and_(Prompt.starts_at <= now, or_(Prompt.ends_at.is_(None), Prompt.ends_at > now))


class PromptRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, prompt: Prompt) -> None:
        self.session.add(prompt)
        await self.session.flush()

    async def get(
        self,
        brand_id: uuid.UUID,
        prompt_id: uuid.UUID,
        *,
        for_update: bool = False,
        keep: bool = False,
    ) -> Prompt | None:
        """The prompt; `keep` (FOR KEY SHARE) holds off its deletion until the transaction ends
        without blocking other answers."""
        statement = (
            select(Prompt)
            .where(Prompt.brand_id == brand_id, Prompt.id == prompt_id)
            .execution_options(populate_existing=True)
        )
        if for_update:
            statement = statement.with_for_update()
        elif keep:
            statement = statement.with_for_update(read=True, key_share=True)
        return await self.session.scalar(statement)

    async def page(self, brand_id: uuid.UUID, page: PageRequest) -> Sequence[Prompt]:
        """Every prompt of the brand, newest first."""
        statement = select(Prompt).where(Prompt.brand_id == brand_id)
        return (
            await self.session.scalars(keyset(statement, Prompt.id, page, newest_first=True))
        ).all()

    async def many_by_ids(
        self, brand_id: uuid.UUID, prompt_ids: Sequence[uuid.UUID]
    ) -> Sequence[Prompt]:
        """The brand's prompts among these ids, newest first."""
        statement = (
            select(Prompt)
            .where(Prompt.brand_id == brand_id, Prompt.id == any_(_IDS))
            .order_by(Prompt.id.desc())
        )
        return (await self.session.scalars(statement, {"ids": list(prompt_ids)})).all()

    async def started_for(
        self, member: CommunityMember, now: datetime, page: PageRequest
    ) -> Sequence[Prompt]:
        """The prompts for the member that have started (open or closed since), newest first."""
        started = _started_for(member.brand_id, member.member_id, _tiers(member), now)
        statement = keyset(started, Prompt.id, page, newest_first=True)
        return (await self.session.scalars(statement)).all()

    async def started_for_by_ids(
        self, member: CommunityMember, now: datetime, prompt_ids: Sequence[uuid.UUID]
    ) -> Sequence[Prompt]:
        """`started_for`, among these ids only, all of them."""
        parameters = {
            "brand_id": member.brand_id,
            "member_id": member.member_id,
            "tiers": _tiers(member),
            "now": now,
            "ids": list(prompt_ids),
        }
        return (await self.session.scalars(_STARTED_FOR_BY_IDS, parameters)).all()

    async def open_for(
        self, member: CommunityMember, now: datetime, page: PageRequest
    ) -> Sequence[Prompt]:
        """The prompts open now whose audience includes the member, newest first."""
        statement = select(Prompt).where(
            Prompt.brand_id == member.brand_id, _open_at(now), _for_member(member)
        )
        return (
            await self.session.scalars(keyset(statement, Prompt.id, page, newest_first=True))
        ).all()

    async def is_for(self, prompt_id: uuid.UUID, member: CommunityMember) -> bool:
        return bool(
            await self.session.scalar(
                select(exists().where(Prompt.id == prompt_id, _for_member(member)))
            )
        )

    async def groups_of_brand(
        self, brand_id: uuid.UUID, group_ids: Sequence[uuid.UUID]
    ) -> set[uuid.UUID]:
        if not group_ids:
            return set()
        rows = await self.session.scalars(
            select(Group.id).where(Group.brand_id == brand_id, Group.id.in_(group_ids))
        )
        return set(rows)

    async def has_answers(self, prompt_id: uuid.UUID) -> bool:
        return bool(await self.session.scalar(select(exists().where(Post.prompt_id == prompt_id))))

    async def delete(self, prompt: Prompt) -> None:
        await self.session.delete(prompt)
        await self.session.flush()

    async def count_answer(self, prompt_id: uuid.UUID) -> None:
        await self.session.execute(
            update(Prompt)
            .where(Prompt.id == prompt_id)
            .values(answer_count=Prompt.answer_count + 1)
        )

    async def answers(
        self,
        brand_id: uuid.UUID,
        prompt_id: uuid.UUID,
        viewer_id: uuid.UUID | None,
        page: PageRequest,
    ) -> list[tuple[Post, str | None]]:
        """The prompt's published answers with their authors' names, newest first; a member
        reading sees nothing by someone they blocked or who blocked them."""
        statement = (
            select(Post, CommunityMember.display_name)
            .join(CommunityMember, CommunityMember.member_id == Post.author_id)
            .where(
                Post.brand_id == brand_id,
                Post.prompt_id == prompt_id,
                Post.status == _PUBLISHED,
            )
        )
        if viewer_id is not None:
            statement = statement.where(not_blocked_between(viewer_id, Post.author_id))
        rows = await self.session.execute(keyset(statement, Post.id, page, newest_first=True))
        return [(post, name) for post, name in rows]

    # --- The bulk loader (`prompts.bulk`) ---------------------------------------------------

    async def many(
        self, brand_id: uuid.UUID, prompt_ids: Collection[uuid.UUID]
    ) -> dict[uuid.UUID, Prompt]:
        """The brand's prompts among these ids, held (FOR KEY SHARE) as `get(keep=True)` does."""
        if not prompt_ids:
            return {}
        rows = await self.session.scalars(
            select(Prompt)
            .where(Prompt.brand_id == brand_id, Prompt.id == any_(_IDS))
            .with_for_update(read=True, key_share=True)
            .execution_options(populate_existing=True),
            {"ids": list(prompt_ids)},
        )
        return {row.id: row for row in rows}

    async def members(
        self, brand_id: uuid.UUID, member_ids: Collection[uuid.UUID]
    ) -> dict[uuid.UUID, CommunityMember]:
        """The brand's members among these ids, as the community knows them (one array
        parameter: a batch can name more members than a statement takes parameters)."""
        if not member_ids:
            return {}
        rows = await self.session.scalars(
            select(CommunityMember).where(
                CommunityMember.brand_id == brand_id, CommunityMember.member_id == any_(_IDS)
            ),
            {"ids": list(member_ids)},
        )
        return {row.member_id: row for row in rows}

    async def named(self, brand_id: uuid.UUID, title: str, starts_at: datetime) -> Prompt | None:
        """The brand's oldest prompt with this title opening at this moment (a loader that
        resumes finds the prompts it wrote by them)."""
        return await self.session.scalar(
            select(Prompt)
            .where(
                Prompt.brand_id == brand_id, Prompt.title == title, Prompt.starts_at == starts_at
            )
            .order_by(Prompt.id)
            .limit(1)
        )

    async def answered(self, prompt_id: uuid.UUID, member_id: uuid.UUID) -> bool:
        """Whether the member has answered the prompt (any status)."""
        return bool(
            await self.session.scalar(
                select(exists().where(Post.prompt_id == prompt_id, Post.author_id == member_id))
            )
        )

    async def copy_answers(self, records: Sequence[Sequence[object]]) -> None:
        """COPY the answers (posts, in `ANSWER_COLUMNS` order) on the session's connection."""
        await copy_records(self.session, table_of(Post), ANSWER_COLUMNS, records)

    async def count_answers(self, counts: dict[uuid.UUID, int]) -> None:
        """Adds each prompt's new answers to its `answer_count`, as `count_answer` does one by
        one."""
        # In id order: loads side by side lock shared prompts in one order, never deadlocking.
        for prompt_id, count in sorted(counts.items()):
            await self.session.execute(
                update(Prompt)
                .where(Prompt.id == prompt_id)
                .values(answer_count=Prompt.answer_count + count)
                .execution_options(synchronize_session=False)
            )
