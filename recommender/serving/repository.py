"""All SQL of serving, feedback and experiments. Every query filters by brand.

The request path costs two statements, `ServedLists.candidates` (the member, their list, the live
rules and the exploration candidates in one query) and `ServedLists.add_exposure`, on a
connection of the driver's (`Database.driver`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from recommender.serving.exploration import Candidate
from recommender.store.models import (
    Experiment,
    Exposure,
    Interaction,
    InteractionKind,
    ItemStats,
    MemberFacts,
    ModelVersion,
)

# One statement for the whole list. `m`: the member's tier and consent (no row: an unknown member,
# served like one without a tier). `r`: the list to serve, the member's own when `personal` ($5)
# and they consented, else the brand's for their tier, else the brand's for members without a
# tier: three lookups by primary key, the first found wins. Its items are unnested side by side
# with their rank, score and reason (a list's reasons are stored compressed: subscripting the
# array item by item decompressed it for every item). `mine`: what the member dismissed and what
# they hold redeemed (net of cancellations: a cancelled redemption is a negative-weight row), as
# two arrays in one row, read once. Each item is looked up by itself (`_ELIGIBLE_ITEM`) and kept
# when it passes the live rules. A perk the member holds is not offered again whatever its
# per-member limit: limits are at least 1.
#
# Only the first $8 of the model's items that pass come back (enough to fill a list and re-order
# it for variety), and only as many are looked up as it takes to find them: the lookups run
# item by item in the list's order (a nested loop over `unnest ... WITH ORDINALITY`, the only
# way a lateral lookup can be joined) and the LIMIT stops them, where evaluating every item of the
# list first (a CTE both branches read, then sorted) cost 0.44 against 0.34 ms of PostgreSQL's
# CPU a list (60 items, 30 asked). The exploration candidates ($6, rank NULL) are looked up the
# same way.
#
# The prepared statement must settle on one generic plan: planning it anew for every request
# costs more than running it. PostgreSQL sizes `unnest` of a constant array by its length, so a
# custom plan for a request without candidates (most requests: no place explored) looked cheaper
# than the generic one and was made every time (PostgreSQL 15: 2.1 against 1.0 ms a request). The
# candidates therefore come through a subquery that is never flattened (OFFSET 0), where the array
# is a column whose length no plan can see, and every plan is sized alike. The lookup is a
# subquery that is never folded into a join (OFFSET 0): a connection keeps the generic plan it
# settled on for its life, and written as a join, the statement was planned, while the tables had
# no statistics yet (a new database, one autovacuum had not reached), to scan every list of the
# surface and join every item of its kinds against the list: 7 against 0.3 ms a list on the demo
# brand. The kinds are checked outside the lookup, so that the only index its conditions match in
# full is the primary key.
#
# Run on the driver (asyncpg, a prepared statement per connection): the request path's CPU is the
# budget, and SQLAlchemy's execution and result rows cost more than the query itself.
_ELIGIBLE_ITEM = """
        SELECT i.item_id, i.kind, i.title, i.category
        FROM recommender.items i
        WHERE i.brand_id = $1 AND i.item_id = {item_id}
          AND i.active
          AND (i.valid_from IS NULL OR i.valid_from <= $7)
          AND (i.valid_until IS NULL OR i.valid_until > $7)
          AND (i.stock IS NULL OR i.stock > 0)
          AND (cardinality(i.tier_ids) = 0 OR (SELECT tier_id FROM m) = ANY(i.tier_ids))
          AND (i.author_id IS NULL OR i.author_id <> $2)
          AND (i.kind <> 'experience' OR EXISTS (
                SELECT 1 FROM recommender.sessions s
                WHERE s.brand_id = $1 AND s.item_id = i.item_id
                  AND NOT s.cancelled AND s.starts_at > $7
                  AND (s.capacity IS NULL OR s.booked < s.capacity)))
          AND NOT i.item_id = ANY(CAST((SELECT dismissed FROM mine) AS text[]))
          AND (i.kind <> 'perk' OR NOT i.item_id = ANY(CAST((SELECT redeemed FROM mine) AS text[])))
        OFFSET 0
"""

# Only the constant lookup is formatted in; every value is a parameter.
_CANDIDATES = f"""
WITH m AS (
    SELECT tier_id, personalised
    FROM recommender.members
    WHERE member_id = $2 AND brand_id = $1 AND NOT erased
), r AS (
    SELECT found.version_id, found.item_ids, found.scores, found.reasons
    FROM (
        SELECT 1 AS choice, rec.version_id, rec.item_ids, rec.scores, rec.reasons
        FROM recommender.recommendations rec
        WHERE rec.brand_id = $1 AND rec.member_id = $2 AND rec.surface = $3
          AND rec.segment = '' AND $5 AND coalesce((SELECT personalised FROM m), false)
        UNION ALL
        SELECT 2, rec.version_id, rec.item_ids, rec.scores, rec.reasons
        FROM recommender.recommendations rec
        WHERE rec.brand_id = $1 AND rec.member_id = '00000000-0000-0000-0000-000000000000'
          AND rec.surface = $3 AND rec.segment = coalesce((SELECT tier_id::text FROM m), '')
        UNION ALL
        SELECT 3, rec.version_id, rec.item_ids, rec.scores, rec.reasons
        FROM recommender.recommendations rec
        WHERE rec.brand_id = $1 AND rec.member_id = '00000000-0000-0000-0000-000000000000'
          AND rec.surface = $3 AND rec.segment = ''
    ) AS found
    ORDER BY found.choice
    LIMIT 1
), mine AS (
    SELECT coalesce(array_agg(g.item_id) FILTER (WHERE g.dismissed), '{{}}') AS dismissed,
           coalesce(array_agg(g.item_id) FILTER (WHERE g.redeemed >= 1), '{{}}') AS redeemed
    FROM (
        SELECT x.item_id,
               bool_or(x.kind = 'dismiss') AS dismissed,
               sum(CASE WHEN x.kind = 'redemption' THEN sign(x.weight) ELSE 0 END) AS redeemed
        FROM recommender.interactions x
        WHERE x.brand_id = $1 AND x.member_id = $2 AND x.kind IN ('dismiss', 'redemption')
        GROUP BY x.item_id
    ) AS g
)
SELECT (SELECT version_id FROM r) AS version_id, e.*
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
    (SELECT u.ord::int AS ord, i.item_id, i.kind, i.title, i.category, u.score, u.reason
     FROM r CROSS JOIN LATERAL unnest(r.item_ids, r.scores, r.reasons)
         WITH ORDINALITY AS u(item_id, score, reason, ord)
     CROSS JOIN LATERAL ({_ELIGIBLE_ITEM.format(item_id="u.item_id")}) AS i
     WHERE i.kind = ANY($4::text[])
     LIMIT $8)
    UNION ALL
    (SELECT NULL, i.item_id, i.kind, i.title, i.category, NULL, NULL
     FROM (SELECT $6::text[] AS ids OFFSET 0) AS given
     CROSS JOIN LATERAL unnest(given.ids) AS p(item_id)
     CROSS JOIN LATERAL ({_ELIGIBLE_ITEM.format(item_id="p.item_id")}) AS i
     WHERE i.kind = ANY($4::text[]))
) e ON true
ORDER BY e.ord NULLS LAST
"""  # noqa: S608

_ADD_EXPOSURE = """
INSERT INTO recommender.exposures
    (id, brand_id, member_id, surface, version_id, arm, item_ids, propensities, explored,
     served_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
"""

# The same insert when it is a transaction of its own, committed without waiting for the WAL to
# reach the disk (`synchronous_commit` off for this transaction only: the subquery's
# `set_config(..., true)` lasts until its commit). An exposure is the server's record of a list
# it showed, not something a member or staff sent: on a database crash the last fraction of a
# second of them may be lost (PostgreSQL writes them out within `wal_writer_delay` x 3), never
# half of one, and the lists were served all the same. Waiting for the flush was most of a
# list's latency and its slowest tail: the flushes of 500 lists a second queued behind each
# other (on the serving benchmark, p99 22 ms with it, 10 ms without any exposure written).
_ADD_EXPOSURE_ALONE = """
INSERT INTO recommender.exposures
    (id, brand_id, member_id, surface, version_id, arm, item_ids, propensities, explored,
     served_at)
SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10
FROM (SELECT set_config('synchronous_commit', 'off', true)) AS without_waiting_for_the_flush
"""


# Items with little data that a list of these kinds could explore, least shown first. Only the
# rules that hold for every member are checked here; the request checks them all again.
_POOL = text(
    """
SELECT i.item_id, coalesce(s.shown, 0) AS shown, coalesce(s.taken, 0) AS taken
FROM recommender.items i
LEFT JOIN recommender.item_stats s ON s.brand_id = i.brand_id AND s.item_id = i.item_id
WHERE i.brand_id = :brand_id AND i.active AND i.kind = ANY(CAST(:kinds AS text[]))
  AND coalesce(s.shown, 0) < :threshold
  AND (i.valid_from IS NULL OR i.valid_from <= :now)
  AND (i.valid_until IS NULL OR i.valid_until > :now)
  AND (i.stock IS NULL OR i.stock > 0)
  AND (i.kind <> 'experience' OR EXISTS (
        SELECT 1 FROM recommender.sessions x
        WHERE x.brand_id = i.brand_id AND x.item_id = i.item_id
          AND NOT x.cancelled AND x.starts_at > :now
          AND (x.capacity IS NULL OR x.booked < x.capacity)))
ORDER BY coalesce(s.shown, 0), i.created_at DESC, i.item_id
LIMIT :size
"""
)

# The items shown by the exposures of an id range, added to their `shown` counts. Exposure ids
# are time-ordered (UUIDv7): the range is a primary-key scan, and consecutive windows that share
# their bound count every exposure exactly once.
_SHOWN = text(
    """
WITH counted AS (
    SELECT e.brand_id, u.item_id, count(*) AS shown
    FROM recommender.exposures e CROSS JOIN LATERAL unnest(e.item_ids) AS u(item_id)
    WHERE e.id >= :low AND e.id < :high
    GROUP BY e.brand_id, u.item_id
), upserted AS (
    INSERT INTO recommender.item_stats AS s (brand_id, item_id, shown)
    SELECT brand_id, item_id, shown FROM counted
    ON CONFLICT (brand_id, item_id) DO UPDATE SET shown = s.shown + EXCLUDED.shown
    RETURNING 1
)
SELECT (SELECT count(*) FROM upserted) AS items,
       (SELECT count(*) FROM recommender.exposures e WHERE e.id >= :low AND e.id < :high)
           AS exposures
"""
)


@dataclass(slots=True)  # not frozen: made for every row of every request, and cheaper so
class CandidateRow:
    rank: int | None  # the place in the stored list; None for an exploration candidate
    item_id: str
    kind: str
    title: str
    category: str | None
    score: float
    reason: str


@dataclass(frozen=True, slots=True)
class Candidates:
    version_id: uuid.UUID | None
    rows: list[CandidateRow]


@dataclass(frozen=True, slots=True)
class NewExposure:
    """An `Exposure` row to write (a plain record: the hot path skips the ORM)."""

    id: uuid.UUID
    brand_id: uuid.UUID
    member_id: uuid.UUID
    surface: str
    version_id: uuid.UUID | None
    arm: str
    item_ids: list[str]
    propensities: list[float]
    explored: list[bool]
    served_at: datetime

    def values(self) -> tuple[object, ...]:
        """The row's values in the order of the insert's parameters."""
        return (
            self.id,
            self.brand_id,
            self.member_id,
            self.surface,
            self.version_id,
            self.arm,
            self.item_ids,
            self.propensities,
            self.explored,
            self.served_at,
        )


@dataclass(frozen=True, slots=True)
class ArmCounts:
    members: int
    exposures: int
    items: int
    clicks: int
    dismissals: int
    redemptions: int


class ServedLists:
    """The two statements of serving a list, on a driver connection (`Database.driver`):
    SQLAlchemy's execution and result rows would cost more than the statements."""

    def __init__(self, driver: asyncpg.Connection) -> None:
        self.driver = driver

    async def candidates(
        self,
        brand_id: uuid.UUID,
        member_id: uuid.UUID,
        surface: str,
        kinds: Sequence[str],
        *,
        personal: bool,
        pool: Sequence[str],
        window: int,
        now: datetime,
    ) -> Candidates:
        """The first `window` items of the member's stored list for `surface` that pass the
        live rules, in the stored order, then those of the exploration candidates `pool` that
        pass them."""
        rows = await self.driver.fetch(
            _CANDIDATES,
            brand_id,
            member_id,
            surface,
            list(kinds),
            personal,
            list(pool),
            now,
            window,
        )
        # asyncpg's own UUID type, as a plain one (what the rest of the code and JSON expect).
        version = rows[0][0] if rows else None
        return Candidates(
            version_id=uuid.UUID(bytes=version.bytes) if version is not None else None,
            rows=[
                CandidateRow(
                    rank=row[1],
                    item_id=row[2],
                    kind=row[3],
                    title=row[4],
                    category=row[5],
                    score=row[6] if row[6] is not None else 0.0,
                    reason=row[7] or "",
                )
                for row in rows
                if row[2] is not None
            ],
        )

    async def add_exposure(self, exposure: NewExposure) -> None:
        """Outside a transaction (serving, on a lent connection) the statement commits alone,
        without waiting for the flush (`_ADD_EXPOSURE_ALONE`). Inside one (a test's) it
        commits with the transaction, as the transaction does."""
        statement = _ADD_EXPOSURE if self.driver.is_in_transaction() else _ADD_EXPOSURE_ALONE
        await self.driver.execute(statement, *exposure.values())


class ServingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def exploration_pool(
        self,
        brand_id: uuid.UUID,
        kinds: Sequence[str],
        *,
        threshold: int,
        size: int,
        now: datetime,
    ) -> list[Candidate]:
        result = await self.session.execute(
            _POOL,
            {
                "brand_id": brand_id,
                "kinds": list(kinds),
                "threshold": threshold,
                "size": size,
                "now": now,
            },
        )
        return [Candidate(row.item_id, int(row.shown), int(row.taken)) for row in result]

    async def running_experiment(self, brand_id: uuid.UUID) -> Experiment | None:
        found: Experiment | None = await self.session.scalar(
            select(Experiment).where(Experiment.brand_id == brand_id, Experiment.ended_at.is_(None))
        )
        return found

    # --- feedback ---

    async def exposure(
        self, brand_id: uuid.UUID, exposure_id: uuid.UUID, *, lock: bool = False
    ) -> Exposure | None:
        statement = select(Exposure).where(
            Exposure.id == exposure_id, Exposure.brand_id == brand_id
        )
        if lock:
            statement = statement.with_for_update()
        found: Exposure | None = await self.session.scalar(statement)
        return found

    async def feedback_of(
        self,
        brand_id: uuid.UUID,
        member_id: uuid.UUID,
        exposure_id: uuid.UUID,
        item_id: str,
        kind: InteractionKind,
        served_at: datetime,
    ) -> datetime | None:
        """When this feedback on this item of this list was first recorded, if it was."""
        found: datetime | None = await self.session.scalar(
            select(Interaction.occurred_at)
            .where(
                Interaction.brand_id == brand_id,
                Interaction.member_id == member_id,
                Interaction.occurred_at >= served_at,
                Interaction.exposure_id == exposure_id,
                Interaction.item_id == item_id,
                Interaction.kind == kind,
            )
            .order_by(Interaction.occurred_at)
            .limit(1)
        )
        return found

    async def add_interaction(self, interaction: Interaction) -> None:
        self.session.add(interaction)
        await self.session.flush()

    async def mark_stale(self, brand_id: uuid.UUID, member_id: uuid.UUID, at: datetime) -> None:
        """The member awaits the next fold-in (kept at the earliest time something changed)."""
        await self.session.execute(
            update(MemberFacts)
            .where(
                MemberFacts.member_id == member_id,
                MemberFacts.brand_id == brand_id,
                MemberFacts.stale_since.is_(None),
            )
            .values(stale_since=at)
        )

    async def count_taken(self, brand_id: uuid.UUID, item_id: str) -> None:
        statement = pg_insert(ItemStats).values(brand_id=brand_id, item_id=item_id, taken=1)
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[ItemStats.brand_id, ItemStats.item_id],
                set_={"taken": ItemStats.taken + 1},
            )
        )

    async def count_shown(self, low: uuid.UUID, high: uuid.UUID) -> tuple[int, int]:
        """Adds the items of exposures with ids in [low, high) to `ItemStats.shown`; returns
        (exposures, items updated)."""
        row = (await self.session.execute(_SHOWN, {"low": low, "high": high})).one()
        return int(row.exposures), int(row.items)


class ExperimentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, experiment: Experiment) -> None:
        self.session.add(experiment)
        await self.session.flush()

    async def get(
        self, brand_id: uuid.UUID, experiment_id: uuid.UUID, *, lock: bool = False
    ) -> Experiment | None:
        statement = select(Experiment).where(
            Experiment.id == experiment_id, Experiment.brand_id == brand_id
        )
        if lock:
            statement = statement.with_for_update()
        found: Experiment | None = await self.session.scalar(statement)
        return found

    async def running(self, brand_id: uuid.UUID) -> Experiment | None:
        found: Experiment | None = await self.session.scalar(
            select(Experiment).where(Experiment.brand_id == brand_id, Experiment.ended_at.is_(None))
        )
        return found

    async def page(
        self, brand_id: uuid.UUID, after: uuid.UUID | None, limit: int
    ) -> Sequence[Experiment]:
        """Newest first."""
        statement = select(Experiment).where(Experiment.brand_id == brand_id)
        if after is not None:
            statement = statement.where(Experiment.id < after)
        statement = statement.order_by(Experiment.id.desc()).limit(limit + 1)
        return (await self.session.scalars(statement)).all()

    async def versions_of(
        self, brand_id: uuid.UUID, version_ids: Sequence[uuid.UUID]
    ) -> set[uuid.UUID]:
        """Which of `version_ids` are this brand's model versions."""
        if not version_ids:
            return set()
        found = await self.session.scalars(
            select(ModelVersion.id).where(
                ModelVersion.brand_id == brand_id, ModelVersion.id.in_(list(version_ids))
            )
        )
        return set(found)

    async def end(self, experiment: Experiment, at: datetime) -> None:
        await self.session.execute(
            update(Experiment).where(Experiment.id == experiment.id).values(ended_at=at)
        )
        experiment.ended_at = at

    async def arm_counts(
        self,
        brand_id: uuid.UUID,
        arms: Sequence[str],
        start: datetime,
        end: datetime,
        attribution: timedelta,
    ) -> dict[str, ArmCounts]:
        """Per arm, over the exposures served in [start, end): distinct members, exposures,
        items shown, distinct (exposure, item) clicks and dismissals, and redemptions of a perk
        the member had been shown in this arm within `attribution` before."""
        served = (
            select(
                Exposure.id,
                Exposure.member_id,
                Exposure.arm,
                Exposure.item_ids,
                Exposure.served_at,
            )
            .where(
                Exposure.brand_id == brand_id,
                Exposure.served_at >= start,
                Exposure.served_at < end,
                Exposure.arm.in_(list(arms)),
            )
            .cte("served")
        )
        counted = (
            await self.session.execute(
                select(
                    served.c.arm,
                    func.count(func.distinct(served.c.member_id)),
                    func.count(),
                    func.coalesce(func.sum(func.cardinality(served.c.item_ids)), 0),
                ).group_by(served.c.arm)
            )
        ).all()
        feedback = (
            await self.session.execute(
                select(
                    served.c.arm,
                    func.count(func.distinct(func.row(served.c.id, Interaction.item_id))).filter(
                        Interaction.kind == InteractionKind.CLICK
                    ),
                    func.count(func.distinct(func.row(served.c.id, Interaction.item_id))).filter(
                        Interaction.kind == InteractionKind.DISMISS
                    ),
                )
                .join(
                    Interaction,
                    (Interaction.brand_id == brand_id)
                    & (Interaction.member_id == served.c.member_id)
                    & (Interaction.occurred_at >= served.c.served_at)
                    & (Interaction.exposure_id == served.c.id)
                    & (Interaction.item_id == func.any(served.c.item_ids)),
                )
                .group_by(served.c.arm)
            )
        ).all()
        attributed = (
            select(Interaction.id, served.c.arm)
            .ext(distinct_on(Interaction.id))
            .join(
                served,
                (served.c.member_id == Interaction.member_id)
                & (Interaction.item_id == func.any(served.c.item_ids))
                & (Interaction.occurred_at >= served.c.served_at)
                & (Interaction.occurred_at < served.c.served_at + attribution),
            )
            .where(
                Interaction.brand_id == brand_id,
                Interaction.kind == InteractionKind.REDEMPTION,
                Interaction.weight > 0,
                Interaction.item_id.startswith("perk:"),
            )
            .order_by(Interaction.id, served.c.served_at)
            .subquery()
        )
        redeemed = (
            await self.session.execute(
                select(attributed.c.arm, func.count()).group_by(attributed.c.arm)
            )
        ).all()
        clicks = {arm: (int(c), int(d)) for arm, c, d in feedback}
        redemptions = {arm: int(n) for arm, n in redeemed}
        return {
            arm: ArmCounts(
                members=int(members),
                exposures=int(exposures),
                items=int(items),
                clicks=clicks.get(arm, (0, 0))[0],
                dismissals=clicks.get(arm, (0, 0))[1],
                redemptions=redemptions.get(arm, 0),
            )
            for arm, members, exposures, items in counted
        }
