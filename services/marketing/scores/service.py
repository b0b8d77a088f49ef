"""The scores' rules: RFM quintiles, training a brand's churn model on its own history, and
scoring every member with it. Nothing here commits: the job does.

Churn means no purchase within `HORIZON_DAYS`. A model learns it at a cutoff `HORIZON_DAYS`
ago: each member who existed then is described as of the cutoff (`repository.FEATURES`, from
marketing's journal only) and labelled by whether they bought in the days after it, which have
all passed. Scoring describes every member the same way as of now.

A brand with a million members stays flat in memory: members are read, scored and written a
page at a time, and training learns from a deterministic sample of at most
`MAX_TRAINING_MEMBERS`.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.kernel.ids import new_id
from services.kernel.loops import off_loop
from services.marketing.audience import service as audience
from services.marketing.models import ChurnModel, RefusalReason, TrainingStatus
from services.marketing.scores import model as churn_model
from services.marketing.scores.repository import FEATURES, FeatureRow, ScoresRepository

HORIZON_DAYS = 90
HORIZON = timedelta(days=HORIZON_DAYS)
# History a brand needs before the cutoff, so members are described by more than their first
# weeks: with the horizon after it, half a year in all.
LOOKBACK = timedelta(days=90)
# Below these the held-out figures are noise: a model is refused, not stored.
MIN_MEMBERS = 200
MIN_PER_OUTCOME = 40  # churners and stayers each (a quarter of them are held out)
# A bigger brand trains on a sample: the fit stays seconds and tens of MB.
MAX_TRAINING_MEMBERS = 250_000
# Members per feature query and write: set-based, yet a few MB per page.
PAGE = 5_000
# Artifacts of this many newest models are kept; older models keep only their figures.
KEEP_ARTIFACTS = 3


async def write_rfm(session: AsyncSession, brand_id: uuid.UUID, now: datetime) -> None:
    """Every member's RFM quintiles (see `repository._RFM` for ties and non-buyers)."""
    await ScoresRepository(session).write_rfm(brand_id, now)


@dataclass(frozen=True)
class TrainingSet:
    features: np.ndarray[Any, np.dtype[np.float64]]
    churned: np.ndarray[Any, np.dtype[np.int8]]
    sampled: bool


def _kept(member_id: uuid.UUID, share: float) -> bool:
    """A fixed pseudo-random share of members: the same members for the same share."""
    digest = hashlib.blake2b(member_id.bytes, digest_size=8).digest()
    return int.from_bytes(digest, "big") < share * 2**64


def _matrix(rows: list[FeatureRow]) -> np.ndarray[Any, np.dtype[np.float64]]:
    # Nulls (never bought: no recency, no gap) become NaN, which the model takes as missing.
    return np.array([row[1 : 1 + len(FEATURES)] for row in rows], dtype=np.float64).reshape(
        len(rows), len(FEATURES)
    )


async def training_set(
    session: AsyncSession, brand_id: uuid.UUID, cutoff: datetime, until: datetime
) -> TrainingSet:
    """Members who existed at the cutoff, described as of it, and whether they churned (did
    not buy in (cutoff, until])."""
    repository = ScoresRepository(session)
    total = await repository.member_count(brand_id)
    share = min(1.0, MAX_TRAINING_MEMBERS / total) if total else 1.0
    blocks: list[np.ndarray[Any, np.dtype[np.float64]]] = []
    labels: list[np.ndarray[Any, np.dtype[np.int8]]] = []
    after: uuid.UUID | None = None
    while page := await repository.member_ids_after(brand_id, after, PAGE):
        after = page[-1]
        kept = page if share >= 1.0 else [m for m in page if _kept(m, share)]
        rows = await repository.features_with_outcome(brand_id, kept, cutoff, until)
        if rows:
            blocks.append(_matrix(rows))
            labels.append(np.array([0 if row[-1] else 1 for row in rows], dtype=np.int8))
    if not blocks:
        return TrainingSet(
            np.empty((0, len(FEATURES)), dtype=np.float64), np.empty(0, np.int8), share < 1.0
        )
    return TrainingSet(np.vstack(blocks), np.concatenate(labels), share < 1.0)


def _refusal(
    brand_id: uuid.UUID,
    now: datetime,
    reason: RefusalReason,
    detail: str,
    **facts: Any,
) -> ChurnModel:
    return ChurnModel(
        id=new_id(),
        brand_id=brand_id,
        trained_at=now,
        horizon_days=HORIZON_DAYS,
        features=list(FEATURES),
        status=TrainingStatus.REFUSED,
        reason=reason,
        detail=detail,
        metrics=facts,
        train_members=0,
        test_members=0,
        artifact=None,
    )


async def train(
    session: AsyncSession, brand_id: uuid.UUID, now: datetime | None = None
) -> ChurnModel:
    """Train and store the brand's churn model, or store a refusal saying why not (too short a
    history, too few members, too few churners or stayers). Either way the row is returned and
    listed: a refusal is an answer, not an error."""
    now = now or utcnow()
    cutoff = now - HORIZON
    repository = ScoresRepository(session)
    facts: dict[str, Any] = {"cutoff": cutoff.isoformat()}

    starts = await repository.history_starts(brand_id)
    if starts is None or starts > cutoff - LOOKBACK:
        row = _refusal(
            brand_id,
            now,
            RefusalReason.NOT_ENOUGH_HISTORY,
            f"A churn model needs {(LOOKBACK + HORIZON).days} days of the brand's history "
            f"({LOOKBACK.days} to describe members, {HORIZON_DAYS} to see who bought again); "
            + ("there is none yet." if starts is None else f"it starts {starts.date()}."),
            history_starts=starts.isoformat() if starts else None,
            **facts,
        )
        await repository.add_model(row)
        return row

    data = await training_set(session, brand_id, cutoff, now)
    members = len(data.churned)
    churners = int(data.churned.sum())
    stayers = members - churners
    facts |= {"members": members, "churners": churners, "sampled": data.sampled}
    refused: tuple[RefusalReason, str] | None = None
    if members < MIN_MEMBERS:
        refused = (
            RefusalReason.NOT_ENOUGH_MEMBERS,
            f"{members} members existed at the cutoff {cutoff.date()}; a churn model needs "
            f"at least {MIN_MEMBERS}.",
        )
    elif min(churners, stayers) < MIN_PER_OUTCOME:
        refused = (
            RefusalReason.ONE_SIDED_OUTCOME,
            f"Of {members} members at the cutoff, {churners} churned and {stayers} bought "
            f"again; a churn model needs at least {MIN_PER_OUTCOME} of each.",
        )
    if refused is not None:
        row = _refusal(brand_id, now, *refused, **facts)
        await repository.add_model(row)
        return row

    fitted = await off_loop(partial(churn_model.fit, data.features, data.churned, FEATURES))
    artifact = await off_loop(partial(churn_model.to_bytes, fitted.estimator))
    row = ChurnModel(
        id=new_id(),
        brand_id=brand_id,
        trained_at=now,
        horizon_days=HORIZON_DAYS,
        features=list(FEATURES),
        status=TrainingStatus.TRAINED,
        metrics={**fitted.metrics, **facts},
        train_members=fitted.train_members,
        test_members=fitted.test_members,
        artifact=artifact,
    )
    await repository.add_model(row)
    await repository.drop_old_artifacts(brand_id, KEEP_ARTIFACTS)
    return row


async def score_churn(
    session: AsyncSession, brand_id: uuid.UUID, now: datetime | None = None
) -> int:
    """Every member's churn probability from the brand's newest model, a page at a time.
    Without a model, nothing changes (probabilities stay null). Returns members scored."""
    now = now or utcnow()
    repository = ScoresRepository(session)
    stored = await repository.latest_trained(brand_id, FEATURES)
    if stored is None or stored.artifact is None:  # the query asks for one with its artifact
        return 0
    estimator = await off_loop(partial(churn_model.from_bytes, stored.artifact))
    done = 0
    after: uuid.UUID | None = None
    while page := await repository.member_ids_after(brand_id, after, PAGE):
        after = page[-1]
        rows = await repository.features(brand_id, page, now)
        if not rows:
            continue
        probabilities = churn_model.predict(estimator, _matrix(rows))
        await repository.write_probabilities(
            brand_id, [row[0] for row in rows], probabilities.tolist(), now
        )
        done += len(rows)
    return done


@dataclass(frozen=True)
class Scored:
    brand_id: uuid.UUID
    members: int
    churn_scored: int
    trained: ChurnModel | None  # a first model trained on the way, if the brand had none


async def score_brand(
    session: AsyncSession, brand_id: uuid.UUID, now: datetime | None = None
) -> Scored:
    """The daily scoring of one brand: move the 360's spend windows on, then RFM, then churn
    probabilities. A brand that never had a training run gets its first one here rather than
    waiting for the weekly run."""
    now = now or utcnow()
    members = await audience.refresh_brand(session, brand_id, now)
    await write_rfm(session, brand_id, now)
    trained = None
    if not await ScoresRepository(session).has_models(brand_id):
        trained = await train(session, brand_id, now)
    churn_scored = await score_churn(session, brand_id, now)
    return Scored(brand_id, members, churn_scored, trained)


async def train_and_score(
    session: AsyncSession, brand_id: uuid.UUID, now: datetime | None = None
) -> ChurnModel:
    """A training run; when it fits a model, the members are scored with it at once, so the
    probabilities always come from the newest model listed."""
    now = now or utcnow()
    row = await train(session, brand_id, now)
    if row.status is TrainingStatus.TRAINED:
        await score_churn(session, brand_id, now)
    return row


async def brands_with_members(session: AsyncSession) -> list[uuid.UUID]:
    return await ScoresRepository(session).brands_with_members()
