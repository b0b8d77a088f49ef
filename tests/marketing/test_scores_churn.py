"""The churn model on a synthetic brand whose churners differ from its stayers in their history
(each member buys at their own rhythm; lapsers stop at some point, and fewer of them take part
in the community), written straight into marketing's journal: the model must tell them apart
better than recency alone, every member gets a probability, too little history is refused, and
the REST routes answer for the brand's own models only."""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pytest
from redis.asyncio import Redis
from sqlalchemy import BigInteger, DateTime, Text, bindparam, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.auth import Scope
from services.marketing.audience import service as audience
from services.marketing.models import ChurnModel, MemberView, RefusalReason, TrainingStatus
from services.marketing.scores import service, tasks
from services.marketing.scores.repository import FEATURES
from services.members import service as members_service
from services.members.schemas import ApiKeyCreate
from tests.conftest import BrandFixture, bearer

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CUTOFF = NOW - timedelta(days=90)

_INSERT = text(
    """
INSERT INTO marketing.journal (event_id, brand_id, member_id, kind, occurred_at, amount_minor,
                               points, ref, data)
SELECT gen_random_uuid(), :brand_id, r.member_id, r.kind, r.occurred_at, r.amount_minor,
       r.points, r.ref, r.data::jsonb
FROM unnest(:member_ids, :kinds, :occurred, :amounts, :points, :refs, :data)
    AS r(member_id, kind, occurred_at, amount_minor, points, ref, data)
"""
).bindparams(
    bindparam("member_ids", type_=ARRAY(UUID(as_uuid=True))),
    bindparam("kinds", type_=ARRAY(Text)),
    bindparam("occurred", type_=ARRAY(DateTime(timezone=True))),
    bindparam("amounts", type_=ARRAY(BigInteger)),
    bindparam("points", type_=ARRAY(BigInteger)),
    bindparam("refs", type_=ARRAY(Text)),
    bindparam("data", type_=ARRAY(Text)),
)


@dataclass
class Synthetic:
    members: int
    at_cutoff: int  # members who existed at the cutoff
    churners: int  # of those, no purchase in the 90 days after it
    rows: int


async def synthetic_brand(
    session: AsyncSession, brand_id: uuid.UUID, members: int, *, seed: int = 7
) -> Synthetic:
    """A brand's journal over two years, with the answers the training must find."""
    rng = np.random.default_rng(seed)
    columns: dict[str, list[Any]] = {
        k: [] for k in ("member_ids", "kinds", "occurred", "amounts", "points", "refs", "data")
    }

    def add(
        member: uuid.UUID,
        kind: str,
        at: datetime,
        *,
        amount: int | None = None,
        points: int | None = None,
        ref: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        columns["member_ids"].append(member)
        columns["kinds"].append(kind)
        columns["occurred"].append(at)
        columns["amounts"].append(amount)
        columns["points"].append(points)
        columns["refs"].append(ref)
        columns["data"].append(json.dumps(data) if data is not None else None)

    at_cutoff = churners = 0
    for _ in range(members):
        member = uuid.UUID(bytes=rng.bytes(16), version=4)  # the same brand every run
        joined = NOW - timedelta(days=float(rng.uniform(20, 700)))
        gap = float(rng.uniform(15, 120))  # the member's own rhythm, in days
        lapses = rng.random() < 0.5
        span = (NOW - joined).total_seconds() / 86_400
        stop = joined + timedelta(days=float(rng.uniform(0, span))) if lapses else NOW
        engaged = rng.random() < (0.15 if lapses else 0.6)
        add(member, "profile", joined, ref="created", data={})
        bought: list[datetime] = []
        balance = 0
        t = joined + timedelta(days=gap * float(rng.uniform(0.1, 1.0)))
        while t < stop:
            amount = int(rng.integers(1_000, 20_000))
            balance += amount // 100
            add(member, "purchase", t, amount=amount, ref=f"o-{len(columns['kinds'])}")
            add(member, "points", t, points=amount // 100, data={"available": balance})
            bought.append(t)
            t += timedelta(days=gap * float(rng.uniform(0.6, 1.4)))
        if engaged:
            t = joined + timedelta(days=float(rng.uniform(1, 30)))
            while t < min(stop + timedelta(days=10), NOW):
                add(member, "post", t, ref="p")
                t += timedelta(days=float(rng.uniform(10, 50)))
        if joined <= CUTOFF:
            at_cutoff += 1
            churners += not any(CUTOFF < b <= NOW for b in bought)
    await session.execute(_INSERT, {"brand_id": brand_id, **columns})
    await audience.refresh_brand(session, brand_id, NOW)
    return Synthetic(members, at_cutoff, churners, len(columns["kinds"]))


async def test_the_model_beats_recency_and_scores_every_member(
    session: AsyncSession, brand: BrandFixture, other_brand: BrandFixture
) -> None:
    world = await synthetic_brand(session, brand.id, 2_500)
    bystander = await synthetic_brand(session, other_brand.id, 30, seed=1)

    scored = await service.score_brand(session, brand.id, NOW)

    trained = scored.trained
    assert trained is not None
    metrics = trained.metrics
    assert trained.status is TrainingStatus.TRAINED
    # Exactly the members who existed at the cutoff, labelled as generated.
    assert (metrics["members"], metrics["churners"]) == (world.at_cutoff, world.churners)
    assert trained.test_members == math.ceil(world.at_cutoff * 0.25)
    assert trained.train_members + trained.test_members == world.at_cutoff
    # The held-out share is stratified: its churn rate is the brand's.
    assert abs(metrics["base_rate"] - world.churners / world.at_cutoff) < 0.01
    assert metrics["cutoff"] == CUTOFF.isoformat()
    assert trained.features == list(FEATURES)
    assert trained.horizon_days == 90
    assert trained.artifact
    # The model adds something over recency alone, and over answering the churn rate.
    baseline = metrics["baseline"]
    assert baseline["features"] == ["days_since_purchase"]
    assert metrics["roc_auc"] > 0.85
    assert metrics["roc_auc"] > baseline["roc_auc"] + 0.05
    assert metrics["brier"] < baseline["brier"] < metrics["brier_base_rate"]

    # Every member is scored, those who joined after the cutoff too.
    assert scored.members == world.members
    assert scored.churn_scored == world.members
    session.expire_all()
    rows = (
        await session.execute(
            select(
                MemberView.churn_probability, MemberView.scored_at, MemberView.rfm_recency
            ).where(MemberView.brand_id == brand.id)
        )
    ).all()
    assert len(rows) == world.members
    probabilities = [p for p, _, _ in rows if p is not None]
    assert len(probabilities) == world.members
    assert all(0.0 <= p <= 1.0 for p in probabilities)
    assert {at for _, at, _ in rows} == {NOW}
    assert {r for _, _, r in rows} == {1, 2, 3, 4, 5}
    # Probabilities differ between members: the model is not answering a constant.
    assert len({round(p, 3) for p in probabilities}) > 100

    # The other brand was not touched: no scores, no model of its own.
    others = await session.execute(
        select(MemberView.churn_probability, MemberView.scored_at).where(
            MemberView.brand_id == other_brand.id
        )
    )
    assert {tuple(row) for row in others} == {(None, None)}
    assert bystander.members == 30
    assert (
        await session.scalar(
            select(func.count())
            .select_from(ChurnModel)
            .where(ChurnModel.brand_id == other_brand.id)
        )
        == 0
    )

    # The next day's scoring uses that model: no new training run.
    again = await service.score_brand(session, brand.id, NOW + timedelta(days=1))
    assert again.trained is None
    assert again.churn_scored == world.members


async def test_too_little_history_is_refused_with_a_reason(
    session: AsyncSession, brand: BrandFixture
) -> None:
    # Plenty of members, but the brand is 120 days old: no history before the cutoff.
    young = await synthetic_brand(session, brand.id, 300)
    await session.execute(
        text(
            "UPDATE marketing.journal SET occurred_at = "
            "CAST(:now AS timestamptz) - (CAST(:now AS timestamptz) - occurred_at) / 6 "
            "WHERE brand_id = :brand_id"
        ),
        {"now": NOW, "brand_id": brand.id},
    )
    refused = await service.train(session, brand.id, NOW)
    assert (refused.status, refused.reason) == (
        TrainingStatus.REFUSED,
        RefusalReason.NOT_ENOUGH_HISTORY,
    )
    assert (refused.train_members, refused.test_members, refused.artifact) == (0, 0, None)
    assert await service.score_churn(session, brand.id, NOW) == 0  # nothing to score with
    assert young.members == 300


async def test_too_few_members_are_refused(session: AsyncSession, brand: BrandFixture) -> None:
    world = await synthetic_brand(session, brand.id, 150)
    refused = await service.train(session, brand.id, NOW)
    assert (refused.status, refused.reason) == (
        TrainingStatus.REFUSED,
        RefusalReason.NOT_ENOUGH_MEMBERS,
    )
    assert refused.metrics["members"] == world.at_cutoff
    assert refused.detail == (
        f"{world.at_cutoff} members existed at the cutoff {CUTOFF.date()}; a churn model "
        "needs at least 200."
    )


async def test_the_routes_list_the_brands_models_and_queue_runs(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
    redis: Redis,
) -> None:
    await synthetic_brand(session, brand.id, 400)
    first = await service.train(session, brand.id, NOW - timedelta(days=7))
    second = await service.train(session, brand.id, NOW)
    await session.commit()

    listed = await client.get("/marketing/v1/churn-models", headers=brand.headers)
    assert listed.status_code == 200
    body = listed.json()
    assert [m["id"] for m in body] == [str(second.id), str(first.id)]  # newest first
    newest = body[0]
    assert newest["status"] == "trained"
    assert newest["reason"] is None
    assert newest["features"] == list(FEATURES)
    assert newest["horizon_days"] == 90
    assert newest["train_members"] == second.train_members
    assert newest["artifact_bytes"] == len(second.artifact)
    assert set(newest["metrics"]) >= {"roc_auc", "brier", "base_rate", "baseline"}
    limited = await client.get("/marketing/v1/churn-models?limit=1", headers=brand.headers)
    assert [m["id"] for m in limited.json()] == [str(second.id)]
    nothing = await client.get("/marketing/v1/churn-models", headers=other_brand.headers)
    assert nothing.json() == []

    queued = await client.post("/marketing/v1/churn-models/train", headers=brand.headers)
    assert queued.status_code == 202
    assert queued.json() == {
        "job_id": f"marketing.train_churn_model:{brand.id}",
        "brand_id": str(brand.id),
    }
    again = await client.post("/marketing/v1/churn-models/train", headers=brand.headers)
    assert again.json() == queued.json()
    run = await client.post("/marketing/v1/scores/run", headers=brand.headers)
    assert run.status_code == 202
    assert run.json() == {
        "job_id": f"marketing.score_members:{brand.id}",
        "brand_id": str(brand.id),
    }
    elsewhere = await client.post("/marketing/v1/scores/run", headers=other_brand.headers)
    assert elsewhere.json()["job_id"] == f"marketing.score_members:{other_brand.id}"
    queued_jobs = {key.decode() for key in await redis.keys("arq:job:*")}
    assert queued_jobs == {
        f"arq:job:marketing.train_churn_model:{brand.id}",
        f"arq:job:marketing.score_members:{brand.id}",
        f"arq:job:marketing.score_members:{other_brand.id}",
    }

    # The queued training job, run as the worker would: a third model, members scored by it.
    assert await tasks.train_churn_model(session, brand_id=str(brand.id), now=NOW) == 1
    newest_model = await session.scalar(
        select(ChurnModel)
        .where(ChurnModel.brand_id == brand.id)
        .order_by(ChurnModel.trained_at.desc(), ChurnModel.id.desc())
        .limit(1)
    )
    assert newest_model is not None
    assert newest_model.id not in {first.id, second.id}
    unscored = await session.scalar(
        select(func.count())
        .select_from(MemberView)
        .where(MemberView.brand_id == brand.id, MemberView.churn_probability.is_(None))
    )
    assert unscored == 0

    # A fourth run: only the three newest models keep their artifact; the first keeps its
    # figures, listed with no bytes.
    await service.train(session, brand.id, NOW + timedelta(hours=1))
    listed_after = await client.get("/marketing/v1/churn-models", headers=brand.headers)
    sizes = {m["id"]: m["artifact_bytes"] for m in listed_after.json()}
    assert len(sizes) == 4
    assert sizes[str(first.id)] == 0
    assert all(size > 0 for model_id, size in sizes.items() if model_id != str(first.id))

    _, reader = await members_service.create_api_key(
        session, brand.id, ApiKeyCreate(name="reader", scopes=[Scope.MARKETING_READ])
    )
    await session.commit()
    assert (
        await client.get("/marketing/v1/churn-models", headers=bearer(reader))
    ).status_code == 200
    for path in ("/marketing/v1/churn-models/train", "/marketing/v1/scores/run"):
        refused = await client.post(path, headers=bearer(reader))
        assert refused.status_code == 403
        assert refused.json()["error"] == "Forbidden"


async def test_a_big_brand_trains_on_a_fixed_sample(
    session: AsyncSession, brand: BrandFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = await synthetic_brand(session, brand.id, 1_000)
    monkeypatch.setattr(service, "MAX_TRAINING_MEMBERS", 500)

    sample = await service.training_set(session, brand.id, CUTOFF, NOW)
    again = await service.training_set(session, brand.id, CUTOFF, NOW)

    assert sample.sampled
    # About half the members who existed at the cutoff, and the same ones each time.
    assert 0.4 * world.at_cutoff < len(sample.churned) < 0.6 * world.at_cutoff
    assert np.array_equal(sample.features, again.features, equal_nan=True)
    assert np.array_equal(sample.churned, again.churned)
