"""Small interaction data with planted structure: users belong to taste clusters and mostly pick
items of their cluster, so a model that learns co-occurrence must beat popularity."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]

from recommender.data import Interactions


def clustered(
    *, users: int = 240, items: int = 90, clusters: int = 6, per_user: int = 14, seed: int = 0
) -> Interactions:
    rng = np.random.default_rng(seed)
    cluster_of_item = np.arange(items) % clusters
    popularity = 1.0 / np.arange(1, items + 1) ** 0.8  # a popular head all clusters share
    rows, cols, times = [], [], []
    for user in range(users):
        cluster = user % clusters
        weights = popularity * np.where(cluster_of_item == cluster, 12.0, 1.0)
        picked = rng.choice(items, size=per_user, replace=False, p=weights / weights.sum())
        rows += [user] * per_user
        cols += picked.tolist()
        times += (1_700_000_000 + rng.integers(0, 86_400 * 90, per_user)).tolist()
    shape = (users, items)
    matrix = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)
    stamps = sp.csr_matrix((np.asarray(times, np.float64), (rows, cols)), shape=shape)
    stamps.sort_indices()
    return Interactions(
        matrix=matrix,
        user_ids=np.asarray([f"u{u}" for u in range(users)]),
        item_ids=np.asarray([f"i{i}" for i in range(items)]),
        times=stamps,
    )


def write_csv(data: Interactions, path: Path, *, rating: bool = True) -> Path:
    """The interactions as a CSV (ratings 4 or 5 when `rating`), with timestamps."""
    coo = data.matrix.tocoo()
    assert data.times is not None
    times = np.asarray(data.times[coo.row, coo.col]).ravel()
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "item_id", "rating" if rating else "weight", "timestamp"])
        for k, (u, i) in enumerate(zip(coo.row, coo.col, strict=True)):
            writer.writerow([data.user_ids[u], data.item_ids[i], 4 + k % 2, int(times[k])])
    return path
