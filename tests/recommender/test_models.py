"""The models on planted structure, their fold-in, and their limits."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp  # type: ignore[import-untyped]

from recommender.models.base import Catalog, ModelRefused, Recommender, UserContext
from recommender.models.content import ContentTFIDF
from recommender.models.ease import EASE, MAX_ITEMS
from recommender.models.knn import ItemKNN
from recommender.models.popular import MostPopular, PopularByGroup
from recommender.models.ranker import Base, Booster, Ranker
from recommender.models.svd import PureSVD
from recommender.splits import Split, strong_generalization
from recommender.tuning import STRONG_METRICS, measure
from tests.recommender.synthetic import clustered

NDCG = STRONG_METRICS[-1]
QUICK = Booster(max_iter=60)  # small data: a short booster keeps the tests fast


def test_ease_fold_in_of_a_training_user_equals_the_fitted_closed_form() -> None:
    data = clustered(users=120, items=40)
    x = data.matrix.toarray().astype(np.float64)
    model = EASE(regularization=30.0).fit(data.matrix)
    # Steck's closed form, computed independently.
    precision = np.linalg.inv(x.T @ x + 30.0 * np.eye(40))
    weights = np.eye(40) - precision / np.diag(precision)
    fitted = x @ weights
    user = 7
    folded = model.score(sp.csr_matrix(data.matrix[[user]]))
    np.testing.assert_allclose(folded[0], fitted[user], rtol=1e-4, atol=1e-5)
    assert np.allclose(np.diag(model.weights), 0.0)  # no item recommends itself


def test_pure_svd_fold_in_of_a_training_user_equals_its_fitted_reconstruction() -> None:
    data = clustered(users=120, items=40)
    model = PureSVD(factors=6, seed=1).fit(data.matrix)
    u, s, vt = np.linalg.svd(data.matrix.toarray().astype(np.float64), full_matrices=False)
    reconstruction = (u[:, :6] * s[:6]) @ vt[:6]
    folded = model.score(sp.csr_matrix(data.matrix[[3]]))
    np.testing.assert_allclose(folded[0], reconstruction[3], atol=1e-3)


def test_ease_refuses_a_catalog_over_its_limit_before_allocating() -> None:
    wide = sp.csr_matrix((2, MAX_ITEMS + 1), dtype=np.float32)
    with pytest.raises(ModelRefused, match="20,000 items"):
        EASE().fit(wide)


@pytest.fixture(scope="module")
def planted() -> tuple[Split, float]:
    split = strong_generalization(clustered(users=300, items=90, seed=3), seed=5)
    popular = measure(MostPopular().fit(split.train), split.test, [NDCG])[NDCG.name]
    return split, popular


@pytest.mark.parametrize(
    "model", [EASE(regularization=50.0), ItemKNN(neighbours=50), PureSVD(factors=8, seed=0)]
)
def test_collaborative_models_beat_popularity_on_planted_tastes(
    planted: tuple[Split, float], model: Recommender
) -> None:
    split, popular = planted
    fitted = model.fit(split.train, split.train_context)
    assert measure(fitted, split.test, [NDCG])[NDCG.name] > popular + 0.05


def test_ranker_beats_popularity_and_is_deterministic(planted: tuple[Split, float]) -> None:
    split, popular = planted
    bases = [
        Base("ease", lambda: EASE(regularization=50.0)),
        Base("item-knn", lambda: ItemKNN(neighbours=50)),
        Base("popular", MostPopular),
    ]

    def fitted() -> Ranker:
        return Ranker(bases, booster=QUICK, folds=3, bags=1, seed=11).fit(
            split.train, split.train_context
        )

    first, second = fitted(), fitted()
    assert measure(first, split.test, [NDCG])[NDCG.name] > popular + 0.05
    rows = split.test.rows[:5]
    context = split.test.context.take(np.arange(5))
    np.testing.assert_array_equal(first.score(rows, context), second.score(rows, context))
    assert "days_apart" in first.feature_names  # timestamps were given
    assert "affordability" not in first.feature_names  # balances and costs were not


def test_ranker_uses_side_features_when_given_and_tolerates_their_absence() -> None:
    data = clustered(users=150, items=40, seed=2)
    rng = np.random.default_rng(0)
    users = UserContext(
        group=rng.integers(0, 3, data.n_users),
        balance=rng.uniform(0, 500, data.n_users),
        times=data.times,
    )
    catalog = Catalog(cost=rng.uniform(50, 400, data.n_items))
    bases = [Base("ease", lambda: EASE(regularization=50.0)), Base("popular", MostPopular)]
    model = Ranker(bases, catalog, booster=QUICK, folds=3, bags=1).fit(data.matrix, users)
    assert {"group_popularity", "affordability", "days_since_seen"} <= set(model.feature_names)
    scores = model.score(sp.csr_matrix(data.matrix[:4]))  # no side facts for these users
    assert scores.shape == (4, data.n_items)
    assert np.isfinite(scores).all()


def test_popular_by_group_ranks_within_the_group_and_falls_back_to_overall() -> None:
    # Group 0 loves item 0, group 1 item 2; item 1 is liked by both (most popular overall).
    matrix = sp.csr_matrix(
        np.array([[1, 1, 0], [1, 1, 0], [1, 0, 0], [0, 1, 1], [0, 1, 1], [0, 0, 1]], np.float32)
    )
    groups = np.array([0, 0, 0, 1, 1, 1])
    model = PopularByGroup(shrinkage=0.0).fit(matrix, UserContext(group=groups))
    scores = model.score(sp.csr_matrix((3, 3)), UserContext(group=np.array([0, 1, -1])))
    assert scores[0].argmax() == 0
    assert scores[1].argmax() == 2
    assert scores[2].argmax() == 1  # unknown group: overall popularity


def test_content_model_serves_cold_start_members_from_their_interests() -> None:
    catalog = Catalog(
        text=[
            "rose eau de parfum fragrance",
            "citrus cologne fragrance",
            "hydrating serum skincare",
            "matte lipstick makeup",
        ]
    )
    model = ContentTFIDF(catalog).fit(sp.csr_matrix((1, 4), dtype=np.float32))
    history = sp.csr_matrix(np.array([[1, 0, 0, 0]], np.float32))
    assert model.score(history)[0][1] > model.score(history)[0][2]  # the other fragrance
    cold = sp.csr_matrix((1, 4), dtype=np.float32)
    scores = model.score(cold, UserContext(text=["skincare serum"]))
    assert scores[0].argmax() == 2
