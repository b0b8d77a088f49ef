"""Ranking metrics over held-out items, with binary relevance.

`ranked[u]` is user u's top of the catalog (best first); `targets` holds u's held-out items.
Users without held-out items are left out of every mean.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
from numpy.typing import NDArray


def hits(ranked: NDArray[np.int64], targets: sp.csr_matrix) -> NDArray[np.bool_]:
    """hits[u, r] is True when the item at rank r of user u is one of u's held-out items."""
    relevant = np.asarray(targets[np.arange(ranked.shape[0])[:, None], ranked].todense()) > 0
    return np.asarray(relevant, dtype=np.bool_)


def held_out_counts(targets: sp.csr_matrix) -> NDArray[np.int64]:
    return np.asarray(np.diff(targets.indptr), dtype=np.int64)


def recall(
    found: NDArray[np.bool_], counts: NDArray[np.int64], k: int, *, capped: bool
) -> NDArray[np.float64]:
    """Per user: hits in the top k over min(k, n) when `capped` (Liang et al. 2018), else over n,
    the number of held-out items (the NGCF/LightGCN tables). NaN for users with n = 0."""
    denominator = np.minimum(k, counts) if capped else counts
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = found[:, :k].sum(axis=1) / np.where(denominator > 0, denominator, np.nan)
    return np.asarray(ratio, dtype=np.float64)


def ndcg(found: NDArray[np.bool_], counts: NDArray[np.int64], k: int) -> NDArray[np.float64]:
    """Per user: DCG of the top k over the ideal DCG of min(k, n) hits. NaN for n = 0."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (found[:, :k] * discounts[: found[:, :k].shape[1]]).sum(axis=1)
    ideal_cumulative = np.r_[0.0, np.cumsum(discounts)]
    ideal = ideal_cumulative[np.minimum(counts, k)]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = dcg / np.where(ideal > 0, ideal, np.nan)
    return np.asarray(ratio, dtype=np.float64)


def mean(values: NDArray[np.float64]) -> float:
    """The mean over users that have held-out items."""
    kept = values[~np.isnan(values)]
    return float(kept.mean()) if kept.size else 0.0
