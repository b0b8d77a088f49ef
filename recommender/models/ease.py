"""EASE (Steck, 2019): a closed-form item-item model, B = I - P diagMat(1 / diag(P)),
P = (X^T X + lambda I)^-1, with a zero diagonal so no item recommends itself."""

from __future__ import annotations

from typing import Self

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
from numpy.typing import NDArray
from scipy.linalg import lapack  # type: ignore[import-untyped]
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from recommender.models.base import NO_CONTEXT, ModelRefused, Recommender, Scores, UserContext

# EASE holds dense items x items matrices: 20,000 items are 3.2 GB each in float64 and the
# inversion needs two of them. Past this the model refuses rather than exhausting memory.
MAX_ITEMS = 20_000
# Multi-threaded OpenBLAS crashed factorising a 40,000-item Gram matrix on these machines while
# one thread worked (DESIGN.md's field notes); large factorisations therefore run on one thread.
SINGLE_THREAD_ITEMS = 5_000
BLOCK = 2048


class EASE(Recommender):
    name = "ease"

    def __init__(self, regularization: float = 500.0) -> None:
        self.regularization = regularization
        self.weights: NDArray[np.float32] = np.zeros((0, 0), dtype=np.float32)

    def fit(self, matrix: sp.csr_matrix, users: UserContext = NO_CONTEXT) -> Self:
        n_items = matrix.shape[1]
        if n_items > MAX_ITEMS:
            gigabytes = 2 * n_items * n_items * 8 / 1e9
            raise ModelRefused(
                f"EASE needs dense {n_items:,} x {n_items:,} matrices (about {gigabytes:.0f} GB); "
                f"it takes catalogs of up to {MAX_ITEMS:,} items"
            )
        x = sp.csr_matrix(matrix, dtype=np.float64)
        gram = np.asarray((x.T @ x).toarray(), dtype=np.float64)
        gram[np.diag_indices(n_items)] += self.regularization
        threads = 1 if n_items > SINGLE_THREAD_ITEMS else None
        with threadpool_limits(limits=threads, user_api="blas"):
            precision = _inverse_spd(gram)
        precision /= -np.diag(precision).copy()[None, :]  # in place: B_ij = -P_ij / P_jj
        precision[np.diag_indices(n_items)] = 0.0
        self.weights = precision.astype(np.float32)
        return self

    def score(self, rows: sp.csr_matrix, users: UserContext = NO_CONTEXT) -> Scores:
        return np.asarray(sp.csr_matrix(rows, dtype=np.float32) @ self.weights, dtype=np.float32)


def _inverse_spd(matrix: NDArray[np.float64]) -> NDArray[np.float64]:
    """The inverse of a symmetric positive definite matrix by Cholesky, overwriting its input
    (LAPACK potrf + potri) so the largest catalogs need one dense matrix, not three."""
    factor, info = lapack.dpotrf(matrix, lower=False, overwrite_a=True, clean=False)
    if info != 0:
        raise ModelRefused(f"EASE: the Gram matrix is not positive definite (LAPACK info {info})")
    inverse, info = lapack.dpotri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise ModelRefused(f"EASE: the Gram matrix could not be inverted (LAPACK info {info})")
    # potri fills only the upper triangle; mirror it block by block to avoid a full-size copy.
    n = inverse.shape[0]
    for start in range(0, n, BLOCK):
        stop = min(n, start + BLOCK)
        inverse[start:stop, :start] = inverse[:start, start:stop].T
        block = inverse[start:stop, start:stop]
        inverse[start:stop, start:stop] = np.triu(block) + np.triu(block, 1).T
    return np.asarray(inverse, dtype=np.float64)
