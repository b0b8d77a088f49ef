"""All SQL of the member 360: the journal, erasures, and the refresh that computes 360 rows
from the journal.

`refresh_members` is the one definition of every 360 column that events feed: the consumer
calls it for the members a batch touched, a rebuild for every member of a brand, the scoring
job to move the windows (spend over the last N days) on. The statement reads only the journal,
so the same journal gives the same rows whichever way they were reached.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, Text, bindparam, delete, select, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID, insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.marketing.audience.journal import JournalRow
from services.marketing.models import (
    ACTIVE_KINDS,
    ErasedMember,
    JournalEntry,
    MemberView,
    Segment,
    SegmentMembership,
)

# One pass over the members' journal rows. Profile, consents, points balances and tier are each
# the last row of their kind (by time, then arrival); the rest are aggregates. Spend is net of
# returns; the windows count back from :now.
_REFRESH = text(
    """
WITH j AS (
    SELECT * FROM marketing.journal
    WHERE brand_id = :brand_id AND member_id = ANY(:member_ids)
),
profile AS (
    SELECT DISTINCT ON (member_id) member_id, data
    FROM j WHERE kind = 'profile'
    ORDER BY member_id, occurred_at DESC, seq DESC
),
joined AS (
    SELECT member_id, min(occurred_at) AS joined_at
    FROM j WHERE kind = 'profile' AND ref = 'created' GROUP BY member_id
),
consent AS (
    SELECT member_id, array_agg(ref ORDER BY ref) FILTER (WHERE points = 1) AS granted
    FROM (
        SELECT DISTINCT ON (member_id, ref) member_id, ref, points
        FROM j WHERE kind = 'consent'
        ORDER BY member_id, ref, occurred_at DESC, seq DESC
    ) last_consent
    GROUP BY member_id
),
balance AS (
    SELECT DISTINCT ON (member_id) member_id,
        (data ->> 'available')::bigint AS available, (data ->> 'pending')::bigint AS pending
    FROM j WHERE kind = 'points'
    ORDER BY member_id, occurred_at DESC, seq DESC
),
tier AS (
    SELECT DISTINCT ON (member_id) member_id, ref::uuid AS tier_id, category AS tier,
        occurred_at AS tier_since
    FROM j WHERE kind = 'tier'
    ORDER BY member_id, occurred_at DESC, seq DESC
),
bought AS (
    SELECT j.member_id, array_agg(DISTINCT c.name ORDER BY c.name) AS categories
    FROM j, unnest(j.categories) AS c(name)
    WHERE j.kind = 'purchase' GROUP BY j.member_id
),
facts AS (
    SELECT member_id,
        coalesce(sum(CASE kind WHEN 'purchase' THEN amount_minor
                               WHEN 'return' THEN -amount_minor END), 0) AS spend_lifetime,
        coalesce(sum(CASE kind WHEN 'purchase' THEN amount_minor
                               WHEN 'return' THEN -amount_minor END)
                 FILTER (WHERE occurred_at >= date_trunc('year', :now AT TIME ZONE 'UTC')
                                               AT TIME ZONE 'UTC'), 0) AS spend_year,
        coalesce(sum(CASE kind WHEN 'purchase' THEN amount_minor
                               WHEN 'return' THEN -amount_minor END)
                 FILTER (WHERE occurred_at > :now - interval '30 days'), 0) AS spend_30d,
        coalesce(sum(CASE kind WHEN 'purchase' THEN amount_minor
                               WHEN 'return' THEN -amount_minor END)
                 FILTER (WHERE occurred_at > :now - interval '90 days'), 0) AS spend_90d,
        coalesce(sum(CASE kind WHEN 'purchase' THEN amount_minor
                               WHEN 'return' THEN -amount_minor END)
                 FILTER (WHERE occurred_at > :now - interval '365 days'), 0) AS spend_365d,
        count(*) FILTER (WHERE kind = 'purchase') AS order_count,
        min(occurred_at) FILTER (WHERE kind = 'purchase') AS first_purchase_at,
        max(occurred_at) FILTER (WHERE kind = 'purchase') AS last_purchase_at,
        coalesce(sum(points) FILTER (WHERE kind = 'points' AND category = 'earn'), 0)
            AS points_lifetime,
        count(*) FILTER (WHERE kind = 'redemption')
            - count(*) FILTER (WHERE kind = 'redemption_cancelled') AS redemptions,
        count(*) FILTER (WHERE kind = 'post') AS posts,
        count(*) FILTER (WHERE kind = 'comment') AS comments,
        count(*) FILTER (WHERE kind = 'reaction')
            - count(*) FILTER (WHERE kind = 'reaction_removed') AS reactions,
        count(*) FILTER (WHERE kind = 'answer') AS prompts_answered,
        count(DISTINCT ref) FILTER (WHERE kind = 'check_in') AS experiences_attended,
        max(occurred_at) FILTER (WHERE kind = ANY(:active)) AS last_active_at
    FROM j GROUP BY member_id
)
INSERT INTO marketing.members AS m (
    brand_id, member_id, external_id, email, display_name, locale, time_zone, birthday,
    status, traits, interests, consents, joined_at, tier_id, tier, tier_since,
    points_available, points_pending, points_lifetime, spend_lifetime_minor, spend_year_minor,
    spend_30d_minor, spend_90d_minor, spend_365d_minor, order_count, first_purchase_at,
    last_purchase_at, categories_bought, redemptions, posts, comments, reactions,
    prompts_answered, experiences_attended, last_active_at, refreshed_at
)
SELECT :brand_id, f.member_id,
    p.data ->> 'external_id', p.data ->> 'email', p.data ->> 'display_name',
    p.data ->> 'locale', p.data ->> 'time_zone', p.data ->> 'birthday', p.data ->> 'status',
    coalesce(p.data -> 'traits', '{}'::jsonb),
    coalesce(ARRAY(SELECT jsonb_array_elements_text(p.data -> 'interests')), '{}'),
    coalesce(c.granted, '{}'), jn.joined_at, t.tier_id, t.tier, t.tier_since,
    coalesce(b.available, 0), coalesce(b.pending, 0), f.points_lifetime,
    f.spend_lifetime, f.spend_year, f.spend_30d, f.spend_90d, f.spend_365d,
    f.order_count, f.first_purchase_at, f.last_purchase_at, coalesce(bo.categories, '{}'),
    f.redemptions, f.posts, f.comments, f.reactions, f.prompts_answered,
    f.experiences_attended, f.last_active_at, :now
FROM facts f
LEFT JOIN profile p USING (member_id)
LEFT JOIN joined jn USING (member_id)
LEFT JOIN consent c USING (member_id)
LEFT JOIN balance b USING (member_id)
LEFT JOIN tier t USING (member_id)
LEFT JOIN bought bo USING (member_id)
ON CONFLICT (brand_id, member_id) DO UPDATE SET
    external_id = excluded.external_id, email = excluded.email,
    display_name = excluded.display_name, locale = excluded.locale,
    time_zone = excluded.time_zone, birthday = excluded.birthday, status = excluded.status,
    traits = excluded.traits, interests = excluded.interests, consents = excluded.consents,
    joined_at = excluded.joined_at, tier_id = excluded.tier_id, tier = excluded.tier,
    tier_since = excluded.tier_since, points_available = excluded.points_available,
    points_pending = excluded.points_pending, points_lifetime = excluded.points_lifetime,
    spend_lifetime_minor = excluded.spend_lifetime_minor,
    spend_year_minor = excluded.spend_year_minor, spend_30d_minor = excluded.spend_30d_minor,
    spend_90d_minor = excluded.spend_90d_minor, spend_365d_minor = excluded.spend_365d_minor,
    order_count = excluded.order_count, first_purchase_at = excluded.first_purchase_at,
    last_purchase_at = excluded.last_purchase_at,
    categories_bought = excluded.categories_bought, redemptions = excluded.redemptions,
    posts = excluded.posts, comments = excluded.comments, reactions = excluded.reactions,
    prompts_answered = excluded.prompts_answered,
    experiences_attended = excluded.experiences_attended,
    last_active_at = excluded.last_active_at, refreshed_at = excluded.refreshed_at
"""
).bindparams(
    bindparam("member_ids", type_=ARRAY(UUID(as_uuid=True))),
    bindparam("active", value=sorted(kind.value for kind in ACTIVE_KINDS), type_=ARRAY(Text)),
)


class AudienceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def erased_among(
        self, brand_ids: Sequence[uuid.UUID], member_ids: Sequence[uuid.UUID]
    ) -> set[tuple[uuid.UUID, uuid.UUID]]:
        if not member_ids:
            return set()
        rows = await self.session.execute(
            select(ErasedMember.brand_id, ErasedMember.member_id).where(
                ErasedMember.brand_id.in_(set(brand_ids)),
                ErasedMember.member_id.in_(set(member_ids)),
            )
        )
        return {(brand_id, member_id) for brand_id, member_id in rows}

    async def add_journal(self, rows: Sequence[JournalRow]) -> None:
        if not rows:
            return
        values = [
            {
                "event_id": row.event_id,
                "brand_id": row.brand_id,
                "member_id": row.member_id,
                "kind": row.kind,
                "occurred_at": row.occurred_at,
                "amount_minor": row.amount_minor,
                "points": row.points,
                "category": row.category,
                "categories": row.categories,
                "ref": row.ref,
                "data": row.data,
            }
            for row in rows
        ]
        statement = insert(JournalEntry).on_conflict_do_nothing(index_elements=["event_id"])
        await self.session.execute(statement, values)

    async def erase(self, brand_id: uuid.UUID, member_id: uuid.UUID, erased_at: datetime) -> None:
        """Forget everything about the member; remember only that they were erased, so their
        late events are dropped. Segment stays keep the bare id, so the next version still
        reports the exit."""
        await self.session.execute(
            insert(ErasedMember)
            .values(brand_id=brand_id, member_id=member_id, erased_at=erased_at)
            .on_conflict_do_nothing()
        )
        await self.session.execute(
            delete(JournalEntry).where(
                JournalEntry.brand_id == brand_id, JournalEntry.member_id == member_id
            )
        )
        await self.session.execute(
            delete(MemberView).where(
                MemberView.brand_id == brand_id, MemberView.member_id == member_id
            )
        )

    async def refresh_members(
        self, brand_id: uuid.UUID, member_ids: Sequence[uuid.UUID], now: datetime
    ) -> None:
        if member_ids:
            await self.session.execute(
                _REFRESH, {"brand_id": brand_id, "member_ids": list(member_ids), "now": now}
            )

    def journal_members(self, brand_id: uuid.UUID) -> Select[uuid.UUID]:
        return (
            select(JournalEntry.member_id)
            .where(JournalEntry.brand_id == brand_id)
            .group_by(JournalEntry.member_id)
            .order_by(JournalEntry.member_id)
        )

    async def member_ids_after(
        self, brand_id: uuid.UUID, after: uuid.UUID | None, limit: int
    ) -> list[uuid.UUID]:
        """The brand's members known to the journal, in id order, a page at a time."""
        query = self.journal_members(brand_id).limit(limit)
        if after is not None:
            query = query.where(JournalEntry.member_id > after)
        return list((await self.session.scalars(query)).all())

    async def drop_members_without_journal(self, brand_id: uuid.UUID) -> None:
        await self.session.execute(
            delete(MemberView).where(
                MemberView.brand_id == brand_id,
                ~select(JournalEntry.event_id)
                .where(
                    JournalEntry.brand_id == MemberView.brand_id,
                    JournalEntry.member_id == MemberView.member_id,
                )
                .exists(),
            )
        )

    async def get(self, brand_id: uuid.UUID, member_id: uuid.UUID) -> MemberView | None:
        return await self.session.get(MemberView, (brand_id, member_id))

    async def tier_history(self, brand_id: uuid.UUID, member_id: uuid.UUID) -> list[JournalEntry]:
        rows = await self.session.scalars(
            select(JournalEntry)
            .where(
                JournalEntry.brand_id == brand_id,
                JournalEntry.member_id == member_id,
                JournalEntry.kind == "tier",
            )
            .order_by(JournalEntry.occurred_at, JournalEntry.seq)
        )
        return list(rows.all())

    async def open_segments_of(self, brand_id: uuid.UUID, member_id: uuid.UUID) -> list[uuid.UUID]:
        """The segments the member is in at their last version."""
        rows = await self.session.scalars(
            select(SegmentMembership.segment_id)
            .join(Segment, Segment.id == SegmentMembership.segment_id)
            .where(
                Segment.brand_id == brand_id,
                Segment.deleted_at.is_(None),
                SegmentMembership.member_id == member_id,
                SegmentMembership.exited_version.is_(None),
            )
        )
        return list(rows.all())
