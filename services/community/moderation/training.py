"""The brand's labelled examples and its trained classifier: upload, train, load for screening.

Training runs in a worker thread (scikit-learn is CPU-bound and would stall the event loop) on
the examples as they are at that moment, and stores the model's parameters as the brand's next
version. Screening keeps rebuilt models in a small per-process cache keyed by brand and version,
so a post costs one cheap version lookup, not a model load.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import datetime

import anyio.to_thread
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.moderation import classifier
from services.community.moderation.classifier import TextClassifier
from services.community.moderation.errors import (
    ClassifierNotTrained,
    ExampleNotFound,
    NotEnoughExamples,
)
from services.community.moderation.models import Classifier, Label, TrainingExample
from services.community.moderation.repository import TrainingRepository
from services.community.moderation.schemas import ExamplesAdded, ExamplesUpload
from services.kernel.caches import MISSING, BoundedCache
from services.kernel.clock import utcnow
from services.kernel.ids import new_id
from services.kernel.pagination import PageRequest

_CACHE_SIZE = 64
# Keyed by brand, version and training time: a version number alone could repeat if the
# transaction that trained it rolled back.
_cache: BoundedCache[tuple[uuid.UUID, int, datetime], TextClassifier] = BoundedCache(_CACHE_SIZE)


async def add_examples(
    session: AsyncSession, brand_id: uuid.UUID, payload: ExamplesUpload
) -> ExamplesAdded:
    training = TrainingRepository(session)
    await training.add_examples(
        [
            {"id": new_id(), "brand_id": brand_id, "text": e.text, "label": e.label}
            for e in payload.examples
        ]
    )
    return ExamplesAdded(added=len(payload.examples), total=await training.count(brand_id))


async def list_examples(
    session: AsyncSession, brand_id: uuid.UUID, page: PageRequest
) -> Sequence[TrainingExample]:
    return await TrainingRepository(session).page(brand_id, page)


async def delete_example(session: AsyncSession, brand_id: uuid.UUID, example_id: uuid.UUID) -> None:
    if not await TrainingRepository(session).delete_example(brand_id, example_id):
        raise ExampleNotFound(f"No training example {example_id} in this brand.")


def _check_enough(counts: Counter[Label]) -> None:
    flagged = counts[Label.SPAM] + counts[Label.ABUSIVE]
    if counts[Label.OK] < classifier.MIN_PER_CLASS or flagged < classifier.MIN_PER_CLASS:
        raise NotEnoughExamples(
            f"Training needs at least {classifier.MIN_PER_CLASS} examples labelled `ok` and "
            f"{classifier.MIN_PER_CLASS} labelled `spam` or `abusive`; there are "
            f"{counts[Label.OK]} and {flagged}."
        )


async def train(session: AsyncSession, brand_id: uuid.UUID) -> Classifier:
    training = TrainingRepository(session)
    examples = await training.examples(brand_id)
    counts = Counter(label for _, label in examples)
    _check_enough(counts)
    texts = [text for text, _ in examples]
    labels = [label for _, label in examples]
    parameters = await anyio.to_thread.run_sync(classifier.train, texts, labels)
    return await training.save_classifier(
        brand_id,
        parameters=parameters,
        example_count=len(examples),
        label_counts={label.value: counts[label] for label in Label if counts[label]},
        trained_at=utcnow(),
    )


async def current_classifier(session: AsyncSession, brand_id: uuid.UUID) -> Classifier:
    found = await TrainingRepository(session).classifier(brand_id)
    if found is None:
        raise ClassifierNotTrained()
    return found


async def brand_classifier(session: AsyncSession, brand_id: uuid.UUID) -> TextClassifier | None:
    """The brand's current model for screening, or None when it has none."""
    training = TrainingRepository(session)
    stamp = await training.classifier_version(brand_id)
    if stamp is None:
        return None
    key = (brand_id, *stamp)
    cached = _cache.get(key)
    if cached is not MISSING:
        return cached
    row = await training.classifier(brand_id)
    if row is None:  # trained away between the two reads: nothing to use
        return None
    model = TextClassifier.from_parameters(row.parameters)
    _cache.put((brand_id, row.version, row.trained_at), model)
    return model
