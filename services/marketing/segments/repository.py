"""All SQL of segments: the segments, their versions, and membership as stays.

A stay is a member's time in a segment: member of versions `entered_version` up to, not
including, `exited_version` (NULL while still a member). A version's members, and who entered
or exited between two versions, are range queries over stays; materialising a version is one
statement that closes the stays of members who left and opens stays for members who came.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from services.kernel.pagination import PageRequest, keyset
from services.marketing.models import (
    MemberView,
    RefreshEvery,
    Segment,
    SegmentMembership,
    SegmentVersion,
)

Stay = SegmentMembership

# A SELECT of member ids, as the exports read them. (SQLAlchemy 2.1 spells a one-column select
# `Select[uuid.UUID]`; this is the name the exports were written against.)
MemberIds = Select[tuple[uuid.UUID]]
# The schedule looks every few minutes; a refresh is due this much before its full period, so
# an hourly segment computed a moment after a look is not left for a whole extra look.
_SLACK = timedelta(minutes=5)
_HOUR = timedelta(hours=1) - _SLACK
_DAY = timedelta(days=1) - _SLACK


def _member_at(stay: Any, segment_id: uuid.UUID, version: int) -> ColumnElement[bool]:
    return and_(
        stay.segment_id == segment_id,
        stay.entered_version <= version,
        or_(stay.exited_version.is_(None), stay.exited_version > version),
    )


def version_members(segment_id: uuid.UUID, version: int) -> MemberIds:
    """The members of a version (none for version 0)."""
    return cast(MemberIds, select(Stay.member_id).where(_member_at(Stay, segment_id, version)))


def entered_between(segment_id: uuid.UUID, after_version: int, version: int) -> MemberIds:
    """Members at `version` who were not at `after_version`."""
    earlier = aliased(Stay)
    query = select(Stay.member_id).where(
        _member_at(Stay, segment_id, version),
        Stay.entered_version > after_version,
        ~exists().where(
            earlier.member_id == Stay.member_id, _member_at(earlier, segment_id, after_version)
        ),
    )
    return cast(MemberIds, query)


def exited_between(segment_id: uuid.UUID, after_version: int, version: int) -> MemberIds:
    """Members at `after_version` who are not at `version`."""
    later = aliased(Stay)
    query = select(Stay.member_id).where(
        _member_at(Stay, segment_id, after_version),
        Stay.exited_version > after_version,
        Stay.exited_version <= version,
        ~exists().where(later.member_id == Stay.member_id, _member_at(later, segment_id, version)),
    )
    return cast(MemberIds, query)


@dataclass(frozen=True, slots=True)
class Counted:
    size: int
    entered: int
    exited: int


class SegmentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- Segments ---------------------------------------------------------------------------

    async def get(self, brand_id: uuid.UUID, segment_id: uuid.UUID) -> Segment | None:
        return await self.session.scalar(
            select(Segment).where(
                Segment.id == segment_id, Segment.brand_id == brand_id, Segment.deleted_at.is_(None)
            )
        )

    async def lock(self, segment: Segment) -> Segment:
        """The segment's row, locked until the transaction ends and read afresh: two
        materialisations of one segment take their turns and number their versions in order."""
        locked = await self.session.scalar(
            select(Segment)
            .where(Segment.id == segment.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        assert locked is not None
        return locked

    async def add(self, segment: Segment) -> None:
        self.session.add(segment)
        await self.session.flush()

    async def page(self, brand_id: uuid.UUID, page: PageRequest) -> Sequence[Segment]:
        query = select(Segment).where(Segment.brand_id == brand_id, Segment.deleted_at.is_(None))
        return (await self.session.scalars(keyset(query, Segment.id, page))).all()

    async def of_brand(self, brand_id: uuid.UUID) -> list[Segment]:
        """Every live segment of the brand: the graph that named segments form is small."""
        rows = await self.session.scalars(
            select(Segment).where(Segment.brand_id == brand_id, Segment.deleted_at.is_(None))
        )
        return list(rows.all())

    async def due(self, now: datetime, limit: int) -> list[Segment]:
        """Segments whose scheduled refresh is due: never materialised, or last computed an
        hour (hourly) or a day (daily) ago; the longest overdue first."""
        last = (
            select(SegmentVersion.computed_at)
            .where(SegmentVersion.segment_id == Segment.id)
            .order_by(SegmentVersion.version.desc())
            .limit(1)
            .scalar_subquery()
        )
        hourly = and_(
            Segment.refresh == RefreshEvery.HOURLY,
            or_(last.is_(None), last <= now - _HOUR),
        )
        daily = and_(
            Segment.refresh == RefreshEvery.DAILY,
            or_(last.is_(None), last <= now - _DAY),
        )
        rows = await self.session.scalars(
            select(Segment)
            .where(Segment.deleted_at.is_(None), or_(hourly, daily))
            .order_by(func.coalesce(last, Segment.created_at))
            .limit(limit)
        )
        return list(rows.all())

    # --- Versions ---------------------------------------------------------------------------

    async def versions(
        self, segment_id: uuid.UUID, *, before: int | None, limit: int
    ) -> list[SegmentVersion]:
        query = select(SegmentVersion).where(SegmentVersion.segment_id == segment_id)
        if before is not None:
            query = query.where(SegmentVersion.version < before)
        rows = await self.session.scalars(
            query.order_by(SegmentVersion.version.desc()).limit(limit)
        )
        return list(rows.all())

    async def get_version(self, segment_id: uuid.UUID, version: int) -> SegmentVersion | None:
        return await self.session.get(SegmentVersion, (segment_id, version))

    async def add_version(self, version: SegmentVersion) -> None:
        self.session.add(version)
        await self.session.flush()

    async def analyze_memberships(self) -> None:
        """Fresh planner statistics for the stays, inside the transaction that changed them."""
        await self.session.execute(text("ANALYZE marketing.segment_memberships"))

    async def materialise(self, segment_id: uuid.UUID, version: int, live: MemberIds) -> Counted:
        """One statement, one snapshot: the live members computed once and set against the
        open stays in one full join (who came, who left); the stays of those who left closed
        at `version`, stays opened for those who came; the counts. One join rather than two
        anti-joins: at 500,000 members that halves the statement (1.6 s to 0.9 s)."""
        members = live.cte("live")
        staying = (
            select(Stay.member_id)
            .where(Stay.segment_id == segment_id, Stay.exited_version.is_(None))
            .subquery("staying")
        )
        diff = (
            select(members.c.member_id.label("came"), staying.c.member_id.label("gone"))
            .select_from(
                members.join(staying, staying.c.member_id == members.c.member_id, full=True)
            )
            .where(or_(members.c.member_id.is_(None), staying.c.member_id.is_(None)))
            .cte("diff")
        )
        closed = (
            update(Stay)
            .where(
                Stay.segment_id == segment_id,
                Stay.exited_version.is_(None),
                Stay.member_id.in_(select(diff.c.gone).where(diff.c.gone.is_not(None))),
            )
            .values(exited_version=version)
            .returning(Stay.member_id)
            .cte("closed")
        )
        opened = (
            insert(Stay)
            .from_select(
                ["segment_id", "member_id", "entered_version"],
                select(literal(segment_id), diff.c.came, literal(version)).where(
                    diff.c.came.is_not(None)
                ),
            )
            .returning(Stay.member_id)
            .cte("opened")
        )
        row = (
            await self.session.execute(
                select(
                    select(func.count()).select_from(members).scalar_subquery(),
                    select(func.count()).select_from(opened).scalar_subquery(),
                    select(func.count()).select_from(closed).scalar_subquery(),
                )
            )
        ).one()
        return Counted(size=int(row[0]), entered=int(row[1]), exited=int(row[2]))

    async def stream_changed(
        self, segment_id: uuid.UUID, version: int, *, entered: bool, chunk: int
    ) -> AsyncIterator[list[uuid.UUID]]:
        """Members whose stay opened (or closed) at `version`, by member id, `chunk` at a
        time through a server-side cursor: what one materialisation changed."""
        column = Stay.entered_version if entered else Stay.exited_version
        result = await self.session.stream_scalars(
            select(Stay.member_id)
            .where(Stay.segment_id == segment_id, column == version)
            .order_by(Stay.member_id)
            .execution_options(yield_per=chunk)
        )
        async for part in result.partitions(chunk):
            yield list(part)

    async def changes(
        self,
        segment_id: uuid.UUID,
        version: int,
        *,
        entered: bool,
        page: PageRequest,
    ) -> list[uuid.UUID]:
        """Who entered (or exited) between the version before and this one, by member id."""
        changed = (
            entered_between(segment_id, version - 1, version)
            if entered
            else exited_between(segment_id, version - 1, version)
        ).subquery()
        query = select(changed.c.member_id)
        if page.after is not None:
            query = query.where(changed.c.member_id > page.after)
        rows = await self.session.scalars(query.order_by(changed.c.member_id).limit(page.limit + 1))
        return list(rows.all())

    # --- Previews ---------------------------------------------------------------------------

    async def count_and_first(self, live: MemberIds, size: int) -> tuple[int, list[uuid.UUID]]:
        """How many members `live` holds and the first `size` by id, from one evaluation of
        the rule (a CTE read twice). Asked apart, with the LIMIT in view, PostgreSQL may walk
        members and journal in id order hoping to stop early, and read every journal row when
        few members match."""
        members = live.cte("live").prefix_with("MATERIALIZED", dialect="postgresql")
        first = select(members.c.member_id).order_by(members.c.member_id).limit(size).subquery()
        row = (
            await self.session.execute(
                select(
                    select(func.count()).select_from(members).scalar_subquery(),
                    select(func.array_agg(first.c.member_id)).scalar_subquery(),
                )
            )
        ).one()
        return int(row[0]), list(row[1] or [])

    async def rows_of(
        self, brand_id: uuid.UUID, member_ids: Sequence[uuid.UUID], columns: Sequence[Any]
    ) -> list[Any]:
        if not member_ids:
            return []
        rows = await self.session.execute(
            select(*columns)
            .where(MemberView.brand_id == brand_id, MemberView.member_id.in_(member_ids))
            .order_by(MemberView.member_id)
        )
        return list(rows.all())
