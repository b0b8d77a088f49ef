"""Most popular items, overall and within a user's group (e.g. their loyalty tier)."""

from __future__ import annotations

from typing import Self

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
from numpy.typing import NDArray

from recommender.models.base import NO_CONTEXT, Recommender, Scores, UserContext, item_counts


class MostPopular(Recommender):
    """Every user gets the items most users interacted with: the baseline to beat."""

    name = "popular"

    def __init__(self) -> None:
        self.popularity: NDArray[np.float32] = np.zeros(0, dtype=np.float32)

    def fit(self, matrix: sp.csr_matrix, users: UserContext = NO_CONTEXT) -> Self:
        counts = item_counts(matrix)
        self.popularity = (counts / max(1, matrix.shape[0])).astype(np.float32)
        return self

    def score(self, rows: sp.csr_matrix, users: UserContext = NO_CONTEXT) -> Scores:
        return np.tile(self.popularity, (rows.shape[0], 1))


class PopularByGroup(Recommender):
    """The items most popular within the user's group, shrunk towards overall popularity so a
    small group (a new top tier) does not rank by a handful of members; users without a group get
    overall popularity."""

    name = "popular-by-group"

    def __init__(self, shrinkage: float = 10.0) -> None:
        self.shrinkage = shrinkage
        self.overall: NDArray[np.float32] = np.zeros(0, dtype=np.float32)
        self.by_group: NDArray[np.float32] = np.zeros((0, 0), dtype=np.float32)

    def fit(self, matrix: sp.csr_matrix, users: UserContext = NO_CONTEXT) -> Self:
        if users.group is None:
            raise ValueError("popular-by-group needs each training user's group")
        binary = (matrix > 0).astype(np.float64)
        n_users = max(1, matrix.shape[0])
        overall = item_counts(matrix) / n_users
        groups = users.group
        n_groups = int(groups.max()) + 1 if (groups >= 0).any() else 0
        known = groups >= 0
        # One sparse product sums each group's rows: a (groups x users) indicator times the matrix.
        member = sp.csr_matrix(
            (np.ones(int(known.sum())), (groups[known], np.flatnonzero(known))),
            shape=(n_groups, matrix.shape[0]),
        )
        counts = np.asarray((member @ binary).todense(), dtype=np.float64)
        sizes = np.asarray(member.sum(axis=1), dtype=np.float64)
        self.by_group = ((counts + self.shrinkage * overall) / (sizes + self.shrinkage)).astype(
            np.float32
        )
        self.overall = overall.astype(np.float32)
        return self

    def score(self, rows: sp.csr_matrix, users: UserContext = NO_CONTEXT) -> Scores:
        out = np.tile(self.overall, (rows.shape[0], 1))
        if users.group is not None:
            group = users.group
            known = (group >= 0) & (group < self.by_group.shape[0])
            out[known] = self.by_group[group[known]]
        return out
