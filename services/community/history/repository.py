"""All SQL of the community's bulk history path: the checks before a load, and the writes.

Rows are written with PostgreSQL's COPY on the session's own connection, inside its transaction,
so the caller's commit (or rollback) covers them like any other write. Lists travel as one array
parameter each: a batch's ids would exceed the protocol's 32,767 parameters.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.selectable import TableValuedAlias

from services.community.models import Comment, CommunityMember, ContentStatus, Post
from services.community.posts.models import Reaction
from services.community.social.models import Block, Follow
from services.kernel.db import copy_records, driver_connection, table_of

_IDS = bindparam("ids", type_=ARRAY(UUID(as_uuid=True)))
_OTHERS = bindparam("others", type_=ARRAY(UUID(as_uuid=True)))


def _pairs(first: str, second: str) -> TableValuedAlias:
    """The pairs `_pair_parameters` binds, as a table of two columns."""
    return func.unnest(_IDS, _OTHERS).table_valued(first, second).render_derived()


def _pair_parameters(pairs: Collection[tuple[uuid.UUID, uuid.UUID]]) -> dict[str, object]:
    return {"ids": [a for a, _ in pairs], "others": [b for _, b in pairs]}


# Column orders of the records the service builds. Columns left out take their defaults, which
# are what the online path writes for these posts and comments: no media, skus, group, prompt or
# review; not incentivised; not removed; no parent comment; no reactions on comments.
POST_COLUMNS = (
    "id",
    "brand_id",
    "author_id",
    "kind",
    "body",
    "tags",
    "status",
    "held_reasons",
    "body_hash",
    "comment_count",
    "reaction_count",
    "created_at",
    "approved_at",
    "updated_at",
)
COMMENT_COLUMNS = (
    "id",
    "brand_id",
    "post_id",
    "author_id",
    "body",
    "status",
    "held_reasons",
    "body_hash",
    "created_at",
    "approved_at",
)
REACTION_COLUMNS = ("id", "brand_id", "member_id", "target_id", "post_id", "kind", "created_at")
FOLLOW_COLUMNS = ("id", "brand_id", "follower_id", "followee_id", "created_at")

# Raw asyncpg (arrays as one parameter each); the table is `Post`'s.
_ADD_TO_COUNTS = """
UPDATE community.posts AS p
SET comment_count = p.comment_count + v.comments,
    reaction_count = p.reaction_count + v.reactions
FROM unnest($1::uuid[], $2::int[], $3::int[]) AS v(id, comments, reactions)
WHERE p.id = v.id
"""


@dataclass(frozen=True, slots=True)
class PostTarget:
    """A post already in the brand that the batch responds to (locked until the load ends)."""

    id: uuid.UUID
    author_id: uuid.UUID
    status: ContentStatus
    group_id: uuid.UUID | None
    created_at: datetime


class ContentHistoryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- checks ---

    async def members(
        self, brand_id: uuid.UUID, member_ids: Collection[uuid.UUID]
    ) -> dict[uuid.UUID, CommunityMember]:
        if not member_ids:
            return {}
        rows = await self.session.scalars(
            select(CommunityMember).where(
                CommunityMember.brand_id == brand_id, CommunityMember.member_id == any_(_IDS)
            ),
            {"ids": list(member_ids)},
        )
        return {row.member_id: row for row in rows}

    async def lock_posts(
        self, brand_id: uuid.UUID, post_ids: Collection[uuid.UUID]
    ) -> dict[uuid.UUID, PostTarget]:
        """The brand's posts among these ids, locked in id order (as a comment locks its post
        online), so no removal slips between the checks and the counters."""
        if not post_ids:
            return {}
        rows = await self.session.execute(
            select(Post.id, Post.author_id, Post.status, Post.group_id, Post.created_at)
            .where(Post.brand_id == brand_id, Post.id == any_(_IDS))
            .order_by(Post.id)
            .with_for_update(),
            {"ids": list(post_ids)},
        )
        return {row.id: PostTarget(*row) for row in rows}

    async def existing_posts(
        self, brand_id: uuid.UUID, post_ids: Collection[uuid.UUID]
    ) -> set[uuid.UUID]:
        """Which of these post ids the brand has."""
        if not post_ids:
            return set()
        found = await self.session.scalars(
            select(Post.id).where(Post.brand_id == brand_id, Post.id == any_(_IDS)),
            {"ids": list(post_ids)},
        )
        return set(found)

    # The checks below never match two arrays as sets (`a = ANY(x) AND b = ANY(y)`): on an
    # index over (a, b), a generic plan probes every combination, 24 million for one
    # simulator chunk's follows (39 s), and asyncpg's prepared statements get generic plans
    # from their sixth run. Pairs are matched as pairs; blocks by the leading column alone.

    async def reactions_given(
        self, pairs: Collection[tuple[uuid.UUID, uuid.UUID]]
    ) -> set[tuple[uuid.UUID, uuid.UUID, str]]:
        """(member, post, kind) of the reactions these (member, post) pairs have given."""
        if not pairs:
            return set()
        r = Reaction
        wanted = _pairs("member_id", "target_id")
        rows = await self.session.execute(
            select(r.member_id, r.target_id, r.kind).join(
                wanted,
                and_(r.member_id == wanted.c.member_id, r.target_id == wanted.c.target_id),
            ),
            _pair_parameters(pairs),
        )
        return {(member, target, str(kind)) for member, target, kind in rows}

    async def follows_among(
        self, pairs: Collection[tuple[uuid.UUID, uuid.UUID]]
    ) -> set[tuple[uuid.UUID, uuid.UUID]]:
        """Which of these (follower, followee) pairs follow already."""
        if not pairs:
            return set()
        wanted = _pairs("follower_id", "followee_id")
        rows = await self.session.execute(
            select(Follow.follower_id, Follow.followee_id).join(
                wanted,
                and_(
                    Follow.follower_id == wanted.c.follower_id,
                    Follow.followee_id == wanted.c.followee_id,
                ),
            ),
            _pair_parameters(pairs),
        )
        return {(a, b) for a, b in rows}

    async def blocks_among(
        self, member_ids: Collection[uuid.UUID]
    ) -> set[tuple[uuid.UUID, uuid.UUID]]:
        """(blocker, blocked) pairs between these members."""
        if not member_ids:
            return set()
        rows = await self.session.execute(
            select(Block.blocker_id, Block.blocked_id).where(Block.blocker_id == any_(_IDS)),
            {"ids": list(member_ids)},
        )
        among = set(member_ids)
        return {(a, b) for a, b in rows if b in among}

    # --- writes ---

    async def write(
        self,
        *,
        posts: Sequence[Sequence[object]],
        comments: Sequence[Sequence[object]],
        reactions: Sequence[Sequence[object]],
        follows: Sequence[Sequence[object]],
    ) -> None:
        """COPY the rows; posts first (comments and reactions point at them)."""
        await copy_records(self.session, table_of(Post), POST_COLUMNS, posts)
        await copy_records(self.session, table_of(Comment), COMMENT_COLUMNS, comments)
        await copy_records(self.session, table_of(Reaction), REACTION_COLUMNS, reactions)
        await copy_records(self.session, table_of(Follow), FOLLOW_COLUMNS, follows)

    async def add_to_counts(self, counts: dict[uuid.UUID, tuple[int, int]]) -> None:
        """Adds (comments, reactions) to posts already in the brand, in one statement."""
        if not counts:
            return
        ids = sorted(counts)
        driver = await driver_connection(self.session)
        await driver.execute(
            _ADD_TO_COUNTS,
            ids,
            [counts[i][0] for i in ids],
            [counts[i][1] for i in ids],
        )
