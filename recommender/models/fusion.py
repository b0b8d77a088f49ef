"""Reciprocal rank fusion (Cormack et al., 2009): each model votes 1 / (k + rank) for every item
it ranks, and the votes add up. It needs no training data of its own, so it combines models
where there are too few members to learn a blend from (a new, small brand)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]

from recommender.models.base import NO_CONTEXT, Recommender, Scores, UserContext

# The constant of the original paper, which it found robust across collections.
K = 60.0


class RankFusion(Recommender):
    name = "fusion"

    def __init__(self, models: Sequence[Recommender], k: float = K) -> None:
        if not models:
            raise ValueError("rank fusion needs at least one model")
        self.models = list(models)
        self.k = k

    def fit(self, matrix: sp.csr_matrix, users: UserContext = NO_CONTEXT) -> Self:
        for model in self.models:
            model.fit(matrix, users)
        return self

    def score(self, rows: sp.csr_matrix, users: UserContext = NO_CONTEXT) -> Scores:
        total = np.zeros(rows.shape, dtype=np.float32)
        for model in self.models:
            scores = model.score(rows, users)
            # Rank 1 is the best; ties share the order argsort gives them.
            ranks = np.empty(scores.shape, dtype=np.float32)
            order = np.argsort(-scores, axis=1, kind="stable")
            np.put_along_axis(
                ranks, order, np.arange(1, scores.shape[1] + 1, dtype=np.float32)[None, :], axis=1
            )
            total += 1.0 / (self.k + ranks)
        return total
