"""What every model shares: the interface, the side facts about users and items, helpers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Self

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
from numpy.typing import NDArray

Scores = NDArray[np.float32]


class ModelRefused(ValueError):
    """The model will not fit this data (e.g. a catalog too large for it); the message says why."""


@dataclass(frozen=True)
class UserContext:
    """Facts about the users of a matrix besides their interactions, one entry per row; each is
    optional. At fit time they describe the training rows, at score time the scored rows."""

    group: NDArray[np.int64] | None = None  # e.g. loyalty tier index; -1 when unknown
    balance: NDArray[np.float64] | None = None  # points balance, for affordability
    text: Sequence[str] | None = None  # interests and profile traits
    times: sp.csr_matrix | None = None  # timestamp of each interaction, same pattern as the rows

    def take(self, rows: NDArray[np.int64]) -> UserContext:
        return replace(
            self,
            group=None if self.group is None else self.group[rows],
            balance=None if self.balance is None else self.balance[rows],
            text=None if self.text is None else [self.text[int(r)] for r in rows],
            times=None if self.times is None else sp.csr_matrix(self.times[rows]),
        )


NO_CONTEXT = UserContext()


@dataclass(frozen=True)
class Catalog:
    """Facts about the items, one entry per column; each is optional."""

    text: Sequence[str] | None = None  # title, description and tags
    cost: NDArray[np.float64] | None = None  # points cost, for affordability


NO_CATALOG = Catalog()


class Recommender(ABC):
    """Fit on a users x items matrix; score any rows over the same items.

    `score` takes rows that need not have been in the fit: that is the fold-in of a new user or of
    a known user's new interactions, with no retraining. Scores are comparable within a row only.
    """

    name: str
    # Seconds of this fit's work that were done earlier and reused (a ranker tried with several
    # booster settings builds its training table once); a fair fit time adds them back.
    reused_seconds: float = 0.0

    @abstractmethod
    def fit(self, matrix: sp.csr_matrix, users: UserContext = NO_CONTEXT) -> Self: ...

    @abstractmethod
    def score(self, rows: sp.csr_matrix, users: UserContext = NO_CONTEXT) -> Scores: ...


def item_counts(matrix: sp.csr_matrix) -> NDArray[np.float64]:
    """How many users interacted with each item."""
    return np.asarray((matrix > 0).sum(axis=0), dtype=np.float64).ravel()


def top_items(scores: NDArray[np.floating], k: int) -> NDArray[np.int64]:
    """Per row, the indices of the `k` highest scores, best first."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1).astype(np.int64)


def mask_seen(scores: Scores, rows: sp.csr_matrix) -> Scores:
    """Scores with each row's own items pushed below everything else (in place)."""
    coo = rows.tocoo()
    scores[coo.row, coo.col] = -np.inf
    return scores
