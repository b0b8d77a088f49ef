"""The strong-generalisation split (Liang et al. 2018) and a given split's tuning copy."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]

from recommender.data import select_rows
from recommender.splits import given_split, strong_generalization
from tests.recommender.synthetic import clustered


def test_held_out_users_are_disjoint_and_split_80_20_over_the_training_catalog() -> None:
    data = clustered(users=200, items=60, per_user=10)
    split = strong_generalization(data, seed=3)
    validation, test = split.validation.users, split.test.users
    assert len(validation) == len(test) == 30  # 15% of the users each
    assert not set(validation) & set(test)
    assert split.train.shape == (200 - 60, len(split.items))
    # Every ranked item was seen in training.
    assert (np.diff(sp.csc_matrix(split.train).indptr) > 0).all()
    for held in (split.validation, split.test):
        original = select_rows(data.matrix, held.users)[:, split.items]
        # The fold-in and the targets partition each user's items: 10 items, 8 in and 2 out.
        assert ((held.rows + held.targets) != original).nnz == 0
        assert held.rows.multiply(held.targets).nnz == 0
        assert set(np.diff(held.targets.indptr)) == {2}
        assert held.context.times is not None
        assert held.context.times.nnz == held.rows.nnz


def test_the_same_seed_gives_the_same_split_and_another_seed_another() -> None:
    data = clustered(users=200, items=60, per_user=10)
    a, b, c = (strong_generalization(data, seed=s) for s in (1, 1, 2))
    assert np.array_equal(a.test.users, b.test.users)
    assert (a.test.targets != b.test.targets).nnz == 0
    assert not np.array_equal(a.test.users, c.test.users)


def test_a_given_split_tunes_on_a_copy_with_validation_items_hidden() -> None:
    data = clustered(users=100, items=40, per_user=10)
    split = given_split(data, data, seed=0)
    hidden = split.validation.targets
    assert hidden.nnz == 2 * len(split.validation.users)
    assert split.tuning.nnz == data.matrix.nnz - hidden.nnz
    assert split.train is data.matrix  # the final fit sees everything
    assert len(split.test.users) == 100
