"""Training a brand's model and folding members in.

Training reads a snapshot of the brand's store, fits a version without the evaluation members,
judges it against the serving version on them, stores it (serving only if not worse), writes the
non-personalised lists and queues the brand's active members for a fold-in with it.

A fold-in recomputes the lists of members whose data changed since (`MemberFacts.stale_since`,
set by the intake): their latest interactions go through the serving version with no retraining
(EASE, the content model and the ranker all score rows they were not fit on). Members in an A/B
arm of another version are scored by that one.

The fitting and scoring are CPU-bound and run in a thread, so a process that also serves HTTP
(`kinfolk dev`) keeps answering meanwhile. Nothing here commits: the job does.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
from sqlalchemy.ext.asyncio import AsyncSession

from recommender.events import ModelTrained, ModelTrainedData
from recommender.serving.experiments import Policy, arms_of, assign_arm
from recommender.store.models import OUTBOX, ModelVersion, VersionStatus
from recommender.training import repository
from recommender.training.gate import held_out, is_evaluation_member, measure, not_worse
from recommender.training.lists import WEEKLY, Fresh, member_lists, popular_lists
from recommender.training.model import ProductionModel, fit, item_space
from recommender.training.repository import MemberRow
from recommender.training.snapshot import Catalog, load_snapshot, pair_matrix
from services.kernel.caches import MISSING, BoundedCache
from services.kernel.clock import utcnow
from services.kernel.ids import new_id
from services.kernel.loops import off_loop

# Members whose lists are refreshed after a new version starts serving: those active lately.
ACTIVE_WINDOW = timedelta(days=90)
# Brands whose serving version learned from fewer member-item pairs than this are retrained as
# soon as new interactions arrive (every few minutes), not only at night.
YOUNG_PAIRS = 10_000
# Artifacts of this many newest versions are kept (for A/B arms and rollback), plus the serving.
KEEP_ARTIFACTS = 3
# Members folded in per batch, and how long one fold-in job keeps taking batches.
FOLD_IN_BATCH = 500
FOLD_IN_SECONDS = 40.0

# A model of a big brand is hundreds of megabytes, and a young brand trains every few minutes:
# the process keeps the few versions it used last.
_CACHED_MODELS = 3
_MODELS: BoundedCache[uuid.UUID, ProductionModel] = BoundedCache(_CACHED_MODELS)


async def load_model(session: AsyncSession, version: ModelVersion) -> ProductionModel:
    """A version's model, from this process's cache or its stored artifact."""
    cached = _MODELS.get(version.id)
    if cached is not MISSING:
        return cached
    data = await repository.read_artifact(session, version.id)
    if not data:
        raise LookupError(f"model version {version.number} has no stored artifact any more")
    model = await off_loop(partial(ProductionModel.from_bytes, data))
    _MODELS.put(version.id, model)
    return model


@dataclass(frozen=True)
class Trained:
    version: ModelVersion
    promoted: bool
    seconds: float


async def train_brand(
    session: AsyncSession, brand_id: uuid.UUID, now: datetime | None = None, *, seed: int = 0
) -> Trained | None:
    """Train, judge and store a new version; None when the brand has no members yet."""
    started = time.perf_counter()
    now = now or utcnow()
    # Read before the snapshot: whatever arrives meanwhile is newer than the version.
    watermark = await repository.last_interaction_id(session, brand_id)
    snapshot = await load_snapshot(session, brand_id, now)
    if not snapshot.members:
        return None
    snapshot_seconds = time.perf_counter() - started
    space = item_space(snapshot)
    catalog = snapshot.catalog.take(space)
    matrix = sp.csr_matrix(snapshot.matrix[:, space])
    evaluation = np.array([is_evaluation_member(m.member_id) for m in snapshot.members])
    training = np.flatnonzero(~evaluation)
    members = [snapshot.members[int(i)] for i in training]

    def train() -> ProductionModel:
        context = ProductionModel.context_of(snapshot.tiers, members)
        return fit(
            sp.csr_matrix(matrix[training]),
            context,
            catalog,
            catalog.ids,
            snapshot.tiers,
            seed=seed,
        )

    model = await off_loop(train)
    judging = time.perf_counter()
    judged_on = held_out(snapshot, evaluation, seed)
    new_metrics = await off_loop(partial(measure, model, judged_on))
    serving = await repository.serving_version(session, brand_id)
    serving_metrics = None
    if serving is not None:
        try:
            serving_model = await load_model(session, serving)
        except LookupError:
            serving_model = None
        if serving_model is not None:
            serving_metrics = await off_loop(partial(measure, serving_model, judged_on))
    promoted = not_worse(new_metrics, serving_metrics)
    judge_seconds = time.perf_counter() - judging
    # Kept with the version, so a fold-in names tiers in reasons without reading every member.
    model.tier_names = snapshot.tier_names
    artifact = await off_loop(model.to_bytes)
    version = ModelVersion(
        id=new_id(),
        brand_id=brand_id,
        number=await repository.next_version_number(session, brand_id),
        status=VersionStatus.SERVING if promoted else VersionStatus.REJECTED,
        artifact_bytes=len(artifact),
        metrics={
            **(new_metrics or {}),
            "model": model.kind,
            "members": len(members),
            "items": model.n_items,
            "interactions": int(matrix.nnz),
            "last_interaction_id": watermark,
            "snapshot_seconds": round(snapshot_seconds, 3),
            "fit_seconds": round(model.fit_seconds, 3),
            "judge_seconds": round(judge_seconds, 3),
        },
        compared_to=serving_metrics,
        trained_at=now,
    )
    if promoted:
        await repository.retire_serving(session, brand_id)
    await repository.add_version(session, version, artifact)
    _MODELS.put(version.id, model)
    if promoted:
        groups = snapshot.groups(snapshot.members)
        await repository.write_lists(
            session, brand_id, popular_lists(model, matrix, groups, version.id, now), now
        )
        await repository.mark_active_members_stale(session, brand_id, now - ACTIVE_WINDOW, now)
    await repository.drop_old_artifacts(session, brand_id, KEEP_ARTIFACTS)
    await OUTBOX.add(
        session,
        ModelTrained(
            brand_id=brand_id,
            occurred_at=now,
            data=ModelTrainedData(
                version_id=version.id,
                number=version.number,
                status="serving" if promoted else "rejected",
                metrics=version.metrics,
                compared_to=serving_metrics,
            ),
        ),
    )
    # A new dict: the JSONB column sees the change.
    version.metrics = {**version.metrics, "seconds": round(time.perf_counter() - started, 3)}
    return Trained(version, promoted, time.perf_counter() - started)


async def fold_in(
    session: AsyncSession,
    now: datetime | None = None,
    *,
    batch: int = FOLD_IN_BATCH,
    budget_seconds: float = FOLD_IN_SECONDS,
) -> int:
    """Recompute the lists of members awaiting a fold-in, a batch at a time, until none are left
    or the time budget is spent. Returns how many members were folded in."""
    started = time.perf_counter()
    done = 0
    while time.perf_counter() - started < budget_seconds:
        claimed = await repository.claim_stale_members(session, batch)
        if not claimed:
            break
        by_brand: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
        for brand_id, member_id in claimed:
            by_brand[brand_id].append(member_id)
        for brand_id, member_ids in by_brand.items():
            await fold_in_members(session, brand_id, member_ids, now or utcnow())
            await repository.clear_stale(session, member_ids)
        done += len(claimed)
        if len(claimed) < batch:
            break
    return done


async def fold_in_members(
    session: AsyncSession, brand_id: uuid.UUID, member_ids: Sequence[uuid.UUID], now: datetime
) -> None:
    """Lists for these members from the serving version (or, for members in an A/B arm of
    another version, from that one). Without a serving version (a brand not trained yet) they
    are served the non-personalised lists until the first version marks them again."""
    version = await repository.serving_version(session, brand_id)
    if version is None:
        return
    members = await repository.read_members(session, brand_id, member_ids)
    if not members:
        return
    groups = await _arm_groups(session, brand_id, version, members)
    week_start = (now - timedelta(days=now.weekday())).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    weekly_done = await repository.weekly_lists_computed_since(
        session, brand_id, [m.member_id for m in members], week_start
    )
    for (arm_version, arm), group in groups.items():
        try:
            model = await load_model(session, arm_version)
        except LookupError:  # an arm's old version whose artifact was dropped: the current one
            arm_version = version
            model = await load_model(session, version)
        fresh_items = await repository.read_items_since(session, brand_id, arm_version.trained_at)
        fresh = Fresh.of(model, Catalog.of(fresh_items))
        item_ids = [*map(str, model.item_ids), *map(str, fresh.catalog.ids)]
        pairs = await repository.read_pairs(
            session, brand_id, [m.member_id for m in group], item_ids, now, only_listed_members=True
        )
        matrix = pair_matrix(pairs, len(group), len(item_ids))
        rows = sp.csr_matrix(matrix[:, : model.n_items])
        fresh_seen = sp.csr_matrix(matrix[:, model.n_items :])
        lists = await off_loop(
            partial(
                member_lists,
                model,
                arm_version.id,
                group,
                rows,
                fresh_seen,
                fresh,
                now,
                arm=arm,
            )
        )
        # Discover and New for you stay put for the week once made, as a weekly list does.
        kept = [
            row
            for row in lists
            if not (row.surface in WEEKLY and (row.member_id, row.surface) in weekly_done)
        ]
        await repository.write_lists(session, brand_id, kept, now)


async def _arm_groups(
    session: AsyncSession, brand_id: uuid.UUID, serving: ModelVersion, members: list[MemberRow]
) -> dict[tuple[ModelVersion, str], list[MemberRow]]:
    """Members by the version that scores them and the A/B arm they are in ("" with no test)."""
    experiment = await repository.running_experiment(session, brand_id)
    groups: dict[tuple[ModelVersion, str], list[MemberRow]] = defaultdict(list)
    if experiment is None:
        groups[(serving, "")] = members
        return groups
    arms = arms_of(experiment.arms)
    versions: dict[uuid.UUID, ModelVersion | None] = {}
    for member in members:
        arm = assign_arm(experiment.id, arms, member.member_id)
        version = serving
        if arm.policy == Policy.VERSION and arm.version_id is not None:
            if arm.version_id not in versions:
                versions[arm.version_id] = await repository.get_version(
                    session, brand_id, arm.version_id
                )
            version = versions[arm.version_id] or serving
        groups[(version, arm.name)].append(member)
    return groups


async def is_young(session: AsyncSession, brand_id: uuid.UUID) -> bool:
    """A brand still finding its feet: no serving version yet, or one that learned from fewer
    than YOUNG_PAIRS member-item pairs while new interactions have arrived since. Such a brand
    (and `kinfolk dev`'s demo, whose history arrives through the consumers after start) is
    trained every few minutes (`tasks.train_young_brands`), so it gets a useful model within
    minutes instead of the next night."""
    serving = await repository.serving_version(session, brand_id)
    if serving is None:
        return True
    if int(serving.metrics.get("interactions", 0)) >= YOUNG_PAIRS:
        return False
    seen = int(serving.metrics.get("last_interaction_id", 0))
    return await repository.has_interactions_after(session, brand_id, seen)
