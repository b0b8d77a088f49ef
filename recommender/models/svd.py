"""PureSVD (Cremonesi et al., 2010): a truncated SVD of the interaction matrix."""

from __future__ import annotations

from typing import Self

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
from numpy.typing import NDArray
from sklearn.decomposition import TruncatedSVD  # type: ignore[import-untyped]

from recommender.models.base import NO_CONTEXT, Recommender, Scores, UserContext


class PureSVD(Recommender):
    """Items as `factors` right singular vectors V; a user's rows x fold in as x V^T, and score
    x V^T V: the projection of their history on the item space, so no retraining for new users."""

    name = "pure-svd"

    def __init__(self, factors: int = 64, seed: int = 0) -> None:
        self.factors = factors
        self.seed = seed
        self.components: NDArray[np.float32] = np.zeros((0, 0), dtype=np.float32)

    def fit(self, matrix: sp.csr_matrix, users: UserContext = NO_CONTEXT) -> Self:
        rank = max(1, min(self.factors, min(matrix.shape) - 1))
        svd = TruncatedSVD(n_components=rank, algorithm="randomized", random_state=self.seed)
        svd.fit(matrix.astype(np.float64))
        self.components = svd.components_.astype(np.float32)
        return self

    def fold_in(self, rows: sp.csr_matrix) -> NDArray[np.float32]:
        """The users' factors."""
        return np.asarray(rows @ self.components.T, dtype=np.float32)

    def score(self, rows: sp.csr_matrix, users: UserContext = NO_CONTEXT) -> Scores:
        return self.fold_in(rows) @ self.components
