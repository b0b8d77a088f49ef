"""The models the evaluation compares and the settings each may try (GRID_BUDGET at most)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Literal

from recommender.models.base import Catalog, Recommender
from recommender.models.content import ContentTFIDF
from recommender.models.ease import EASE
from recommender.models.knn import ItemKNN
from recommender.models.popular import MostPopular, PopularByGroup
from recommender.models.ranker import Base, Booster, Prepared, Ranker
from recommender.models.svd import PureSVD
from recommender.tuning import ModelSpec, Outcome, Params


def baselines(
    *, seed: int, groups: bool = False, catalog: Catalog | None = None
) -> list[ModelSpec]:
    """Most popular (and per group when users have groups), item-kNN, PureSVD, EASE, and the
    content model when items have text."""
    specs = [
        ModelSpec("popular", lambda p: MostPopular()),
        ModelSpec(
            "item-knn",
            lambda p: ItemKNN(neighbours=p["neighbours"], shrink=p["shrink"]),
            [
                {"neighbours": n, "shrink": s}
                for n, s in ((25, 0.0), (50, 0.0), (100, 0.0), (200, 0.0), (50, 10.0), (100, 10.0))
            ],
        ),
        ModelSpec(
            "pure-svd",
            lambda p: PureSVD(factors=p["factors"], seed=seed),
            [{"factors": f} for f in (8, 16, 32, 64, 128, 256)],
        ),
        ModelSpec(
            "ease",
            lambda p: EASE(regularization=p["regularization"]),
            [{"regularization": r} for r in (50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0)],
        ),
    ]
    if groups:
        specs.insert(
            1,
            ModelSpec(
                "popular-by-group",
                lambda p: PopularByGroup(shrinkage=p["shrinkage"]),
                [{"shrinkage": s} for s in (0.0, 10.0, 100.0)],
            ),
        )
    if catalog is not None and catalog.text is not None:
        text_catalog = catalog

        def content(p: Params) -> ContentTFIDF:
            return ContentTFIDF(text_catalog, text_weight=p["text_weight"])

        specs.append(
            ModelSpec("content", content, [{"text_weight": w} for w in (0.0, 0.5, 1.0, 2.0)])
        )
    return specs


# The ranker's booster settings tried on the validation users (within the same budget).
RANKER_GRID: tuple[Params, ...] = (
    {},
    {"learning_rate": 0.1, "max_leaf_nodes": 15, "min_samples_leaf": 100},
    {"learning_rate": 0.05, "max_leaf_nodes": 63, "min_samples_leaf": 20},
    {"learning_rate": 0.02, "min_samples_leaf": 200, "max_iter": 800},
)


def ranker(
    specs: Sequence[ModelSpec],
    tuned: Mapping[str, Outcome],
    *,
    seed: int,
    protocol: str,
    catalog: Catalog | None = None,
) -> ModelSpec:
    """The production ranker over the tuned baselines (each with its chosen settings), the best
    on validation first: it orders whatever falls outside the candidates."""
    chosen = sorted(
        (spec for spec in specs if spec.name in tuned),
        key=lambda spec: -tuned[spec.name].validation,
    )
    bases = [Base(spec.name, _frozen(spec, tuned[spec.name].params)) for spec in chosen]
    holdout: Literal["users", "items"] = "users" if protocol == "strong" else "items"
    cache: dict[tuple[int, ...], Prepared] = {}  # shared by the grid: one table per matrix

    def build(p: Params) -> Ranker:
        return Ranker(
            bases,
            catalog or Catalog(),
            booster=Booster(**p),
            holdout=holdout,
            seed=seed,
            cache=cache,
        )

    return ModelSpec("ranker", build, RANKER_GRID)


def _frozen(spec: ModelSpec, params: Params) -> Callable[[], Recommender]:
    return lambda: spec.build(params)
