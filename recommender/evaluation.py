"""Offline evaluation, the standard of the field: full-catalog ranking.

- `evaluate_interactions`: strong generalisation (Liang et al. 2018, as used for EASE and iALS).
  Disjoint validation and test users; the models train on every other user; each held-out user
  folds in a random 80% of their items and the other 20% are predicted, ranking the whole catalog
  minus the folded-in items. Recall@20 and Recall@50 over min(K, held-out items), NDCG@100.
- `evaluate_given`: a given train/test split over the same users (the NGCF/LightGCN tables):
  rank the whole catalog minus each user's training items; Recall@20 over the user's test items,
  NDCG@20.

Every model, the production ranker included, is tuned on validation users with the same budget;
the test users are measured once, with the chosen settings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recommender import lineup
from recommender.data import DataError, Interactions, build, read_csv
from recommender.splits import Split, given_split, strong_generalization
from recommender.tuning import GIVEN_METRICS, STRONG_METRICS, ModelSpec, Outcome, evaluate_all

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass
class Report:
    dataset: str
    users: int
    items: int
    protocol: str  # "strong" or "given"
    outcomes: dict[str, Outcome]
    skipped: dict[str, str]  # model name -> why it did not run

    def as_json(self) -> dict[str, Any]:
        """`{"dataset", "users", "items", "models": {name: {metric: value, "train_seconds"}}}`."""
        return {
            "dataset": self.dataset,
            "users": self.users,
            "items": self.items,
            "models": {
                name: {
                    **{k: round(v, 6) for k, v in o.metrics.items()},
                    "train_seconds": round(o.train_seconds, 3),
                }
                for name, o in self.outcomes.items()
            },
        }

    def lines(self) -> list[str]:
        """A table for people: one row per model, with its chosen settings."""
        names = [m.name for m in (STRONG_METRICS if self.protocol == "strong" else GIVEN_METRICS)]
        head = f"{'model':<18}" + "".join(f"{n:>11}" for n in names) + f"{'train s':>10}  settings"
        rows = [
            f"{self.dataset}: {self.users:,} users, {self.items:,} items "
            f"({'strong generalisation' if self.protocol == 'strong' else 'given split'})",
            head,
        ]
        for name, o in self.outcomes.items():
            values = "".join(f"{o.metrics[n]:>11.4f}" for n in names)
            rows.append(f"{name:<18}{values}{o.train_seconds:>10.1f}  {dict(o.params)}")
        rows += [f"{name:<18}skipped: {why}" for name, why in self.skipped.items()]
        return rows


def evaluate_interactions(
    path: Path,
    *,
    min_rating: float | None = None,
    seed: int = 0,
    peers: Sequence[ModelSpec] = (),
    log: Log = _quiet,
) -> Report:
    """The strong-generalisation protocol on one interactions CSV. `peers` are models compared
    side by side (tuned and measured alike) that the ranker does not use."""
    data = build(read_csv(path, min_rating=min_rating))
    split = strong_generalization(data, seed)
    log(
        f"{path.name}: {data.n_users:,} users, {data.n_items:,} items, {data.matrix.nnz:,} "
        f"interactions; {len(split.validation.users)} validation and {len(split.test.users)} test "
        f"users, {split.train.shape[0]:,} training users, {split.train.shape[1]:,} items ranked"
    )
    return _run(split, data, path.stem, seed, peers, log)


def evaluate_given(
    train_path: Path,
    test_path: Path,
    *,
    min_rating: float | None = None,
    seed: int = 0,
    peers: Sequence[ModelSpec] = (),
    log: Log = _quiet,
) -> Report:
    """The given-split protocol: the same users in both files."""
    train_rows = read_csv(train_path, min_rating=min_rating)
    test_rows = read_csv(test_path, min_rating=min_rating)
    missing = np.setdiff1d(np.unique(test_rows.users), np.unique(train_rows.users))
    if len(missing):
        raise DataError(
            f"{len(missing):,} users of {test_path.name} have no interactions in "
            f"{train_path.name} (e.g. {missing[0]!r}); the given-split protocol needs the same "
            "users in both files"
        )
    users = np.unique(train_rows.users)
    items = np.union1d(train_rows.items, test_rows.items)
    train = build(train_rows, user_ids=users, item_ids=items)
    test = build(test_rows, user_ids=users, item_ids=items)
    split = given_split(train, test, seed)
    log(
        f"{train_path.name} / {test_path.name}: {train.n_users:,} users, {train.n_items:,} items, "
        f"{train.matrix.nnz:,} training and {test.matrix.nnz:,} test interactions; "
        f"{len(split.test.users):,} users tested"
    )
    return _run(split, train, train_path.stem, seed, peers, log)


def _run(
    split: Split,
    data: Interactions,
    name: str,
    seed: int,
    peers: Sequence[ModelSpec],
    log: Log,
) -> Report:
    specs = lineup.baselines(seed=seed, groups=data.groups is not None)
    outcomes, skipped = evaluate_all([*specs, *peers], split, log)
    if not any(spec.name in outcomes for spec in specs):
        raise DataError("no baseline could be fit, so there is nothing for the ranker to rank")
    ranker = lineup.ranker(specs, outcomes, seed=seed, protocol=split.protocol)
    ranked, refused = evaluate_all([ranker], split, log)
    return Report(
        dataset=name,
        users=data.n_users,
        items=data.n_items,
        protocol=split.protocol,
        outcomes={**outcomes, **ranked},
        skipped={**skipped, **refused},
    )
