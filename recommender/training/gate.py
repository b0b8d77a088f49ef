"""Judging a new version against the serving one, on members neither was trained on.

A fixed tenth of the brand's members (by a hash of their id) are evaluation members: training
never sees their rows, so every version can be measured on them fairly, old and new alike. Each
evaluation member with at least five items folds in a fixed 80% and the version ranks the whole
catalog for them (strong generalisation, as the offline evaluation does); the 20% are the truth.
They still get recommendations: the fold-in scores them like any member.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
from numpy.typing import NDArray

from recommender import metrics
from recommender.models.base import mask_seen, top_items
from recommender.splits import MIN_ITEMS_TO_SPLIT, split_rows
from recommender.training.model import ProductionModel
from recommender.training.repository import MemberRow
from recommender.training.snapshot import Snapshot

# The share of members kept out of training to judge versions on (a byte of a hash below it).
EVALUATION_SHARE = 0.10
# At most this many evaluation members are scored: enough for a stable NDCG, cheap to run.
MAX_EVALUATED = 5_000
# A new version may score this much lower (relative) and still count as "not worse": retraining
# on a day's more data moves NDCG by about this much without the model being any different.
TOLERANCE = 0.01
# Fewer evaluated members than this and the figures are noise: the gate does not judge.
MIN_EVALUATED = 10
DEPTH = 100


def is_evaluation_member(member_id: uuid.UUID) -> bool:
    digest = hashlib.blake2b(member_id.bytes, digest_size=2).digest()
    return int.from_bytes(digest, "big") < EVALUATION_SHARE * 65_536


@dataclass(frozen=True)
class HeldOut:
    """Evaluation members: their folded-in items and their hidden ones, as item ids."""

    members: list[MemberRow]
    fold_in: list[list[tuple[str, float]]]  # (item id, weight) per member
    targets: list[set[str]]

    def __len__(self) -> int:
        return len(self.members)


def held_out(snapshot: Snapshot, evaluation: NDArray[np.bool_], seed: int = 0) -> HeldOut:
    """Split the evaluation members with enough items 80/20 (a fixed draw per snapshot)."""
    rows = np.flatnonzero(evaluation)
    matrix = sp.csr_matrix(snapshot.matrix[rows])
    counts = np.diff(matrix.indptr)
    eligible = np.flatnonzero(counts >= MIN_ITEMS_TO_SPLIT)[:MAX_EVALUATED]
    matrix = sp.csr_matrix(matrix[eligible])
    fold_in, targets, _ = split_rows(matrix, np.random.default_rng(seed))
    ids = snapshot.catalog.ids
    members = [snapshot.members[int(rows[e])] for e in eligible]
    kept: list[list[tuple[str, float]]] = []
    hidden: list[set[str]] = []
    for position in range(len(eligible)):
        start, stop = fold_in.indptr[position], fold_in.indptr[position + 1]
        kept.append(
            [
                (str(ids[i]), float(w))
                for i, w in zip(fold_in.indices[start:stop], fold_in.data[start:stop], strict=True)
            ]
        )
        start, stop = targets.indptr[position], targets.indptr[position + 1]
        hidden.append({str(ids[i]) for i in targets.indices[start:stop]})
    return HeldOut(members, kept, hidden)


def measure(model: ProductionModel, members: HeldOut) -> dict[str, float] | None:
    """NDCG@100 and Recall@20/50 of a version on the held-out members; None if too few."""
    if len(members) < MIN_EVALUATED:
        return None
    rows = _rows(model, members.fold_in)
    scores = mask_seen(model.score(rows, model.context(members.members)).copy(), rows)
    ranked = top_items(scores, min(DEPTH, model.n_items))
    found = np.zeros((len(members), DEPTH), dtype=np.bool_)
    for user, items in enumerate(ranked):
        hits = [str(model.item_ids[i]) in members.targets[user] for i in items]
        found[user, : len(hits)] = hits
    # Targets the version does not know still count: it could not find them.
    counts = np.array([len(t) for t in members.targets], dtype=np.int64)
    return {
        "ndcg@100": metrics.mean(metrics.ndcg(found, counts, 100)),
        "recall@20": metrics.mean(metrics.recall(found, counts, 20, capped=True)),
        "recall@50": metrics.mean(metrics.recall(found, counts, 50, capped=True)),
        "evaluated_members": float(len(members)),
    }


def _rows(model: ProductionModel, fold_in: Sequence[list[tuple[str, float]]]) -> sp.csr_matrix:
    indptr, indices, data = [0], [], []
    for items in fold_in:
        for item_id, weight in items:
            position = model.index.get(item_id)
            if position is not None:
                indices.append(position)
                data.append(weight)
        indptr.append(len(indices))
    return sp.csr_matrix(
        (np.array(data, dtype=np.float32), np.array(indices, dtype=np.int64), indptr),
        shape=(len(fold_in), model.n_items),
    )


def not_worse(new: dict[str, float] | None, serving: dict[str, float] | None) -> bool:
    """Whether a new version may replace the serving one. Without figures for both (a brand's
    first model, or too few evaluation members to tell) there is nothing to hold it back."""
    if new is None or serving is None:
        return True
    return new["ndcg@100"] >= serving["ndcg@100"] * (1 - TOLERANCE)
