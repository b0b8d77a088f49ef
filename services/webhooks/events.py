"""Events the webhooks service publishes: an endpoint switched off by its own answers (a 410, or
days of failures), so the brand's other endpoints and tools learn that a CRM stopped listening."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Literal

from services.kernel.events import Event, EventData


class DisabledReason(StrEnum):
    GONE = "gone"  # the endpoint answered 410 Gone
    FAILING = "failing"  # every attempt failed for the configured time (5 days by default)


class EndpointDisabledData(EventData):
    endpoint_id: uuid.UUID
    url: str
    reason: DisabledReason
    failing_since: datetime | None


class EndpointDisabled(Event):
    type: Literal["webhook.endpoint_disabled"] = "webhook.endpoint_disabled"
    version: Literal[1] = 1
    data: EndpointDisabledData


WEBHOOKS_EVENTS: tuple[type[Event], ...] = (EndpointDisabled,)
