"""Content model: TF-IDF over item text and tags, matched to a profile built from the user's own
text (interests, traits) and the text of the items they interacted with. It needs no
interactions with an item, so it serves new items and new members (cold start)."""

from __future__ import annotations

from typing import Self

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
from sklearn.feature_extraction.text import TfidfVectorizer  # type: ignore[import-untyped]
from sklearn.preprocessing import normalize  # type: ignore[import-untyped]

from recommender.models.base import NO_CONTEXT, Catalog, Recommender, Scores, UserContext


class ContentTFIDF(Recommender):
    """score(u, i) = cosine(profile(u), tfidf(i)); profile(u) = normalised mean of the TF-IDF
    vectors of u's items plus `text_weight` x the TF-IDF vector of u's own text."""

    name = "content"

    def __init__(self, catalog: Catalog, text_weight: float = 1.0) -> None:
        if catalog.text is None:
            raise ValueError("the content model needs item text")
        self.catalog = catalog
        self.text_weight = text_weight
        self.vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1)
        self.items = sp.csr_matrix((0, 0), dtype=np.float32)

    def fit(self, matrix: sp.csr_matrix, users: UserContext = NO_CONTEXT) -> Self:
        assert self.catalog.text is not None  # checked in __init__
        texts = [t or "" for t in self.catalog.text]
        if not any(t.strip() for t in texts):
            raise ValueError("the content model needs item text; every item's text is empty")
        self.items = sp.csr_matrix(self.vectorizer.fit_transform(texts), dtype=np.float32)
        return self

    def profiles(self, rows: sp.csr_matrix, users: UserContext = NO_CONTEXT) -> sp.csr_matrix:
        history = normalize(sp.csr_matrix(rows, dtype=np.float32) @ self.items)
        if users.text is None or self.text_weight == 0:
            return sp.csr_matrix(history)
        own = normalize(self.vectorizer.transform([t or "" for t in users.text]))
        return sp.csr_matrix(normalize(history + self.text_weight * own))

    def score(self, rows: sp.csr_matrix, users: UserContext = NO_CONTEXT) -> Scores:
        return np.asarray((self.profiles(rows, users) @ self.items.T).toarray(), dtype=np.float32)
