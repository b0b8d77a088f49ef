"""The ranker's features: for a user's candidate items, each base model's view of them and
whatever side facts are known (popularity, group, affordability, recency).

A side fact missing at score time (say a user without a balance) becomes NaN, which gradient
boosting routes like any value it learned for missing data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
from numpy.typing import NDArray

from recommender.models.base import Catalog, Scores, UserContext, item_counts, top_items

DAY = 86_400.0
# Periods for popularity over time (equal numbers of interactions each).
PERIODS = 24


@dataclass(frozen=True)
class ItemStats:
    """What the training matrix says about each item, beyond any one model."""

    popularity: NDArray[np.float64]  # share of users who interacted with it
    by_group: NDArray[np.float64] | None  # share within each user group, groups x items
    last_seen: NDArray[np.float64] | None  # latest interaction time (NaN when never seen)
    mean_time: NDArray[np.float64] | None  # mean interaction time (NaN when never seen)
    now: float  # the latest time in the training data
    first_seen: NDArray[np.float64] | None = None  # earliest interaction time (NaN: never)
    # Popularity over time: the share of each period's interactions that went to each item, the
    # periods cut at `period_edges` so each holds about as many interactions.
    period_edges: NDArray[np.float64] | None = None
    by_period: NDArray[np.float32] | None = None

    @classmethod
    def of(cls, matrix: sp.csr_matrix, users: UserContext) -> ItemStats:
        counts = item_counts(matrix)
        popularity = counts / max(1, matrix.shape[0])
        by_group = None
        if users.group is not None and (users.group >= 0).any():
            groups = users.group
            known = groups >= 0
            member = sp.csr_matrix(
                (np.ones(int(known.sum())), (groups[known], np.flatnonzero(known))),
                shape=(int(groups.max()) + 1, matrix.shape[0]),
            )
            sizes = np.asarray(member.sum(axis=1), dtype=np.float64)
            binary = (matrix > 0).astype(np.float64)
            by_group = np.asarray((member @ binary).todense()) / np.maximum(sizes, 1.0)
        if users.times is None or not users.times.nnz:
            return cls(popularity, by_group, None, None, 0.0)
        times = sp.csc_matrix(users.times)
        seen = np.diff(times.indptr) > 0
        starts = times.indptr[:-1][seen]
        last_seen = np.full(matrix.shape[1], np.nan)
        last_seen[seen] = np.maximum.reduceat(times.data, starts)
        first_seen = np.full(matrix.shape[1], np.nan)
        first_seen[seen] = np.minimum.reduceat(times.data, starts)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_time = np.asarray(times.sum(axis=0)).ravel() / np.diff(times.indptr)
        edges = np.unique(np.quantile(times.data, np.linspace(0, 1, PERIODS + 1)[1:-1]))
        period = np.searchsorted(edges, times.data, side="right")
        item = np.repeat(np.arange(matrix.shape[1]), np.diff(times.indptr))
        counts = np.zeros((len(edges) + 1, matrix.shape[1]), dtype=np.float64)
        np.add.at(counts, (period, item), 1.0)
        by_period = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
        return cls(
            popularity,
            by_group,
            last_seen,
            mean_time,
            float(times.data.max()),
            first_seen=first_seen,
            period_edges=edges,
            by_period=by_period.astype(np.float32),
        )


@dataclass(frozen=True)
class Candidates:
    """For a batch of users: which (row, item) pairs are candidates and their features."""

    row: NDArray[np.int64]
    item: NDArray[np.int64]
    features: NDArray[np.float32]


def feature_names(models: Sequence[str]) -> list[str]:
    names = []
    for m in models:
        names += [f"{m}:score", f"{m}:rank", f"{m}:relative"]
    return [
        *names,
        "popularity",
        "user_items",
        "user_mainstream",
        "group_popularity",
        "affordability",
        "days_since_seen",
        "days_apart",
        "days_available",
        "popularity_then",
    ]


def candidates(
    scores: Sequence[Scores],
    rows: sp.csr_matrix,
    users: UserContext,
    stats: ItemStats,
    catalog: Catalog,
    depth: int,
) -> Candidates:
    """The union of each model's top `depth` unseen items per row, with their features. `scores`
    are the base models' scores for `rows`, already masked where the row has the item."""
    n_rows, n_items = rows.shape
    depth = min(depth, n_items)
    chosen = np.zeros((n_rows, n_items), dtype=np.bool_)
    ranks = []
    for s in scores:
        top = top_items(s, depth)
        rank = np.full((n_rows, n_items), depth, dtype=np.float32)
        np.put_along_axis(rank, top, np.arange(depth, dtype=np.float32)[None, :], axis=1)
        ranks.append(rank)
        np.put_along_axis(chosen, top, True, axis=1)
    seen = rows.tocoo()
    chosen[seen.row, seen.col] = False  # a row with fewer unseen items than `depth`
    row, item = np.nonzero(chosen)
    columns: list[NDArray[np.float64] | NDArray[np.float32]] = []
    for s, rank in zip(scores, ranks, strict=True):
        best = s.max(axis=1)  # over unseen items: seen ones are -inf
        value = s[row, item]
        columns += [value, rank[row, item], value / np.where(best > 0, best, np.nan)[row]]
    columns.append(stats.popularity[item])
    user_items = np.diff(rows.indptr).astype(np.float64)
    columns.append(user_items[row])
    with np.errstate(invalid="ignore", divide="ignore"):
        # How mainstream the user is: the mean popularity of what they have.
        mainstream = (sp.csr_matrix(rows > 0, dtype=np.float64) @ stats.popularity) / user_items
    columns.append(mainstream[row])
    columns.append(_group_popularity(stats, users, row, item))
    columns.append(_affordability(catalog, users, row, item))
    columns += _recency(stats, users, row, item)
    with np.errstate(invalid="ignore", divide="ignore"):
        features = np.column_stack(columns).astype(np.float32)
    return Candidates(row=row.astype(np.int64), item=item.astype(np.int64), features=features)


def _nan(n: int) -> NDArray[np.float64]:
    return np.full(n, np.nan)


def _group_popularity(
    stats: ItemStats, users: UserContext, row: NDArray[np.intp], item: NDArray[np.intp]
) -> NDArray[np.float64]:
    if stats.by_group is None or users.group is None:
        return _nan(len(row))
    group = users.group[row]
    known = (group >= 0) & (group < stats.by_group.shape[0])
    out = _nan(len(row))
    out[known] = stats.by_group[group[known], item[known]]
    return out


def _affordability(
    catalog: Catalog, users: UserContext, row: NDArray[np.intp], item: NDArray[np.intp]
) -> NDArray[np.float64]:
    """Balance over cost: at least 1 means the member can redeem it now."""
    if catalog.cost is None or users.balance is None:
        return _nan(len(row))
    cost = catalog.cost[item]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cost > 0, users.balance[row] / cost, np.inf).clip(max=100.0)


def _recency(
    stats: ItemStats, users: UserContext, row: NDArray[np.intp], item: NDArray[np.intp]
) -> list[NDArray[np.float64]]:
    """Time features: days since anyone last interacted with the item; days from the item's mean
    interaction time to the user's (signed); days between the item's first interaction and the
    user's last (was it around while they were active?); and the item's share of interactions in
    the period of the user's latest activity (what was popular then). Tastes and catalogs drift."""
    if stats.last_seen is None or stats.mean_time is None or stats.first_seen is None:
        return [_nan(len(row)) for _ in range(4)]
    since = (stats.now - stats.last_seen[item]) / DAY
    if users.times is None:
        return [since, *(_nan(len(row)) for _ in range(3))]
    times = sp.csr_matrix(users.times)
    counts = np.diff(times.indptr)
    has = counts > 0
    user_mean = _nan(times.shape[0])
    user_last = _nan(times.shape[0])
    user_mean[has] = np.add.reduceat(times.data, times.indptr[:-1][has]) / counts[has]
    user_last[has] = np.maximum.reduceat(times.data, times.indptr[:-1][has])
    apart = (user_mean[row] - stats.mean_time[item]) / DAY
    available = (user_last[row] - stats.first_seen[item]) / DAY
    then = _nan(len(row))
    if stats.period_edges is not None and stats.by_period is not None:
        period = np.searchsorted(stats.period_edges, user_last, side="right")
        known = has[row]
        then[known] = stats.by_period[period[row[known]], item[known]]
    return [since, apart, available, then]
