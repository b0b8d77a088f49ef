"""Recall and NDCG on a case small enough to compute by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp  # type: ignore[import-untyped]

from recommender import metrics


def test_recall_and_ndcg_match_hand_computation() -> None:
    # User 0 holds out items {1, 4}; ranked [1, 2, 4, 0]: hits at ranks 1 and 3.
    # User 1 holds out {3}; ranked [0, 1, 2, 3]: a hit at rank 4.
    # User 2 holds out nothing and is left out of every mean.
    ranked = np.array([[1, 2, 4, 0], [0, 1, 2, 3], [0, 1, 2, 3]], dtype=np.int64)
    targets = sp.csr_matrix(np.array([[0, 1, 0, 0, 1], [0, 0, 0, 1, 0], [0, 0, 0, 0, 0]]))
    found = metrics.hits(ranked, targets)
    counts = metrics.held_out_counts(targets)
    assert found.tolist() == [
        [True, False, True, False],
        [False, False, False, True],
        [False, False, False, False],
    ]

    # Recall@2 over min(2, n): user 0 has 1 hit of min(2, 2) = 0.5; user 1 0 of 1.
    assert metrics.mean(metrics.recall(found, counts, 2, capped=True)) == pytest.approx(0.25)
    # Recall@4 over n: user 0 2/2, user 1 1/1.
    assert metrics.mean(metrics.recall(found, counts, 4, capped=False)) == pytest.approx(1.0)
    # Capping differs from over-n only when n > K: with K = 1, user 0 has 1 hit of min(1, 2).
    assert metrics.recall(found, counts, 1, capped=True)[0] == pytest.approx(1.0)
    assert metrics.recall(found, counts, 1, capped=False)[0] == pytest.approx(0.5)

    # NDCG@4: user 0 DCG = 1/log2(2) + 1/log2(4) = 1.5, ideal = 1 + 1/log2(3).
    user0 = 1.5 / (1 + 1 / math.log2(3))
    # user 1 DCG = 1/log2(5), ideal = 1.
    user1 = 1 / math.log2(5)
    per_user = metrics.ndcg(found, counts, 4)
    assert per_user[0] == pytest.approx(user0)
    assert per_user[1] == pytest.approx(user1)
    assert math.isnan(per_user[2])
    assert metrics.mean(per_user) == pytest.approx((user0 + user1) / 2)


def test_a_perfect_ranking_scores_one() -> None:
    ranked = np.array([[3, 1, 0, 2]], dtype=np.int64)
    targets = sp.csr_matrix(np.array([[0, 1, 0, 1]]))
    found = metrics.hits(ranked, targets)
    counts = metrics.held_out_counts(targets)
    assert metrics.ndcg(found, counts, 4)[0] == pytest.approx(1.0)
    assert metrics.recall(found, counts, 2, capped=True)[0] == pytest.approx(1.0)
