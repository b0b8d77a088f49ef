"""Offline quality of the production ranker against tuned baselines and implicit's ALS.

MovieLens-100k (ratings >= 4, as implicit feedback) under the strong-generalisation protocol of
Liang et al. 2018 (`recommender.evaluation`): disjoint validation and test users, each held-out
user folds in 80% of their items and the other 20% are predicted over the whole catalog. Every
model, `implicit`'s ALS and the ranker included, is tuned on the same validation users with the
same grid budget; the test users are measured once. The figure is the ranker's NDCG@100 against
the best peer's (every tuned baseline and ALS).

The data comes from `../shared/datasets/get-ml100k.sh` and is cached in .kinfolk/datasets.

Run: python3 -m uv run --frozen python -m benchmarks.recommender
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any, Self

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
from implicit.cpu.als import AlternatingLeastSquares  # type: ignore[import-untyped]
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from benchmarks._harness import ROOT, report
from recommender.evaluation import evaluate_interactions
from recommender.models.base import NO_CONTEXT, Recommender, Scores, UserContext
from recommender.tuning import ModelSpec

DATA = ROOT / ".kinfolk" / "datasets"
FETCH = ROOT.parent / "shared" / "datasets" / "get-ml100k.sh"
SEED = int(os.environ.get("KINFOLK_BENCH_SEED", "0"))

# implicit's ALS, tuned with the same budget as every other model (6 settings).
ALS_GRID: tuple[dict[str, Any], ...] = (
    {"factors": 64, "regularization": 1.0, "alpha": 1.0},
    {"factors": 64, "regularization": 10.0, "alpha": 1.0},
    {"factors": 64, "regularization": 50.0, "alpha": 1.0},
    {"factors": 128, "regularization": 10.0, "alpha": 1.0},
    {"factors": 128, "regularization": 50.0, "alpha": 2.0},
    {"factors": 32, "regularization": 5.0, "alpha": 5.0},
)


class ImplicitALS(Recommender):
    """implicit's ALS behind the evaluation's interface; held-out users fold in by its own least
    squares solve against the fixed item factors (`recalculate_user`)."""

    name = "implicit-als"

    def __init__(self, factors: int, regularization: float, alpha: float, seed: int) -> None:
        self.model = AlternatingLeastSquares(
            factors=factors,
            regularization=regularization,
            alpha=alpha,
            iterations=15,
            random_state=seed,
        )

    def fit(self, matrix: sp.csr_matrix, users: UserContext = NO_CONTEXT) -> Self:
        self.model.fit(sp.csr_matrix(matrix), show_progress=False)
        return self

    def score(self, rows: sp.csr_matrix, users: UserContext = NO_CONTEXT) -> Scores:
        factors = self.model.recalculate_user(np.arange(rows.shape[0]), sp.csr_matrix(rows))
        return np.asarray(factors @ self.model.item_factors.T, dtype=np.float32)


def movielens() -> Path:
    path = DATA / "ml-100k.csv"
    if not path.exists():
        subprocess.run(["bash", str(FETCH), str(DATA)], check=True)
    return path


def main() -> None:
    path = movielens()
    als = ModelSpec(
        "implicit-als",
        lambda p: ImplicitALS(p["factors"], p["regularization"], p["alpha"], seed=SEED),
        ALS_GRID,
    )
    started = time.perf_counter()
    # One BLAS thread, as implicit asks (and DESIGN.md's field notes advise for OpenBLAS), and
    # one OpenMP thread for the booster, as `kinfolk recommender evaluate` runs: on a shared
    # machine spinning threads made fits several times slower.
    with threadpool_limits(limits=1):
        result = evaluate_interactions(
            path, min_rating=4, seed=SEED, peers=[als], log=lambda line: print(line, flush=True)
        )
    print()
    for line in result.lines():
        print(line)
    ranker = result.outcomes["ranker"].metrics["ndcg@100"]
    peers = {n: o.metrics["ndcg@100"] for n, o in result.outcomes.items() if n != "ranker"}
    best = max(peers, key=lambda n: peers[n])
    print(
        f"\nranker NDCG@100 {ranker:.4f} / best peer ({best}) {peers[best]:.4f} = "
        f"{ranker / peers[best]:.4f}; implicit ALS {peers['implicit-als']:.4f}; "
        f"{time.perf_counter() - started:.0f} s in all",
        flush=True,
    )
    report(  # in hundredths, so the report's two decimals keep four significant digits
        "recommender",
        value=100 * ranker,
        unit="NDCG@100 x 100 (MovieLens-100k, ratings >= 4, strong generalisation)",
        anchor=f"best tuned peer: {best}",
        anchor_value=100 * peers[best],
        target="ratio >= 1 (ranker at least the best tuned baseline and implicit's ALS)",
        peers={n: round(v, 4) for n, v in peers.items()},
    )


if __name__ == "__main__":
    main()
