"""The evaluation splits: held-out users whose interactions are split into a part folded in and a
part to predict (strong generalisation, Liang et al. 2018), and a given train/test split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
from numpy.typing import NDArray

from recommender.data import DataError, Interactions, select_rows
from recommender.models.base import UserContext

# Liang et al. split a user 80/20 only when they have at least 5 items; fewer stay whole.
MIN_ITEMS_TO_SPLIT = 5
TARGET_SHARE = 0.2
# Validation and test users are each this share of the users, drawn from those with enough items.
HELDOUT_SHARE = 0.15
MIN_HELDOUT_USERS = 3
MIN_TRAINING_USERS = 10


@dataclass(frozen=True)
class HeldOut:
    """Users to evaluate: the rows the models see (`rows`, with their `context`) and the items to
    predict (`targets`), both over the training catalog."""

    rows: sp.csr_matrix
    targets: sp.csr_matrix
    context: UserContext
    users: NDArray[np.int64]  # their indices in the loaded data

    @property
    def evaluated(self) -> int:
        return int((np.diff(self.targets.indptr) > 0).sum())


@dataclass(frozen=True)
class Split:
    train: sp.csr_matrix  # what the models are finally fit on
    train_context: UserContext
    tuning: sp.csr_matrix  # what they are fit on while tuned against the validation users
    tuning_context: UserContext
    validation: HeldOut
    test: HeldOut
    items: NDArray[np.int64]  # the catalog: indices of the loaded items that are ranked
    # The protocol: "strong" folds in held-out users the models never saw; "given" evaluates the
    # training users themselves on their own test items.
    protocol: str


def split_rows(
    rows: sp.csr_matrix,
    rng: np.random.Generator,
    times: sp.csr_matrix | None = None,
    share: float = TARGET_SHARE,
    only: NDArray[np.int64] | None = None,
) -> tuple[sp.csr_matrix, sp.csr_matrix, sp.csr_matrix | None]:
    """Each row with at least 5 items (among `only`, when given) keeps a random int(share x n) of
    them as targets; the rest, and every other row, is what is folded in.
    Returns (fold-in, targets, fold-in times)."""
    rows = sp.csr_matrix(rows)
    rows.sort_indices()
    chosen = np.zeros(rows.nnz, dtype=np.bool_)
    counts = np.diff(rows.indptr)
    splittable = np.flatnonzero(counts >= MIN_ITEMS_TO_SPLIT)
    if only is not None:
        splittable = np.intersect1d(splittable, only)
    for user in splittable:
        n = int(counts[user])
        picked = rng.choice(n, size=int(share * n), replace=False)
        chosen[rows.indptr[user] + picked] = True
    fold_in = _keep(rows, ~chosen)
    targets = _keep(rows, chosen)
    fold_times = None
    if times is not None:
        times = sp.csr_matrix(times)
        times.sort_indices()
        if not (
            np.array_equal(times.indptr, rows.indptr)
            and np.array_equal(times.indices, rows.indices)
        ):
            raise ValueError("times must have the same pattern as the rows")
        fold_times = _keep(times, ~chosen)
    return fold_in, targets, fold_times


def _keep(matrix: sp.csr_matrix, keep: NDArray[np.bool_]) -> sp.csr_matrix:
    data = np.where(keep, matrix.data, 0)
    kept = sp.csr_matrix((data, matrix.indices.copy(), matrix.indptr.copy()), shape=matrix.shape)
    kept.eliminate_zeros()
    return kept


def _context(data: Interactions, users: NDArray[np.int64], items: NDArray[np.int64]) -> UserContext:
    times = None
    if data.times is not None:
        times = sp.csr_matrix(select_rows(data.times, users)[:, items])
    group = None if data.groups is None else data.groups[users]
    return UserContext(group=group, times=times)


def strong_generalization(data: Interactions, seed: int) -> Split:
    """Liang et al. 2018: disjoint validation and test users (each HELDOUT_SHARE of the users,
    drawn among those with at least 5 items), models trained on all other users, the catalog being
    the items those users touched; each held-out user is split 80/20 into fold-in and targets."""
    rng = np.random.default_rng(seed)
    counts = np.diff(data.matrix.indptr)
    eligible = np.flatnonzero(counts >= MIN_ITEMS_TO_SPLIT)
    per_set = max(MIN_HELDOUT_USERS, round(HELDOUT_SHARE * data.n_users))
    if len(eligible) < 2 * per_set or data.n_users - 2 * per_set < MIN_TRAINING_USERS:
        raise DataError(
            f"too few users for the protocol: {data.n_users} users, {len(eligible)} with at least "
            f"{MIN_ITEMS_TO_SPLIT} interactions; it holds out {per_set} validation and {per_set} "
            f"test users with at least {MIN_ITEMS_TO_SPLIT} interactions each and trains on at "
            f"least {MIN_TRAINING_USERS} others"
        )
    drawn = rng.permutation(eligible)
    validation_users = np.sort(drawn[:per_set])
    test_users = np.sort(drawn[per_set : 2 * per_set])
    train_users = np.setdiff1d(np.arange(data.n_users), drawn[: 2 * per_set])
    train_all = select_rows(data.matrix, train_users)
    items = np.flatnonzero(np.diff(sp.csc_matrix(train_all).indptr) > 0)
    train = sp.csr_matrix(train_all[:, items])

    def held_out(users: NDArray[np.int64]) -> HeldOut:
        context = _context(data, users, items)
        rows = sp.csr_matrix(select_rows(data.matrix, users)[:, items])
        fold_in, targets, times = split_rows(rows, rng, context.times)
        return HeldOut(
            rows=fold_in,
            targets=targets,
            context=UserContext(group=context.group, times=times),
            users=users,
        )

    train_context = _context(data, train_users, items)
    return Split(
        train=train,
        train_context=train_context,
        tuning=train,
        tuning_context=train_context,
        validation=held_out(validation_users),
        test=held_out(test_users),
        items=items,
        protocol="strong",
    )


def given_split(train: Interactions, test: Interactions, seed: int) -> Split:
    """A given split over the same users: test users are ranked by their training rows over the
    whole catalog. For tuning, validation users (HELDOUT_SHARE of the users with at least 5
    training items) have 20% of their training items hidden from the training matrix."""
    if not np.array_equal(train.user_ids, test.user_ids) or not np.array_equal(
        train.item_ids, test.item_ids
    ):
        raise ValueError("build both files over the same id maps")
    rng = np.random.default_rng(seed)
    counts = np.diff(train.matrix.indptr)
    eligible = np.flatnonzero(counts >= MIN_ITEMS_TO_SPLIT)
    per_set = max(MIN_HELDOUT_USERS, round(HELDOUT_SHARE * train.n_users))
    if len(eligible) < per_set or train.n_users < MIN_TRAINING_USERS:
        raise DataError(
            f"too few users for the protocol: {train.n_users} users, {len(eligible)} with at least "
            f"{MIN_ITEMS_TO_SPLIT} training interactions (tuning holds out {per_set} of them)"
        )
    items = np.arange(train.n_items)
    context = _context(train, np.arange(train.n_users), items)
    validation_users = np.sort(rng.permutation(eligible)[:per_set])
    tuning, targets, tuning_times = split_rows(
        train.matrix, rng, context.times, only=validation_users
    )
    tuning_context = UserContext(group=context.group, times=tuning_times)
    validation = HeldOut(
        rows=select_rows(tuning, validation_users),
        targets=select_rows(targets, validation_users),
        context=tuning_context.take(validation_users),
        users=validation_users,
    )
    tested = np.flatnonzero(np.diff(test.matrix.indptr) > 0)
    return Split(
        train=train.matrix,
        train_context=context,
        tuning=tuning,
        tuning_context=tuning_context,
        validation=validation,
        test=HeldOut(
            rows=select_rows(train.matrix, tested),
            targets=select_rows(test.matrix, tested),
            context=context.take(tested),
            users=tested,
        ),
        items=items,
        protocol="given",
    )
