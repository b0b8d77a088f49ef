"""Item-based k-nearest neighbours: cosine similarity between item columns, top k per item."""

from __future__ import annotations

from typing import Self

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]

from recommender.models.base import NO_CONTEXT, Recommender, Scores, UserContext, top_items

# Items per block when building the similarities: a dense block is CHUNK x items float32, so
# 40,000 items cost about 160 MB at a time instead of the full 6.4 GB matrix.
CHUNK = 1024


class ItemKNN(Recommender):
    """score(u, i) = sum over u's items j of sim(j, i), keeping each item's `neighbours` most
    similar items; `shrink` damps similarities built on few co-occurrences."""

    name = "item-knn"

    def __init__(self, neighbours: int = 100, shrink: float = 0.0) -> None:
        self.neighbours = neighbours
        self.shrink = shrink
        self.similarity = sp.csr_matrix((0, 0), dtype=np.float32)

    def fit(self, matrix: sp.csr_matrix, users: UserContext = NO_CONTEXT) -> Self:
        n_items = matrix.shape[1]
        columns = sp.csc_matrix(matrix, dtype=np.float32)
        norms = np.sqrt(np.asarray(columns.multiply(columns).sum(axis=0)).ravel())
        norms[norms == 0] = 1.0
        k = max(1, min(self.neighbours, n_items - 1))
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        transposed = columns.T.tocsr()
        for start in range(0, n_items, CHUNK):
            stop = min(n_items, start + CHUNK)
            block = (transposed[start:stop] @ columns).toarray()
            block /= norms[start:stop, None] * norms[None, :] + self.shrink
            block[np.arange(stop - start), np.arange(start, stop)] = 0.0  # not its own neighbour
            best = top_items(block, k)
            values = np.take_along_axis(block, best, axis=1)
            keep = values > 0
            rows.append(np.repeat(np.arange(start, stop), k).reshape(-1, k)[keep])
            cols.append(best[keep])
            vals.append(values[keep])
        self.similarity = sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(n_items, n_items),
            dtype=np.float32,
        )
        return self

    def score(self, rows: sp.csr_matrix, users: UserContext = NO_CONTEXT) -> Scores:
        return np.asarray((rows @ self.similarity).toarray(), dtype=np.float32)
