"""All SQL of the scores: the RFM quintiles (one statement per brand), the churn features of a
page of members as of any instant (from marketing's journal alone), the probabilities written
back, and the brand's churn models.

The features are defined once, in `_FEATURES`, for any instant `:at`: training reads them as of
a past cutoff (with the outcome after it), scoring as of now. One definition, so the model sees
at scoring time exactly what it learned from.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Float, Text, TextClause, bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from services.marketing.models import (
    ACTIVE_KINDS,
    ActivityKind,
    ChurnModel,
    JournalEntry,
    MemberView,
    RefusalReason,
    TrainingStatus,
)

# The RFM quintiles of every member of a brand, in one statement. A buyer's quintile is where
# their value sits between the lowest buyer's (0) and the highest's (1), in fifths:
# 1 + floor(5 * (rank - 1) / (buyers - 1)), 5 at the top. `rank()` gives equal values the rank
# of their lowest position, so ties never straddle a boundary (`ntile` cuts a tie wherever its
# bucket sizes fall: equal members would differ); distinct values spread evenly over the five;
# the lowest buyer is always 1 and the highest distinct value always 5. A large tie takes the
# quintile of its lowest position: if 60% of buyers have one order, all of them are frequency 1
# and the next value up starts at 4. A lone buyer, or buyers all equal, are 1. Recency compares
# the UTC day of the last purchase (5 = most recent), so members who last bought the same day
# tie; frequency is `order_count`, monetary the lifetime spend net of returns (both lifetime,
# so F and M describe the same orders; recency is what says a big spender has lapsed). Members
# who never bought are 1 on all three, below every buyer; `order_count = 0` tells them apart.
_RFM = text(
    """
WITH facts AS (
    SELECT member_id, order_count, spend_lifetime_minor,
        last_purchase_at IS NOT NULL AS buyer,
        (last_purchase_at AT TIME ZONE 'UTC')::date AS last_day
    FROM marketing.members WHERE brand_id = :brand_id
),
ranked AS (
    SELECT member_id, buyer,
        count(*) OVER (PARTITION BY buyer) AS n,
        rank() OVER (PARTITION BY buyer ORDER BY last_day) AS r,
        rank() OVER (PARTITION BY buyer ORDER BY order_count) AS f,
        rank() OVER (PARTITION BY buyer ORDER BY spend_lifetime_minor) AS m
    FROM facts
)
UPDATE marketing.members AS mv
SET rfm_recency = CASE WHEN s.buyer AND s.n > 1
                       THEN least(5, 1 + 5 * (s.r - 1) / (s.n - 1)) ELSE 1 END,
    rfm_frequency = CASE WHEN s.buyer AND s.n > 1
                         THEN least(5, 1 + 5 * (s.f - 1) / (s.n - 1)) ELSE 1 END,
    rfm_monetary = CASE WHEN s.buyer AND s.n > 1
                        THEN least(5, 1 + 5 * (s.m - 1) / (s.n - 1)) ELSE 1 END,
    scored_at = :now
FROM ranked s
WHERE mv.brand_id = :brand_id AND mv.member_id = s.member_id
"""
)

# What a member does in the community (the churn model counts it over 90 days).
_COMMUNITY_KINDS = sorted(
    kind.value
    for kind in (
        ActivityKind.POST,
        ActivityKind.COMMENT,
        ActivityKind.REACTION,
        ActivityKind.ANSWER,
        ActivityKind.BOOKING,
        ActivityKind.CHECK_IN,
        ActivityKind.REVIEW,
    )
)

# The churn model's inputs, in the order `_FEATURES` selects them. Days are fractional days
# before `:at`; spend is net of returns, in minor units. A member who never bought has no
# `days_since_purchase` and no `mean_gap_days` (null: the model treats it as missing).
FEATURES: tuple[str, ...] = (
    "days_since_purchase",
    "days_since_active",
    "tenure_days",
    "orders_30d",
    "orders_90d",
    "orders_365d",
    "orders_lifetime",
    "mean_gap_days",
    "spend_90d",
    "spend_365d",
    "spend_lifetime",
    "redemptions_365d",
    "community_90d",
    "points_available",
)

# Everything is read from the journal rows at or before :at, so the same statement describes a
# member at a past cutoff as at now. Only members with a row by :at are returned (a member who
# joined later did not exist then). Windows are (at - N days, at], as the 360's spend windows.
_FEATURES_SQL = """
WITH j AS (
    SELECT member_id, kind, occurred_at, seq, amount_minor, ref, data,
        extract(epoch FROM (:at - occurred_at))::float8 / 86400 AS age,
        CASE kind WHEN 'purchase' THEN amount_minor WHEN 'return' THEN -amount_minor END AS net
    FROM marketing.journal
    WHERE brand_id = :brand_id AND member_id = ANY(:member_ids) AND occurred_at <= :at
)
SELECT member_id,
    min(age) FILTER (WHERE kind = 'purchase') AS days_since_purchase,
    min(age) FILTER (WHERE kind = ANY(:active)) AS days_since_active,
    coalesce(max(age) FILTER (WHERE kind = 'profile' AND ref = 'created'), max(age))
        AS tenure_days,
    count(*) FILTER (WHERE kind = 'purchase' AND age < 30)::float8 AS orders_30d,
    count(*) FILTER (WHERE kind = 'purchase' AND age < 90)::float8 AS orders_90d,
    count(*) FILTER (WHERE kind = 'purchase' AND age < 365)::float8 AS orders_365d,
    count(*) FILTER (WHERE kind = 'purchase')::float8 AS orders_lifetime,
    (max(age) FILTER (WHERE kind = 'purchase') - min(age) FILTER (WHERE kind = 'purchase'))
        / nullif(count(*) FILTER (WHERE kind = 'purchase') - 1, 0) AS mean_gap_days,
    coalesce(sum(net) FILTER (WHERE age < 90), 0)::float8 AS spend_90d,
    coalesce(sum(net) FILTER (WHERE age < 365), 0)::float8 AS spend_365d,
    coalesce(sum(net), 0)::float8 AS spend_lifetime,
    (count(*) FILTER (WHERE kind = 'redemption' AND age < 365)
        - count(*) FILTER (WHERE kind = 'redemption_cancelled' AND age < 365))::float8
        AS redemptions_365d,
    count(*) FILTER (WHERE kind = ANY(:community) AND age < 90)::float8 AS community_90d,
    coalesce((array_agg((data ->> 'available')::bigint ORDER BY occurred_at DESC, seq DESC)
              FILTER (WHERE kind = 'points'))[1], 0)::float8 AS points_available
    {outcome}
FROM j GROUP BY member_id
ORDER BY member_id
"""

# Training's label: did the member buy in (:at, :until]? An index range on ix_journal_member.
_OUTCOME = """,
    EXISTS (
        SELECT 1 FROM marketing.journal later
        WHERE later.brand_id = :brand_id AND later.member_id = j.member_id
          AND later.kind = 'purchase' AND later.occurred_at > :at AND later.occurred_at <= :until
    ) AS bought_after"""


def _features_statement(*, outcome: bool) -> TextClause:
    statement = text(_FEATURES_SQL.format(outcome=_OUTCOME if outcome else ""))
    return statement.bindparams(
        bindparam("member_ids", type_=ARRAY(UUID(as_uuid=True))),
        bindparam("active", value=sorted(k.value for k in ACTIVE_KINDS), type_=ARRAY(Text)),
        bindparam("community", value=_COMMUNITY_KINDS, type_=ARRAY(Text)),
    )


_FEATURES_NOW = _features_statement(outcome=False)
_FEATURES_WITH_OUTCOME = _features_statement(outcome=True)

_WRITE_PROBABILITIES = text(
    """
UPDATE marketing.members AS m SET churn_probability = s.probability, scored_at = :now
FROM unnest(:member_ids, :probabilities) AS s(member_id, probability)
WHERE m.brand_id = :brand_id AND m.member_id = s.member_id
"""
).bindparams(
    bindparam("member_ids", type_=ARRAY(UUID(as_uuid=True))),
    bindparam("probabilities", type_=ARRAY(Float)),
)

FeatureRow = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class ChurnModelSummary:
    """A churn model row without its artifact (the list never loads the bytes)."""

    id: uuid.UUID
    trained_at: datetime
    status: TrainingStatus
    reason: RefusalReason | None
    detail: str | None
    horizon_days: int
    features: list[str]
    metrics: dict[str, Any]
    train_members: int
    test_members: int
    artifact_bytes: int


class ScoresRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- RFM ------------------------------------------------------------------------------

    async def write_rfm(self, brand_id: uuid.UUID, now: datetime) -> None:
        await self.session.execute(_RFM, {"brand_id": brand_id, "now": now})

    # --- Members, a page at a time ----------------------------------------------------------

    async def member_ids_after(
        self, brand_id: uuid.UUID, after: uuid.UUID | None, limit: int
    ) -> list[uuid.UUID]:
        """The brand's members in the 360, in id order (its primary key), a page at a time."""
        query = (
            select(MemberView.member_id)
            .where(MemberView.brand_id == brand_id)
            .order_by(MemberView.member_id)
            .limit(limit)
        )
        if after is not None:
            query = query.where(MemberView.member_id > after)
        return list((await self.session.scalars(query)).all())

    async def member_count(self, brand_id: uuid.UUID) -> int:
        count = await self.session.scalar(
            select(func.count()).select_from(MemberView).where(MemberView.brand_id == brand_id)
        )
        return int(count or 0)

    async def brands_with_members(self) -> list[uuid.UUID]:
        rows = await self.session.scalars(
            select(MemberView.brand_id).distinct().order_by(MemberView.brand_id)
        )
        return list(rows.all())

    async def history_starts(self, brand_id: uuid.UUID) -> datetime | None:
        """The brand's earliest member or purchase event: two index lookups (ix_journal_kind),
        not a scan, so a refusal for too short a history costs nothing."""
        earliest = [
            select(func.min(JournalEntry.occurred_at))
            .where(JournalEntry.brand_id == brand_id, JournalEntry.kind == kind)
            .scalar_subquery()
            for kind in (ActivityKind.PROFILE, ActivityKind.PURCHASE)
        ]
        return await self.session.scalar(select(func.least(*earliest)))

    # --- Features ---------------------------------------------------------------------------

    async def features(
        self, brand_id: uuid.UUID, member_ids: Sequence[uuid.UUID], at: datetime
    ) -> list[FeatureRow]:
        """(member_id, *FEATURES) of those members as of `at`, in id order."""
        if not member_ids:
            return []
        rows = await self.session.execute(
            _FEATURES_NOW, {"brand_id": brand_id, "member_ids": list(member_ids), "at": at}
        )
        return [tuple(row) for row in rows]

    async def features_with_outcome(
        self, brand_id: uuid.UUID, member_ids: Sequence[uuid.UUID], at: datetime, until: datetime
    ) -> list[FeatureRow]:
        """(member_id, *FEATURES, bought_after) as of `at`, bought_after over (at, until]."""
        if not member_ids:
            return []
        rows = await self.session.execute(
            _FEATURES_WITH_OUTCOME,
            {"brand_id": brand_id, "member_ids": list(member_ids), "at": at, "until": until},
        )
        return [tuple(row) for row in rows]

    async def write_probabilities(
        self,
        brand_id: uuid.UUID,
        member_ids: Sequence[uuid.UUID],
        probabilities: Sequence[float],
        now: datetime,
    ) -> None:
        if member_ids:
            await self.session.execute(
                _WRITE_PROBABILITIES,
                {
                    "brand_id": brand_id,
                    "member_ids": list(member_ids),
                    "probabilities": list(probabilities),
                    "now": now,
                },
            )

    # --- Churn models -----------------------------------------------------------------------

    async def add_model(self, model: ChurnModel) -> None:
        self.session.add(model)
        await self.session.flush()

    async def has_models(self, brand_id: uuid.UUID) -> bool:
        found = await self.session.scalar(
            select(ChurnModel.id).where(ChurnModel.brand_id == brand_id).limit(1)
        )
        return found is not None

    async def latest_trained(
        self, brand_id: uuid.UUID, features: Sequence[str]
    ) -> ChurnModel | None:
        """The newest model that was fitted on these features and still has its artifact (a
        model of an older feature set cannot score today's rows)."""
        return await self.session.scalar(
            select(ChurnModel)
            .where(
                ChurnModel.brand_id == brand_id,
                ChurnModel.status == TrainingStatus.TRAINED,
                ChurnModel.features == list(features),
                ChurnModel.artifact.is_not(None),
            )
            .order_by(ChurnModel.trained_at.desc(), ChurnModel.id.desc())
            .limit(1)
        )

    async def list_models(self, brand_id: uuid.UUID, limit: int) -> list[ChurnModelSummary]:
        rows = await self.session.execute(
            select(
                ChurnModel.id,
                ChurnModel.trained_at,
                ChurnModel.status,
                ChurnModel.reason,
                ChurnModel.detail,
                ChurnModel.horizon_days,
                ChurnModel.features,
                ChurnModel.metrics,
                ChurnModel.train_members,
                ChurnModel.test_members,
                func.coalesce(func.length(ChurnModel.artifact), 0),
            )
            .where(ChurnModel.brand_id == brand_id)
            .order_by(ChurnModel.trained_at.desc(), ChurnModel.id.desc())
            .limit(limit)
        )
        return [ChurnModelSummary(*row) for row in rows]

    async def drop_old_artifacts(self, brand_id: uuid.UUID, keep: int) -> None:
        """Empty the artifacts of all but the `keep` newest models: their quality stays listed,
        the bytes (never used again) go."""
        newest = (
            select(ChurnModel.id)
            .where(ChurnModel.brand_id == brand_id, ChurnModel.artifact.is_not(None))
            .order_by(ChurnModel.trained_at.desc(), ChurnModel.id.desc())
            .limit(keep)
        )
        await self.session.execute(
            update(ChurnModel)
            .where(
                ChurnModel.brand_id == brand_id,
                ChurnModel.artifact.is_not(None),
                ChurnModel.id.not_in(newest),
            )
            .values(artifact=None)
        )
