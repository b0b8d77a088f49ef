"""The production ranker: candidates from the base models, re-ranked by gradient boosting.

The blend is learned, not hand-tuned. The training users are split into folds; for each fold the
base models are fit without what those users hide (without the users at all for strong
generalisation, where evaluated users are new; with only their other 80% when users are later
evaluated on their own future items), the fold's users are scored from their 80%, and the booster
learns which candidates were the hidden 20%. The base models are then fit on everything.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal, Self

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
from numpy.typing import NDArray
from sklearn.ensemble import HistGradientBoostingClassifier  # type: ignore[import-untyped]

from recommender.data import select_rows
from recommender.models.base import (
    NO_CATALOG,
    NO_CONTEXT,
    Catalog,
    ModelRefused,
    Recommender,
    Scores,
    UserContext,
    mask_seen,
)
from recommender.models.features import Candidates, ItemStats, candidates, feature_names
from recommender.splits import MIN_ITEMS_TO_SPLIT, split_rows

# Users whose features are computed at a time (a batch holds dense scores for every base model).
BATCH = 512
# With few training users one booster is noisy: its NDCG@100 on MovieLens-100k moved by ±1% with
# the seed. So with fewer than EXAMPLE_USERS training users, several boosters (up to MAX_BAGS) each
# learn from their own draw (other folds, another random 20% hidden per user) and their
# probabilities are averaged, which held the gain over EASE steady (measured on users kept out
# of the test set).
EXAMPLE_USERS = 3_000
MAX_BAGS = 5


@dataclass(frozen=True)
class Base:
    """A base model: its name (the features' names derive from it) and how to build it unfit."""

    name: str
    build: Callable[[], Recommender]


@dataclass(frozen=True)
class Booster:
    """Settings of the gradient-boosting head."""

    learning_rate: float = 0.05
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 50
    l2_regularization: float = 1.0
    max_iter: int = 400
    per_user: bool = True  # weight rows so every user counts the same, as NDCG's mean does


DEFAULT_BOOSTER = Booster()


@dataclass(frozen=True)
class Table:
    """The booster's training data: one row per (training user, candidate item)."""

    features: NDArray[np.float32]
    labels: NDArray[np.int8]
    users: NDArray[np.int64]


@dataclass(frozen=True)
class Prepared:
    """What does not depend on the booster's settings, so tuning builds it once."""

    tables: list[Table]  # one per bag
    models: list[Recommender]
    stats: ItemStats
    seconds: float  # how long preparing took


class Ranker(Recommender):
    name = "ranker"

    def __init__(
        self,
        bases: Sequence[Base],
        catalog: Catalog = NO_CATALOG,
        *,
        booster: Booster = DEFAULT_BOOSTER,
        depth: int = 100,
        folds: int = 5,
        bags: int | None = None,
        holdout: Literal["users", "items"] = "users",
        max_training_users: int = 20_000,
        seed: int = 0,
        cache: dict[tuple[int, ...], Prepared] | None = None,
    ) -> None:
        if not bases:
            raise ValueError("the ranker needs at least one base model")
        self.bases = list(bases)
        self.catalog = catalog
        self.booster = booster
        self.depth = depth
        self.folds = folds
        self.bags = bags  # None: as many as EXAMPLE_USERS asks, at most MAX_BAGS
        self.holdout = holdout
        self.max_training_users = max_training_users
        self.seed = seed
        self.cache = cache
        self.models: list[Recommender] = []
        self.stats: ItemStats | None = None
        self.heads: list[HistGradientBoostingClassifier] = []
        # Features known at fit time: side facts absent from the training data are left out.
        self.used: NDArray[np.bool_] = np.zeros(0, dtype=np.bool_)

    @property
    def feature_names(self) -> list[str]:
        names = feature_names([b.name for b in self.bases])
        return [n for n, used in zip(names, self.used, strict=True) if used]

    def fit(self, matrix: sp.csr_matrix, users: UserContext = NO_CONTEXT) -> Self:
        matrix = sp.csr_matrix(matrix)
        # Keyed by the matrix object (tuning fits one matrix several times) and what shapes it.
        key = (id(matrix.data), matrix.nnz, *matrix.shape, self.depth, self.folds, self.seed)
        key += (self.bags or 0,)
        prepared = self.cache.get(key) if self.cache is not None else None
        self.reused_seconds = 0.0 if prepared is None else prepared.seconds
        if prepared is None:
            started = time.perf_counter()
            tables = self.training_tables(matrix, users)
            models = [b.build().fit(matrix, users) for b in self.bases]
            prepared = Prepared(
                tables, models, ItemStats.of(matrix, users), time.perf_counter() - started
            )
            if self.cache is not None:
                self.cache[key] = prepared
        self.used = np.asarray(np.isfinite(prepared.tables[0].features).any(axis=0))
        self.heads = [
            self._train_head(table, self.seed + bag) for bag, table in enumerate(prepared.tables)
        ]
        self.models, self.stats = prepared.models, prepared.stats
        return self

    def training_tables(self, matrix: sp.csr_matrix, users: UserContext) -> list[Table]:
        """Per bag: out-of-fold candidates of the training users, labelled by hidden items."""
        rng = np.random.default_rng(self.seed)
        eligible = np.flatnonzero(np.diff(matrix.indptr) >= MIN_ITEMS_TO_SPLIT)
        eligible = rng.permutation(eligible)[: self.max_training_users]
        if len(eligible) < self.folds:
            raise ModelRefused(
                f"the ranker needs at least {self.folds} training users with "
                f"{MIN_ITEMS_TO_SPLIT} or more interactions, got {len(eligible)}"
            )
        bags = self.bags or max(1, min(MAX_BAGS, math.ceil(EXAMPLE_USERS / len(eligible))))
        tables = []
        for _ in range(bags):
            parts: list[Table] = []
            for fold in np.array_split(rng.permutation(eligible), self.folds):
                parts += self._fold_table(matrix, users, np.sort(fold), rng)
            tables.append(
                Table(
                    features=np.concatenate([p.features for p in parts]),
                    labels=np.concatenate([p.labels for p in parts]),
                    users=np.concatenate([p.users for p in parts]),
                )
            )
        return tables

    def _fold_table(
        self,
        matrix: sp.csr_matrix,
        users: UserContext,
        fold: NDArray[np.int64],
        rng: np.random.Generator,
    ) -> list[Table]:
        fold_in, hidden, fold_times = split_rows(matrix, rng, users.times, only=fold)
        context = replace(users, times=fold_times)
        if self.holdout == "users":
            others = np.setdiff1d(np.arange(matrix.shape[0]), fold)
            fit_matrix, fit_context = select_rows(matrix, others), users.take(others)
        else:
            fit_matrix, fit_context = fold_in, context
        models = [b.build().fit(fit_matrix, fit_context) for b in self.bases]
        stats = ItemStats.of(fit_matrix, fit_context)
        parts = []
        for start in range(0, len(fold), BATCH):
            batch = fold[start : start + BATCH]
            rows = select_rows(fold_in, batch)
            found, _ = self._candidates(models, stats, rows, context.take(batch))
            labels = np.asarray(select_rows(hidden, batch)[found.row, found.item]).ravel() > 0
            parts.append(Table(found.features, labels.astype(np.int8), batch[found.row]))
        return parts

    def _train_head(self, table: Table, seed: int) -> HistGradientBoostingClassifier:
        if table.labels.min() == table.labels.max():
            raise ModelRefused("no hidden item of the ranker's training users is among candidates")
        b = self.booster
        weight = None
        if b.per_user:
            _, index, counts = np.unique(table.users, return_inverse=True, return_counts=True)
            weight = (len(counts) / counts)[index]
        head = HistGradientBoostingClassifier(
            learning_rate=b.learning_rate,
            max_leaf_nodes=b.max_leaf_nodes,
            min_samples_leaf=b.min_samples_leaf,
            l2_regularization=b.l2_regularization,
            max_iter=b.max_iter,
            early_stopping=True,
            validation_fraction=0.1,
            n_iter_no_change=30,
            random_state=seed,
        )
        return head.fit(table.features[:, self.used], table.labels, sample_weight=weight)

    def _candidates(
        self,
        models: Sequence[Recommender],
        stats: ItemStats,
        rows: sp.csr_matrix,
        users: UserContext,
    ) -> tuple[Candidates, Scores]:
        """The candidates' features, and the first model's scores (the fallback order)."""
        scores = [mask_seen(m.score(rows, users).astype(np.float32), rows) for m in models]
        return candidates(scores, rows, users, stats, self.catalog, self.depth), scores[0]

    def score(self, rows: sp.csr_matrix, users: UserContext = NO_CONTEXT) -> Scores:
        """Candidates score the booster's probability, in [0, 1]; every other item ranks below
        them in the order of the first base model, squashed into [-2, -1)."""
        if not self.heads or self.stats is None:
            raise RuntimeError("fit the ranker first")
        rows = sp.csr_matrix(rows)
        out = np.empty(rows.shape, dtype=np.float32)
        for start in range(0, rows.shape[0], BATCH):
            stop = min(rows.shape[0], start + BATCH)
            batch_rows = select_rows(rows, np.arange(start, stop))
            batch_users = users.take(np.arange(start, stop))
            found, first = self._candidates(self.models, self.stats, batch_rows, batch_users)
            block = (-1.5 + np.arctan(first) / np.pi).astype(np.float32)  # -inf (seen) → -2
            if len(found.row):
                features = found.features[:, self.used]
                chance = [head.predict_proba(features)[:, 1] for head in self.heads]
                block[found.row, found.item] = np.mean(chance, axis=0)
            out[start:stop] = block
        return out
