"""All SQL of a member's erasure from the community.

Every statement is guarded so that it touches only what is not erased yet: running the erasure
again finds nothing to change (no row, no timestamp, no event).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, any_, case, delete, func, not_, or_, select, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import Text

from services.community.experiences.models import (
    ACTIVE_STATUSES,
    Booking,
    Experience,
    ExperienceReview,
    ExperienceSession,
    SessionStatus,
)
from services.community.ideas.models import Idea, IdeaComment
from services.community.models import (
    IDEMPOTENCY,
    OUTBOX,
    Comment,
    ContentStatus,
    Post,
)
from services.community.moderation.models import Report
from services.community.posts.models import Bookmark
from services.community.social.models import Block, Follow, Mute
from services.community.testimonials.models import FeaturedPost

_LIVE = (ContentStatus.HELD, ContentStatus.PUBLISHED)


def _blank_if_set(column: Any, blank: str) -> ColumnElement[Any]:
    """`blank` where the column holds something; NULL stays NULL (a session's place has an
    address or a link, and its kind says which)."""
    return case((column.is_(None), None), else_=blank)


@dataclass(frozen=True, slots=True)
class Blank:
    """What erased text becomes: `text` where the column needs some (a post's body, an idea's
    title), `hash` the body hash that goes with it."""

    text: str
    hash: str


@dataclass(frozen=True, slots=True)
class RemovedComment:
    post_id: uuid.UUID
    was_published: bool


class ErasureRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- Posts and comments ----------------------------------------------------------------

    async def blank_posts(
        self, brand_id: uuid.UUID, member_id: uuid.UUID, blank: Blank, now: datetime
    ) -> None:
        """The text of each of the member's posts (body, media with their alt texts, tags)."""
        await self.session.execute(
            update(Post)
            .where(
                Post.brand_id == brand_id,
                Post.author_id == member_id,
                or_(
                    Post.body != blank.text,
                    Post.body_hash != blank.hash,
                    func.jsonb_array_length(Post.media) > 0,
                    func.cardinality(Post.tags) > 0,
                ),
            )
            .values(body=blank.text, body_hash=blank.hash, media=[], tags=[], updated_at=now)
        )

    async def remove_live_posts(
        self, brand_id: uuid.UUID, member_id: uuid.UUID, now: datetime
    ) -> Sequence[Post]:
        """Held or published -> removed, as a moderator's removal does; the posts moved."""
        rows = await self.session.scalars(
            update(Post)
            .where(
                Post.brand_id == brand_id,
                Post.author_id == member_id,
                Post.status.in_(_LIVE),
            )
            .values(status=ContentStatus.REMOVED, removed_at=now)
            .returning(Post)
            .execution_options(populate_existing=True)
        )
        return sorted(rows.all(), key=lambda post: post.id)

    async def blank_comments(self, brand_id: uuid.UUID, member_id: uuid.UUID, blank: Blank) -> None:
        await self.session.execute(
            update(Comment)
            .where(
                Comment.brand_id == brand_id,
                Comment.author_id == member_id,
                or_(Comment.body != blank.text, Comment.body_hash != blank.hash),
            )
            .values(body=blank.text, body_hash=blank.hash)
        )

    async def remove_live_comments(
        self, brand_id: uuid.UUID, member_id: uuid.UUID, now: datetime
    ) -> list[RemovedComment]:
        """Held or published -> removed; each comment's post and whether it was counted there.
        The rows are locked first, so the statuses read are the ones changed."""
        live = (
            await self.session.execute(
                select(Comment.id, Comment.post_id, Comment.status)
                .where(
                    Comment.brand_id == brand_id,
                    Comment.author_id == member_id,
                    Comment.status.in_(_LIVE),
                )
                .order_by(Comment.id)
                .with_for_update()
            )
        ).all()
        if not live:
            return []
        await self.session.execute(
            update(Comment)
            .where(Comment.id.in_([row.id for row in live]))
            .values(status=ContentStatus.REMOVED, removed_at=now)
        )
        return [RemovedComment(row.post_id, row.status == ContentStatus.PUBLISHED) for row in live]

    async def uncount_comments(self, removed: dict[uuid.UUID, int]) -> None:
        """Take removed comments off their posts' `comment_count` (post id -> how many)."""
        for post_id, count in sorted(removed.items()):
            await self.session.execute(
                update(Post)
                .where(Post.id == post_id)
                .values(comment_count=Post.comment_count - count)
            )

    # --- Ideas, reviews, reports, testimonials ---------------------------------------------

    async def blank_ideas(self, brand_id: uuid.UUID, member_id: uuid.UUID, blank: str) -> None:
        await self.session.execute(
            update(Idea)
            .where(
                Idea.brand_id == brand_id,
                Idea.author_id == member_id,
                or_(Idea.title != blank, Idea.body != blank),
            )
            .values(title=blank, body=blank)
        )

    async def blank_idea_comments(
        self, brand_id: uuid.UUID, member_id: uuid.UUID, blank: str
    ) -> None:
        await self.session.execute(
            update(IdeaComment)
            .where(
                IdeaComment.brand_id == brand_id,
                IdeaComment.author_id == member_id,
                IdeaComment.body != blank,
            )
            .values(body=blank)
        )

    async def idea_ids(self, brand_id: uuid.UUID, member_id: uuid.UUID) -> list[uuid.UUID]:
        return list(
            await self.session.scalars(
                select(Idea.id).where(Idea.brand_id == brand_id, Idea.author_id == member_id)
            )
        )

    async def blank_experience_reviews(self, brand_id: uuid.UUID, member_id: uuid.UUID) -> None:
        """A review keeps its rating (counted in its experience's summary), not its words."""
        await self.session.execute(
            update(ExperienceReview)
            .where(
                ExperienceReview.brand_id == brand_id,
                ExperienceReview.member_id == member_id,
                ExperienceReview.body != "",
            )
            .values(body="")
        )

    async def clear_report_notes(self, brand_id: uuid.UUID, member_id: uuid.UUID) -> None:
        """The reports the member filed keep their reason and target, not the member's words."""
        await self.session.execute(
            update(Report)
            .where(
                Report.brand_id == brand_id,
                Report.reporter_id == member_id,
                Report.note.is_not(None),
            )
            .values(note=None)
        )

    async def clear_testimonial_notes(self, brand_id: uuid.UUID, member_id: uuid.UUID) -> None:
        """What staff wrote to the member when asking to feature their post."""
        await self.session.execute(
            update(FeaturedPost)
            .where(
                FeaturedPost.brand_id == brand_id,
                FeaturedPost.author_id == member_id,
                FeaturedPost.note.is_not(None),
            )
            .values(note=None)
        )

    # --- Experiences -----------------------------------------------------------------------

    async def hosted_experience_ids(
        self, brand_id: uuid.UUID, member_id: uuid.UUID
    ) -> list[uuid.UUID]:
        return list(
            await self.session.scalars(
                select(Experience.id)
                .where(Experience.brand_id == brand_id, Experience.host_member_id == member_id)
                .order_by(Experience.id)
            )
        )

    async def blank_experiences(
        self, experience_ids: Sequence[uuid.UUID], blank: str, now: datetime
    ) -> None:
        if not experience_ids:
            return
        await self.session.execute(
            update(Experience)
            .where(
                Experience.id.in_(experience_ids),
                or_(
                    Experience.title != blank,
                    Experience.description != "",
                    func.cardinality(Experience.tags) > 0,
                ),
            )
            .values(title=blank, description="", tags=[], updated_at=now)
        )

    async def upcoming_session_ids(
        self, experience_ids: Sequence[uuid.UUID], now: datetime
    ) -> list[uuid.UUID]:
        if not experience_ids:
            return []
        return list(
            await self.session.scalars(
                select(ExperienceSession.id)
                .where(
                    ExperienceSession.experience_id.in_(experience_ids),
                    ExperienceSession.status == SessionStatus.SCHEDULED,
                    ExperienceSession.starts_at > now,
                )
                .order_by(ExperienceSession.id)
            )
        )

    async def blank_sessions(
        self,
        experience_ids: Sequence[uuid.UUID],
        blank: str,
        kept_reasons: Sequence[str],
        now: datetime,
    ) -> None:
        """The place (an address may be the host's own) and the host's cancellation reasons;
        `kept_reasons` are the ones the erasure itself gave."""
        if not experience_ids:
            return
        reason = ExperienceSession.cancel_reason
        keep_reason = or_(reason.is_(None), reason.in_([blank, *kept_reasons]))
        await self.session.execute(
            update(ExperienceSession)
            .where(
                ExperienceSession.experience_id.in_(experience_ids),
                or_(
                    ExperienceSession.address != blank,
                    ExperienceSession.online_url != blank,
                    not_(keep_reason),
                ),
            )
            .values(
                address=_blank_if_set(ExperienceSession.address, blank),
                online_url=_blank_if_set(ExperienceSession.online_url, blank),
                cancel_reason=case((keep_reason, reason), else_=blank),
                updated_at=now,
            )
        )

    async def live_booking_ids(
        self, brand_id: uuid.UUID, member_id: uuid.UUID, now: datetime
    ) -> list[uuid.UUID]:
        """The member's live bookings and waitlist places on sessions that have not started."""
        return list(
            await self.session.scalars(
                select(Booking.id)
                .join(ExperienceSession, ExperienceSession.id == Booking.session_id)
                .where(
                    Booking.brand_id == brand_id,
                    Booking.member_id == member_id,
                    Booking.status.in_(ACTIVE_STATUSES),
                    ExperienceSession.starts_at > now,
                )
                .order_by(Booking.id)
            )
        )

    # --- Social ----------------------------------------------------------------------------

    async def delete_relations(self, brand_id: uuid.UUID, member_id: uuid.UUID) -> None:
        """Who the member follows, blocks and mutes and who does so to them, and their
        bookmarks: theirs alone, and nothing counts them."""
        for model, one, other in (
            (Follow, Follow.follower_id, Follow.followee_id),
            (Block, Block.blocker_id, Block.blocked_id),
            (Mute, Mute.muter_id, Mute.muted_id),
        ):
            await self.session.execute(
                delete(model).where(
                    model.brand_id == brand_id, or_(one == member_id, other == member_id)
                )
            )
        await self.session.execute(
            delete(Bookmark).where(Bookmark.brand_id == brand_id, Bookmark.member_id == member_id)
        )

    # --- Copies: stored answers and the outbox ---------------------------------------------

    async def delete_stored_answers(self, brand_id: uuid.UUID, key_prefix: str) -> None:
        """The stored answers of the member's idempotent writes (their keys start with
        `key_prefix`): each holds what the write returned, their text with it."""
        table = IDEMPOTENCY.table
        await self.session.execute(
            delete(table).where(
                table.c.brand_id == brand_id,
                table.c.key.startswith(key_prefix, autoescape=True),
            )
        )

    async def scrub_events(
        self,
        brand_id: uuid.UUID,
        types: Sequence[str],
        field: str,
        values: Sequence[uuid.UUID],
        fields: dict[str, Any],
    ) -> None:
        """Overwrite `fields` in the `data` of the outbox's events of `types` whose `data.field`
        is one of `values`; everything else in them stays as it was."""
        if not values:
            return
        table = OUTBOX.table
        data = table.c.payload["data"]
        await self.session.execute(
            update(table)
            .where(
                *self._events(brand_id, types, field, values),
                or_(
                    *(
                        data[name].is_distinct_from(sql_cast(value, JSONB))
                        for name, value in fields.items()
                    )
                ),
            )
            .values(payload=self._with(fields))
        )

    async def scrub_cancel_reasons(
        self, brand_id: uuid.UUID, host_id: uuid.UUID, blank: str, kept: Sequence[str]
    ) -> None:
        """The reasons in `experience.session_cancelled` events of the host's sessions, but for
        the ones in `kept` (the erasure's own)."""
        table = OUTBOX.table
        reason = table.c.payload["data"]["reason"].astext
        await self.session.execute(
            update(table)
            .where(
                *self._events(
                    brand_id, ["experience.session_cancelled"], "host_member_id", [host_id]
                ),
                reason.is_not(None),
                reason.not_in([blank, *kept]),
            )
            .values(payload=self._with({"reason": blank}))
        )

    @staticmethod
    def _events(
        brand_id: uuid.UUID, types: Sequence[str], field: str, values: Sequence[uuid.UUID]
    ) -> list[ColumnElement[bool]]:
        table = OUTBOX.table
        return [
            table.c.brand_id == brand_id,
            table.c.type == any_(sql_cast(list(types), ARRAY(Text))),
            table.c.payload["data"][field].astext
            == any_(sql_cast([str(v) for v in values], ARRAY(Text))),
        ]

    @staticmethod
    def _with(fields: dict[str, Any]) -> ColumnElement[Any]:
        """The payload with `fields` set in its `data`."""
        payload = OUTBOX.table.c.payload
        return func.jsonb_set(
            payload,
            sql_cast(["data"], ARRAY(Text)),
            payload["data"].op("||")(sql_cast(fields, JSONB)),
        )
