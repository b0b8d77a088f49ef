"""The model a brand serves: the production ranker over EASE, popularity by tier and the content
model, fit on a snapshot of the brand's store, with what it needs to explain itself.

One item space holds every kind (products, perks, prompts, experiences, posts), so what a member
buys informs the perks they see. The ranker learns its blend from the brand's own members (their
hidden 20%); when a brand is too small for it to learn anything, EASE alone serves, and with no
interactions at all, popularity does.
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

import joblib  # type: ignore[import-untyped]
import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
from numpy.typing import NDArray

from recommender.models.base import Catalog as ModelCatalog
from recommender.models.base import ModelRefused, Recommender, UserContext
from recommender.models.content import ContentTFIDF
from recommender.models.ease import EASE, MAX_ITEMS
from recommender.models.fusion import RankFusion
from recommender.models.popular import MostPopular, PopularByGroup
from recommender.models.ranker import Base, Ranker
from recommender.splits import MIN_ITEMS_TO_SPLIT
from recommender.training.repository import MemberRow
from recommender.training.snapshot import Catalog, Snapshot

# EASE's setting for a brand's matrix: fixed, from the middle of the grid the offline evaluation
# tunes over (50 to 2,000), since a nightly run has no budget to tune it. Tuning it per brand on
# the held-out members is a possible refinement.
EASE_REGULARIZATION = 300.0
# The ranker's booster learns from at most this many members (a hundred candidates each): its
# fit is most of a training run, and on a 20,000-member simulated brand 5,000 learned about as
# well as all 18,000 (NDCG@100 about 0.40 either way).
RANKER_TRAINING_MEMBERS = 5_000
# Below this many members with five or more interactions the ranker has too little to learn a
# blend from (on the 60-member demo brand its probabilities came out flat and followed no one);
# EASE and the content model are then fused by rank instead.
RANKER_MIN_MEMBERS = 1_000
# Each fold refits the base models on the whole matrix; three give the booster every training
# member once at three fifths of five's cost. One bag: nightly training favours time over the
# small steadiness several bags add on tiny brands (see `recommender.models.ranker`).
RANKER_FOLDS = 3
RANKER_BAGS = 1


@dataclass
class ProductionModel:
    """A trained version: the scorer and the item space it scores, plus EASE and the content
    model kept apart to explain recommendations and to score items newer than the model."""

    item_ids: NDArray[np.str_]
    catalog: Catalog
    tiers: list[uuid.UUID]
    scorer: Recommender
    kind: str  # "ranker", "fusion" (of EASE and content) or "popular"
    ease: EASE | None
    content: ContentTFIDF | None
    popularity: NDArray[np.float32]  # share of members who touched each item
    fit_seconds: float = 0.0
    tier_names: dict[uuid.UUID, str] = field(default_factory=dict)  # for reasons
    index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.index = {str(item): position for position, item in enumerate(self.item_ids)}

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def context(self, members: Sequence[MemberRow]) -> UserContext:
        return self.context_of(self.tiers, members)

    @staticmethod
    def context_of(tiers: Sequence[uuid.UUID], members: Sequence[MemberRow]) -> UserContext:
        """What the models know of members besides their rows: tier, balance, interests. (No
        interaction times: the features that would use them are left out, fit and served alike.)"""
        position = {tier: index for index, tier in enumerate(tiers)}
        return UserContext(
            group=np.array(
                [position.get(m.tier_id, -1) if m.tier_id else -1 for m in members], dtype=np.int64
            ),
            balance=np.array([m.points for m in members], dtype=np.float64),
            text=[" ".join(m.interests) for m in members],
        )

    def score(self, rows: sp.csr_matrix, context: UserContext) -> NDArray[np.float32]:
        return np.asarray(self.scorer.score(rows, context), dtype=np.float32)

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        joblib.dump(self, buffer, compress=0)
        return buffer.getvalue()

    @staticmethod
    def from_bytes(data: bytes) -> ProductionModel:
        model = joblib.load(io.BytesIO(data))
        if not isinstance(model, ProductionModel):
            raise TypeError("the artifact is not a production model")
        return model


def item_space(snapshot: Snapshot) -> NDArray[np.int64]:
    """The catalog positions the model learns: every item touched or still active, the most
    touched first when a catalog outgrows what EASE can hold."""
    counts = np.asarray((snapshot.matrix > 0).sum(axis=0)).ravel()
    kept = np.flatnonzero((counts > 0) | snapshot.catalog.active)
    if len(kept) > MAX_ITEMS:
        # Ties favour the newer item (a position later in a time-ordered id).
        order = np.lexsort((-snapshot.catalog.created[kept], -counts[kept]))
        kept = np.sort(kept[order[:MAX_ITEMS]])
    return kept.astype(np.int64)


def fit(
    matrix: sp.csr_matrix,
    context: UserContext,
    catalog: Catalog,
    item_ids: NDArray[np.str_],
    tiers: list[uuid.UUID],
    *,
    seed: int = 0,
) -> ProductionModel:
    """Fit the brand's model on `matrix` (members x the items of `catalog`)."""
    started = time.perf_counter()
    model_catalog = ModelCatalog(text=catalog.texts, cost=catalog.costs)
    has_text = any(t.strip() for t in catalog.texts)
    n_members = matrix.shape[0]

    # Builders are partials, not closures, so the fitted ranker pickles into an artifact.
    content = partial(ContentTFIDF, model_catalog, text_weight=1.0)
    bases = [
        Base("ease", partial(EASE, EASE_REGULARIZATION)),
        Base("popular-by-group", partial(PopularByGroup, shrinkage=10.0)),
    ]
    if has_text:
        bases.append(Base("content", content))
    ranker = Ranker(
        bases,
        model_catalog,
        holdout="items",  # members are served on their own future: learn that
        folds=RANKER_FOLDS,
        bags=RANKER_BAGS,
        max_training_users=RANKER_TRAINING_MEMBERS,
        seed=seed,
    )
    scorer: Recommender
    ease: EASE | None = None
    content_model: ContentTFIDF | None = None
    learners = int((np.diff(matrix.indptr) >= MIN_ITEMS_TO_SPLIT).sum())
    if learners >= RANKER_MIN_MEMBERS:
        try:
            scorer, kind = ranker.fit(matrix, context), "ranker"
            ease = next(m for m in ranker.models if isinstance(m, EASE))
            content_model = next((m for m in ranker.models if isinstance(m, ContentTFIDF)), None)
        except (ModelRefused, ValueError):  # no hidden item among the candidates, say
            pass
    if ease is None and matrix.nnz:
        ease = EASE(EASE_REGULARIZATION).fit(matrix, context)
        content_model = content().fit(matrix, context) if has_text else None
        parts: list[Recommender] = [ease] if content_model is None else [ease, content_model]
        scorer, kind = RankFusion(parts), "fusion"
    elif ease is None:
        content_model = content().fit(matrix, context) if has_text else None
        scorer, kind = MostPopular().fit(matrix, context), "popular"
    popularity = np.asarray((matrix > 0).sum(axis=0), dtype=np.float32).ravel()
    popularity /= max(1, n_members)
    return ProductionModel(
        item_ids=item_ids,
        catalog=catalog,
        tiers=tiers,
        scorer=scorer,
        kind=kind,
        ease=ease,
        content=content_model,
        popularity=popularity,
        fit_seconds=time.perf_counter() - started,
    )
