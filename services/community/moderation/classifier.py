"""The brand's text classifier: TF-IDF over words and word pairs, then a logistic regression,
trained on the labelled examples the brand supplies (`ok`, `spam`, `abusive`).

A trained model is kept as plain parameters (JSON: the vocabulary, the idf weights, the classes,
the coefficients and intercepts), not as a pickle: loading one runs no code, survives upgrades of
scikit-learn, and rebuilding it here gives exactly the probabilities the trained pipeline gave.
Training is deterministic (`random_state` fixed), so the same examples give the same model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from services.community.moderation.models import Label

# scikit-learn is imported where a model is built, not with this module: it costs seconds at
# start-up, which every process hosting the community (and every CLI call) would pay.
if TYPE_CHECKING:
    from sklearn.feature_extraction.text import TfidfVectorizer  # type: ignore[import-untyped]
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

FORMAT = 1
MAX_FEATURES = 20_000
# At least this many examples of `ok` and of one other label before a model is worth training.
MIN_PER_CLASS = 2

_VECTORIZER_OPTIONS: dict[str, Any] = {
    "ngram_range": (1, 2),
    "sublinear_tf": True,
    "strip_accents": "unicode",
    "lowercase": True,
}


def _vectorizer(**extra: Any) -> TfidfVectorizer:
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(**_VECTORIZER_OPTIONS, **extra)


def train(texts: Sequence[str], labels: Sequence[Label]) -> dict[str, Any]:
    """Fit the pipeline and return its parameters (see the module doc). The caller checks that
    there are enough examples of each class."""
    from sklearn.linear_model import LogisticRegression

    vectorizer = _vectorizer(max_features=MAX_FEATURES)
    features = vectorizer.fit_transform(list(texts))
    # Balanced weights: brands tend to supply many more fine texts than bad ones.
    model = LogisticRegression(C=10.0, class_weight="balanced", max_iter=1_000, random_state=0)
    model.fit(features, [label.value for label in labels])
    return {
        "format": FORMAT,
        "vocabulary": {term: int(index) for term, index in vectorizer.vocabulary_.items()},
        "idf": vectorizer.idf_.tolist(),
        "classes": [str(c) for c in model.classes_],
        "coef": model.coef_.tolist(),
        "intercept": model.intercept_.tolist(),
    }


@dataclass(frozen=True, slots=True)
class TextClassifier:
    """A trained model rebuilt from its parameters, ready to score texts."""

    vectorizer: TfidfVectorizer
    model: LogisticRegression
    ok_index: int

    @classmethod
    def from_parameters(cls, parameters: dict[str, Any]) -> TextClassifier:
        if parameters.get("format") != FORMAT:
            raise ValueError(f"unknown classifier format {parameters.get('format')!r}")
        from sklearn.linear_model import LogisticRegression

        vectorizer = _vectorizer(vocabulary=parameters["vocabulary"])
        vectorizer.idf_ = np.asarray(parameters["idf"], dtype=np.float64)
        model = LogisticRegression()
        model.classes_ = np.asarray(parameters["classes"])
        model.coef_ = np.asarray(parameters["coef"], dtype=np.float64)
        model.intercept_ = np.asarray(parameters["intercept"], dtype=np.float64)
        return cls(vectorizer, model, parameters["classes"].index(Label.OK.value))

    def suspicion(self, text: str) -> float:
        """The probability that `text` is not ok (spam or abusive)."""
        probabilities = self.model.predict_proba(self.vectorizer.transform([text]))[0]
        return 1.0 - float(probabilities[self.ok_index])
