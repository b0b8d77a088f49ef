"""The training side's SQL: snapshots of the store, model versions and their artifacts, the
precomputed lists, and the members awaiting a fold-in."""

from __future__ import annotations

import io
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from recommender.store.models import (
    ArtifactChunk,
    Experiment,
    Interaction,
    Item,
    ItemKind,
    MemberFacts,
    ModelVersion,
    Recommendation,
    VersionStatus,
)
from services.kernel.db import driver_connection

# A bytea holds at most 1 GB; artifacts are written in pieces well below that.
CHUNK_BYTES = 64 * 1024 * 1024

# One interaction in PostgreSQL's binary COPY format: a field count, then per field its length
# and its big-endian value (member index int4, item index int4, weight float4). Fixed-size rows
# let numpy read millions of them without a Python object each.
ROW = np.dtype(
    [
        ("fields", ">i2"),
        ("member_len", ">i4"),
        ("member", ">i4"),
        ("item_len", ">i4"),
        ("item", ">i4"),
        ("weight_len", ">i4"),
        ("weight", ">f4"),
    ]
)
COPY_HEADER_BYTES = 19
COPY_TRAILER_BYTES = 2

# The interactions of (members in `$1`, items in `$2`), as positions in those arrays so the matrix
# lines up with the id lists read before. Rows go out as they are, not summed per pair: building
# the sparse matrix sums them, far faster than PostgreSQL grouping twenty million rows.
INTERACTIONS_QUERY = """
SELECT m.ix::int4, i.ix::int4, x.weight::float4
FROM recommender.interactions AS x
JOIN unnest($1::uuid[]) WITH ORDINALITY AS m(member_id, ix) USING (member_id)
JOIN unnest($2::text[]) WITH ORDINALITY AS i(item_id, ix) USING (item_id)
WHERE x.brand_id = $3 AND x.occurred_at <= $4 {members}
"""


@dataclass(frozen=True)
class Pairs:
    """Interactions as arrays: 0-based member and item positions and weights (a pair may repeat)."""

    members: NDArray[np.int32]
    items: NDArray[np.int32]
    weights: NDArray[np.float32]


async def read_pairs(
    session: AsyncSession,
    brand_id: uuid.UUID,
    member_ids: Sequence[uuid.UUID],
    item_ids: Sequence[str],
    now: datetime,
    *,
    only_listed_members: bool = False,
) -> Pairs:
    """Every interaction of these members with these items up to `now`, through a binary COPY."""
    members_filter = "AND x.member_id = ANY($1::uuid[])" if only_listed_members else ""
    query = INTERACTIONS_QUERY.format(members=members_filter)
    connection = await driver_connection(session)
    buffer = io.BytesIO()
    await connection.copy_from_query(
        query, list(member_ids), list(item_ids), brand_id, now, output=buffer, format="binary"
    )
    raw = buffer.getbuffer()[COPY_HEADER_BYTES : len(buffer.getbuffer()) - COPY_TRAILER_BYTES]
    rows = np.frombuffer(raw, dtype=ROW)
    return Pairs(
        members=(rows["member"] - 1).astype(np.int32),  # WITH ORDINALITY counts from 1
        items=(rows["item"] - 1).astype(np.int32),
        weights=rows["weight"].astype(np.float32),
    )


@dataclass(frozen=True)
class MemberRow:
    member_id: uuid.UUID
    tier_id: uuid.UUID | None
    tier_name: str | None
    points: int
    interests: list[str]
    personalised: bool


async def read_members(
    session: AsyncSession, brand_id: uuid.UUID, member_ids: Sequence[uuid.UUID] | None = None
) -> list[MemberRow]:
    """The brand's members (or those listed), erased ones left out, in member id order."""
    query = select(
        MemberFacts.member_id,
        MemberFacts.tier_id,
        MemberFacts.tier_name,
        MemberFacts.points_available,
        MemberFacts.interests,
        MemberFacts.personalised,
    ).where(MemberFacts.brand_id == brand_id, MemberFacts.erased.is_(False))
    if member_ids is not None:
        query = query.where(MemberFacts.member_id.in_(member_ids))
    result = await session.execute(query.order_by(MemberFacts.member_id))
    return [MemberRow(*row) for row in result]


async def read_items(session: AsyncSession, brand_id: uuid.UUID) -> list[Item]:
    """The brand's catalog, in item id order."""
    result = await session.scalars(
        select(Item).where(Item.brand_id == brand_id).order_by(Item.item_id)
    )
    return list(result)


async def read_items_since(
    session: AsyncSession, brand_id: uuid.UUID, since: datetime
) -> list[Item]:
    """Items that appeared after `since` (newer than a model version), in item id order."""
    result = await session.scalars(
        select(Item)
        .where(Item.brand_id == brand_id, Item.created_at > since, Item.kind != ItemKind.PRODUCT)
        .order_by(Item.item_id)
    )
    return list(result)


# --- Model versions and artifacts -------------------------------------------------------------


async def serving_version(session: AsyncSession, brand_id: uuid.UUID) -> ModelVersion | None:
    return await session.scalar(
        select(ModelVersion).where(
            ModelVersion.brand_id == brand_id, ModelVersion.status == VersionStatus.SERVING
        )
    )


async def get_version(
    session: AsyncSession, brand_id: uuid.UUID, version_id: uuid.UUID
) -> ModelVersion | None:
    return await session.scalar(
        select(ModelVersion).where(ModelVersion.brand_id == brand_id, ModelVersion.id == version_id)
    )


async def list_versions(session: AsyncSession, brand_id: uuid.UUID) -> list[ModelVersion]:
    result = await session.scalars(
        select(ModelVersion)
        .where(ModelVersion.brand_id == brand_id)
        .order_by(ModelVersion.number.desc())
    )
    return list(result)


async def next_version_number(session: AsyncSession, brand_id: uuid.UUID) -> int:
    # A transaction-scoped advisory lock per brand: two training runs never take one number.
    await session.execute(select(func.pg_advisory_xact_lock(_brand_lock_key(brand_id))))
    highest = await session.scalar(
        select(func.max(ModelVersion.number)).where(ModelVersion.brand_id == brand_id)
    )
    return int(highest or 0) + 1


def _brand_lock_key(brand_id: uuid.UUID) -> int:
    return int.from_bytes(brand_id.bytes[:8], "big", signed=True)


async def add_version(session: AsyncSession, version: ModelVersion, artifact: bytes) -> None:
    session.add(version)
    await session.flush()
    for number, start in enumerate(range(0, max(1, len(artifact)), CHUNK_BYTES)):
        session.add(
            ArtifactChunk(
                version_id=version.id, number=number, data=artifact[start : start + CHUNK_BYTES]
            )
        )
    await session.flush()


async def read_artifact(session: AsyncSession, version_id: uuid.UUID) -> bytes:
    result = await session.scalars(
        select(ArtifactChunk.data)
        .where(ArtifactChunk.version_id == version_id)
        .order_by(ArtifactChunk.number)
    )
    return b"".join(result)


async def retire_serving(session: AsyncSession, brand_id: uuid.UUID) -> None:
    await session.execute(
        update(ModelVersion)
        .where(ModelVersion.brand_id == brand_id, ModelVersion.status == VersionStatus.SERVING)
        .values(status=VersionStatus.RETIRED)
    )


async def drop_old_artifacts(session: AsyncSession, brand_id: uuid.UUID, keep: int) -> None:
    """Delete the artifacts of all but the `keep` newest versions (and never the serving one);
    their rows and metrics stay as the training history."""
    kept = (
        select(ModelVersion.id)
        .where(ModelVersion.brand_id == brand_id)
        .order_by(ModelVersion.number.desc())
        .limit(keep)
    )
    serving = select(ModelVersion.id).where(
        ModelVersion.brand_id == brand_id, ModelVersion.status == VersionStatus.SERVING
    )
    old = select(ModelVersion.id).where(
        ModelVersion.brand_id == brand_id,
        ModelVersion.id.not_in(kept),
        ModelVersion.id.not_in(serving),
    )
    await session.execute(delete(ArtifactChunk).where(ArtifactChunk.version_id.in_(old)))


# --- Precomputed lists ------------------------------------------------------------------------


@dataclass(frozen=True)
class ListRow:
    member_id: uuid.UUID
    surface: str
    segment: str
    version_id: uuid.UUID | None
    arm: str
    item_ids: list[str]
    scores: list[float]
    reasons: list[str]


async def write_lists(
    session: AsyncSession, brand_id: uuid.UUID, rows: Sequence[ListRow], now: datetime
) -> None:
    if not rows:
        return
    values = [
        {
            "brand_id": brand_id,
            "member_id": row.member_id,
            "surface": row.surface,
            "segment": row.segment,
            "version_id": row.version_id,
            "arm": row.arm,
            "item_ids": row.item_ids,
            "scores": row.scores,
            "reasons": row.reasons,
            "computed_at": now,
        }
        for row in rows
    ]
    for start in range(0, len(values), 2_000):
        statement = insert(Recommendation).values(values[start : start + 2_000])
        excluded = statement.excluded
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["brand_id", "member_id", "surface", "segment"],
                set_={
                    "version_id": excluded.version_id,
                    "arm": excluded.arm,
                    "item_ids": excluded.item_ids,
                    "scores": excluded.scores,
                    "reasons": excluded.reasons,
                    "computed_at": excluded.computed_at,
                },
            )
        )


async def weekly_lists_computed_since(
    session: AsyncSession, brand_id: uuid.UUID, member_ids: Sequence[uuid.UUID], since: datetime
) -> set[tuple[uuid.UUID, str]]:
    """Which (member, surface) weekly lists were already made this week: they stay put."""
    result = await session.execute(
        select(Recommendation.member_id, Recommendation.surface).where(
            Recommendation.brand_id == brand_id,
            Recommendation.member_id.in_(member_ids),
            Recommendation.segment == "",
            Recommendation.surface.in_(("discover", "new")),
            Recommendation.computed_at >= since,
        )
    )
    return {(member_id, surface) for member_id, surface in result}


# --- Fold-in queue ----------------------------------------------------------------------------


async def claim_stale_members(
    session: AsyncSession, limit: int
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Up to `limit` (brand, member) pairs awaiting a fold-in, oldest first, locked so that a
    concurrent fold-in skips them and a consumer marking one again waits for this one's commit
    (and then marks it afresh, so nothing new is missed)."""
    result = await session.execute(
        select(MemberFacts.brand_id, MemberFacts.member_id)
        .where(MemberFacts.stale_since.is_not(None), MemberFacts.erased.is_(False))
        .order_by(MemberFacts.stale_since)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [(brand_id, member_id) for brand_id, member_id in result]


async def clear_stale(session: AsyncSession, member_ids: Sequence[uuid.UUID]) -> None:
    await session.execute(
        update(MemberFacts).where(MemberFacts.member_id.in_(member_ids)).values(stale_since=None)
    )


async def mark_active_members_stale(
    session: AsyncSession, brand_id: uuid.UUID, since: datetime, now: datetime
) -> int:
    """After a new version starts serving, members active since `since` get their lists
    recomputed with it by the next fold-ins."""
    result = await session.execute(
        text(
            """
            UPDATE recommender.members AS m SET stale_since = coalesce(m.stale_since, :now)
            WHERE m.brand_id = :brand AND NOT m.erased AND EXISTS (
                SELECT 1 FROM recommender.interactions AS i
                WHERE i.brand_id = :brand AND i.member_id = m.member_id AND i.occurred_at >= :since
            )
            """
        ),
        {"brand": brand_id, "since": since, "now": now},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def mark_listed_members_stale(
    session: AsyncSession, now: datetime, brand_id: uuid.UUID | None = None
) -> int:
    """Members with lists (of one brand, or of all) get them recomputed by the next fold-ins."""
    result = await session.execute(
        text(
            """
            UPDATE recommender.members AS m SET stale_since = coalesce(m.stale_since, :now)
            WHERE NOT m.erased AND (CAST(:brand AS uuid) IS NULL OR m.brand_id = :brand)
            AND EXISTS (
                SELECT 1 FROM recommender.recommendations AS r
                WHERE r.brand_id = m.brand_id AND r.member_id = m.member_id
                  AND r.surface = 'discover' AND r.segment = ''
            )
            """
        ),
        {"now": now, "brand": brand_id},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def last_interaction_id(session: AsyncSession, brand_id: uuid.UUID) -> int:
    """The newest interaction's id (0 with none): what a version has seen, as a watermark."""
    found = await session.scalar(
        select(func.max(Interaction.id)).where(Interaction.brand_id == brand_id)
    )
    return int(found or 0)


async def has_interactions_after(session: AsyncSession, brand_id: uuid.UUID, after: int) -> bool:
    found = await session.scalar(
        select(Interaction.id)
        .where(Interaction.id > after, Interaction.brand_id == brand_id)
        .limit(1)
    )
    return found is not None


async def running_experiment(session: AsyncSession, brand_id: uuid.UUID) -> Experiment | None:
    return await session.scalar(
        select(Experiment).where(Experiment.brand_id == brand_id, Experiment.ended_at.is_(None))
    )


async def brands_with_members(
    session: AsyncSession, after: uuid.UUID | None = None
) -> list[uuid.UUID]:
    """The brands with members, in id order (after `after`, when given)."""
    statement = select(MemberFacts.brand_id).distinct().order_by(MemberFacts.brand_id)
    if after is not None:
        statement = statement.where(MemberFacts.brand_id > after)
    return list(await session.scalars(statement))
