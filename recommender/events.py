"""The events the recommender publishes (`recommendation.*`)."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from services.kernel.events import Event, EventData


class ModelTrainedData(EventData):
    version_id: uuid.UUID
    number: int
    status: Literal["serving", "rejected"]
    metrics: dict[str, Any]
    # The serving version's figures on the same held-out members; None for a brand's first model.
    compared_to: dict[str, Any] | None


class ModelTrained(Event):
    """A training run finished: the new version serves, or was worse than the serving one."""

    type: Literal["recommendation.model_trained"] = "recommendation.model_trained"
    version: Literal[1] = 1
    data: ModelTrainedData


RECOMMENDER_EVENTS: tuple[type[Event], ...] = (ModelTrained,)
