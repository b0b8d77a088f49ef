"""The churn model itself: a gradient-boosted classifier on the member's history as of a cutoff,
judged on held-out members against the same learner on recency alone.

Gradient boosting, because the signal is in interactions a linear model misses (60 days
without a purchase is alarming for a member who buys monthly and normal for one who buys twice
a year), it needs no scaling, and it takes missing values (never bought) as they are. Its log
loss keeps probabilities calibrated enough for a Brier score to mean something.

CPU-bound: the service runs `fit` in a thread (`off_loop`). scikit-learn is imported here and
the service imports this module; the jobs import the service only when they run, so processes
that merely name the jobs (HTTP) never load it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import joblib  # type: ignore[import-untyped]
import numpy as np
from numpy.typing import NDArray
from sklearn.ensemble import HistGradientBoostingClassifier  # type: ignore[import-untyped]
from sklearn.metrics import brier_score_loss, roc_auc_score  # type: ignore[import-untyped]
from sklearn.model_selection import train_test_split  # type: ignore[import-untyped]
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

# Members held out of the fit to judge it, stratified so both outcomes are in proportion.
HOLDOUT_SHARE = 0.25
SEED = 0
# The naive baseline: how well recency alone tells churners from stayers.
BASELINE_FEATURE = "days_since_purchase"

Matrix = NDArray[np.float64]
Labels = NDArray[np.int8]


def _classifier() -> Any:
    # Small trees, stopped when a validation share of the training members stops improving:
    # a few dozen rounds on a churn table, so a fit takes well under a second per 10,000 members.
    return HistGradientBoostingClassifier(
        learning_rate=0.1,
        max_iter=200,
        max_leaf_nodes=15,
        min_samples_leaf=40,
        l2_regularization=1.0,
        early_stopping=True,
        validation_fraction=0.15,
        n_iter_no_change=10,
        random_state=SEED,
    )


@dataclass(frozen=True)
class Fitted:
    estimator: Any  # a fitted HistGradientBoostingClassifier (class 1 = churned)
    metrics: dict[str, Any]
    train_members: int
    test_members: int


def _quality(labels: Labels, probabilities: Matrix) -> dict[str, float]:
    return {
        "roc_auc": round(float(roc_auc_score(labels, probabilities)), 4),
        "brier": round(float(brier_score_loss(labels, probabilities)), 4),
    }


def fit(features: Matrix, churned: Labels, names: tuple[str, ...]) -> Fitted:
    """Fit on all but a stratified holdout and measure on it. The stored estimator is the one
    measured: the figures describe exactly what scores the members."""
    train_x, test_x, train_y, test_y = train_test_split(
        features, churned, test_size=HOLDOUT_SHARE, stratify=churned, random_state=SEED
    )
    column = names.index(BASELINE_FEATURE)
    # One OpenMP thread: the job shares its machine (and, in `kinfolk dev`, its process) with
    # other work, and spinning threads there made fits several times slower, not faster.
    with threadpool_limits(limits=1, user_api="openmp"):
        estimator = _classifier().fit(train_x, train_y)
        predicted = estimator.predict_proba(test_x)[:, 1]
        baseline = _classifier().fit(train_x[:, [column]], train_y)
        baseline_predicted = baseline.predict_proba(test_x[:, [column]])[:, 1]

    train_rate = float(train_y.mean())
    metrics: dict[str, Any] = {
        **_quality(test_y, predicted),
        "base_rate": round(float(test_y.mean()), 4),
        "train_base_rate": round(train_rate, 4),
        "baseline": {
            "name": "recency alone",
            "features": [BASELINE_FEATURE],
            **_quality(test_y, baseline_predicted),
        },
        # The Brier score of answering the training churn rate for everyone: no skill at all.
        "brier_base_rate": round(float(np.mean((train_rate - test_y) ** 2)), 4),
        "model": "HistGradientBoostingClassifier",
    }
    return Fitted(estimator, metrics, len(train_y), len(test_y))


def predict(estimator: Any, features: Matrix) -> Matrix:
    """Churn probabilities, one per row."""
    with threadpool_limits(limits=1, user_api="openmp"):
        return np.asarray(estimator.predict_proba(features)[:, 1], dtype=np.float64)


def to_bytes(estimator: Any) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer, compress=3)
    return buffer.getvalue()


def from_bytes(data: bytes) -> Any:
    estimator = joblib.load(io.BytesIO(data))
    if not isinstance(estimator, HistGradientBoostingClassifier):
        raise TypeError("the artifact is not a churn model")
    return estimator
