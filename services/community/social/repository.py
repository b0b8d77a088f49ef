"""All SQL of follows, blocks and mutes, plus the clauses the feeds and threads compose to leave
out what a viewer must not see (blocked either way, muted)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Select,
    and_,
    delete,
    exists,
    func,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from services.community.models import CommunityMember
from services.community.social.models import Block, Follow, Mute
from services.kernel.ids import new_id
from services.kernel.pagination import PageRequest, keyset

Relation = type[Follow] | type[Block] | type[Mute]


# --- Clauses the content queries compose ------------------------------------------------------


def followees_of(member_id: uuid.UUID) -> Select[uuid.UUID]:
    """The members `member_id` follows, as a subquery for `author_id IN (...)`."""
    return select(Follow.followee_id).where(Follow.follower_id == member_id)


def not_blocked_between(
    viewer_id: uuid.UUID | ColumnElement[uuid.UUID], author: Any
) -> ColumnElement[bool]:
    """True unless the viewer blocked the author or the author blocked the viewer."""
    return ~exists().where(
        or_(
            and_(Block.blocker_id == viewer_id, Block.blocked_id == author),
            and_(Block.blocker_id == author, Block.blocked_id == viewer_id),
        )
    )


def not_muted_by(
    viewer_id: uuid.UUID | ColumnElement[uuid.UUID], author: Any
) -> ColumnElement[bool]:
    """True unless the viewer muted the author."""
    return ~exists().where(Mute.muter_id == viewer_id, Mute.muted_id == author)


# --- The relations themselves -----------------------------------------------------------------


def _columns(relation: Relation) -> tuple[InstrumentedAttribute[uuid.UUID], ...]:
    if relation is Follow:
        return (Follow.follower_id, Follow.followee_id)
    if relation is Block:
        return (Block.blocker_id, Block.blocked_id)
    return (Mute.muter_id, Mute.muted_id)


class SocialRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self,
        relation: Relation,
        brand_id: uuid.UUID,
        actor_id: uuid.UUID,
        other_id: uuid.UUID,
        created_at: datetime,
    ) -> bool:
        """Records `actor -> other`; False (nothing written) if it was already there."""
        actor, other = _columns(relation)
        inserted = await self.session.scalar(
            insert(relation)
            .values(
                {
                    "id": new_id(),
                    "brand_id": brand_id,
                    actor.key: actor_id,
                    other.key: other_id,
                    "created_at": created_at,
                }
            )
            .on_conflict_do_nothing(index_elements=[actor.key, other.key])
            .returning(relation.id)
        )
        return inserted is not None

    async def remove(self, relation: Relation, actor_id: uuid.UUID, other_id: uuid.UUID) -> bool:
        actor, other = _columns(relation)
        result = cast(
            CursorResult[Any],
            await self.session.execute(
                delete(relation).where(actor == actor_id, other == other_id)
            ),
        )
        return result.rowcount > 0

    async def exists(self, relation: Relation, actor_id: uuid.UUID, other_id: uuid.UUID) -> bool:
        actor, other = _columns(relation)
        return bool(
            await self.session.scalar(select(exists().where(actor == actor_id, other == other_id)))
        )

    async def blocked_between(self, a: uuid.UUID, b: uuid.UUID) -> bool:
        """Whether either of the two blocked the other."""
        return bool(await self.session.scalar(select(~not_blocked_between(a, b))))

    async def unfollow_both_ways(
        self, a: uuid.UUID, b: uuid.UUID
    ) -> list[tuple[uuid.UUID, uuid.UUID]]:
        """Deletes the follows between two members; returns the (follower, followee) pairs."""
        rows = await self.session.execute(
            delete(Follow)
            .where(
                or_(
                    and_(Follow.follower_id == a, Follow.followee_id == b),
                    and_(Follow.follower_id == b, Follow.followee_id == a),
                )
            )
            .returning(Follow.follower_id, Follow.followee_id)
        )
        return [(row.follower_id, row.followee_id) for row in rows]

    async def page(
        self,
        relation: Relation,
        brand_id: uuid.UUID,
        member_id: uuid.UUID,
        page: PageRequest,
        *,
        reverse: bool = False,
    ) -> Sequence[tuple[uuid.UUID, uuid.UUID, str | None, Any]]:
        """The members on the other side of `member_id`'s relations, newest first: rows of
        (relation id, other member id, display name, since). `reverse` lists who related to
        `member_id` instead (their followers)."""
        actor, other = _columns(relation)
        mine, theirs = (other, actor) if reverse else (actor, other)
        statement = (
            select(relation.id, theirs, CommunityMember.display_name, relation.created_at)
            .join(CommunityMember, CommunityMember.member_id == theirs)
            .where(relation.brand_id == brand_id, mine == member_id)
        )
        rows = await self.session.execute(keyset(statement, relation.id, page, newest_first=True))
        return [(row[0], row[1], row[2], row[3]) for row in rows]

    async def counts(self, member_id: uuid.UUID) -> tuple[int, int]:
        """(followers, following) of a member."""
        followers = await self.session.scalar(
            select(func.count()).where(Follow.followee_id == member_id)
        )
        following = await self.session.scalar(
            select(func.count()).where(Follow.follower_id == member_id)
        )
        return int(followers or 0), int(following or 0)
