"""Tuning and measuring: every model tries its settings (at most GRID_BUDGET) on the validation
users, keeps the best, and is measured once on the test users."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
from numpy.typing import NDArray

from recommender import metrics
from recommender.models.base import ModelRefused, Recommender, mask_seen, top_items
from recommender.splits import HeldOut, Split

Params = Mapping[str, Any]
# Every model, the production ranker included, tries at most this many settings on the validation
# users: a fair comparison gives each the same tuning budget.
GRID_BUDGET = 6
# Users scored at a time: a batch of scores is BATCH x items float32 (160 MB at 40,000 items).
BATCH = 1024


@dataclass(frozen=True)
class Metric:
    name: str
    k: int
    kind: str  # "recall" (capped: over min(k, n)), "recall-all" (over n) or "ndcg"

    def per_user(self, found: NDArray[np.bool_], counts: NDArray[np.int64]) -> NDArray[np.float64]:
        if self.kind == "ndcg":
            return metrics.ndcg(found, counts, self.k)
        return metrics.recall(found, counts, self.k, capped=self.kind == "recall")


STRONG_METRICS = (
    Metric("recall@20", 20, "recall"),
    Metric("recall@50", 50, "recall"),
    Metric("ndcg@100", 100, "ndcg"),
)
GIVEN_METRICS = (Metric("recall@20", 20, "recall-all"), Metric("ndcg@20", 20, "ndcg"))


def protocol_metrics(split: Split) -> tuple[tuple[Metric, ...], Metric]:
    """The metrics reported for a split and the one every model is tuned on."""
    if split.protocol == "strong":
        return STRONG_METRICS, STRONG_METRICS[-1]
    return GIVEN_METRICS, GIVEN_METRICS[-1]


@dataclass(frozen=True)
class ModelSpec:
    """How to build a model from settings, and the settings to try (at most GRID_BUDGET)."""

    name: str
    build: Callable[[Params], Recommender]
    grid: Sequence[Params] = ({},)

    def __post_init__(self) -> None:
        if not 1 <= len(self.grid) <= GRID_BUDGET:
            raise ValueError(f"{self.name}: a grid of 1 to {GRID_BUDGET} settings")


@dataclass
class Outcome:
    name: str
    params: Params
    validation: float  # the tuning metric on the validation users, for the chosen settings
    metrics: dict[str, float]
    train_seconds: float
    model: Recommender
    tried: list[tuple[Params, float]] = field(default_factory=list)


def per_user_metrics(
    model: Recommender, users: HeldOut, wanted: Sequence[Metric]
) -> dict[str, NDArray[np.float64]]:
    """Each metric per evaluated user (users without targets are dropped), ranking the whole
    catalog minus the items the user's rows already hold."""
    depth = max(m.k for m in wanted)
    keep = np.flatnonzero(np.diff(users.targets.indptr) > 0)
    out: dict[str, list[NDArray[np.float64]]] = {m.name: [] for m in wanted}
    for start in range(0, len(keep), BATCH):
        batch = keep[start : start + BATCH]
        rows = sp.csr_matrix(users.rows[batch])
        scores = model.score(rows, users.context.take(batch)).astype(np.float32, copy=True)
        ranked = top_items(mask_seen(scores, rows), depth)
        targets = sp.csr_matrix(users.targets[batch])
        found = metrics.hits(ranked, targets)
        counts = metrics.held_out_counts(targets)
        for m in wanted:
            out[m.name].append(m.per_user(found, counts))
    return {name: np.concatenate(parts) if parts else np.zeros(0) for name, parts in out.items()}


def measure(model: Recommender, users: HeldOut, wanted: Sequence[Metric]) -> dict[str, float]:
    return {name: metrics.mean(v) for name, v in per_user_metrics(model, users, wanted).items()}


def timed_fit(
    spec: ModelSpec, params: Params, matrix: sp.csr_matrix, split: Split, tuning: bool
) -> tuple[Recommender, float]:
    context = split.tuning_context if tuning else split.train_context
    started = time.perf_counter()
    model = spec.build(params).fit(matrix, context)
    return model, time.perf_counter() - started + model.reused_seconds


def tune_and_test(
    spec: ModelSpec, split: Split, log: Callable[[str], None] = lambda _: None
) -> Outcome:
    """Try every setting on the validation users, keep the best (the first among equals), then
    measure it once on the test users, fit on the training matrix."""
    reported, target = protocol_metrics(split)
    best: tuple[float, Params, Recommender, float] | None = None
    tried: list[tuple[Params, float]] = []
    for params in spec.grid:
        model, seconds = timed_fit(spec, params, split.tuning, split, tuning=True)
        value = measure(model, split.validation, [target])[target.name]
        tried.append((params, value))
        log(f"  {spec.name} {dict(params)}: validation {target.name} {value:.4f} ({seconds:.1f}s)")
        if best is None or value > best[0]:
            best = (value, params, model, seconds)
    assert best is not None  # a grid has at least one setting
    value, params, model, seconds = best
    if split.tuning is not split.train:  # a given split tunes on a masked copy: refit on it all
        model, seconds = timed_fit(spec, params, split.train, split, tuning=False)
    return Outcome(
        name=spec.name,
        params=params,
        validation=value,
        metrics=measure(model, split.test, reported),
        train_seconds=seconds,
        model=model,
        tried=tried,
    )


def evaluate_all(
    specs: Sequence[ModelSpec], split: Split, log: Callable[[str], None] = lambda _: None
) -> tuple[dict[str, Outcome], dict[str, str]]:
    """Every spec tuned and tested; models that refuse the data are reported with the reason."""
    done: dict[str, Outcome] = {}
    skipped: dict[str, str] = {}
    for spec in specs:
        try:
            done[spec.name] = tune_and_test(spec, split, log)
        except ModelRefused as exc:
            skipped[spec.name] = str(exc)
            log(f"  {spec.name} skipped: {exc}")
    return done, skipped
