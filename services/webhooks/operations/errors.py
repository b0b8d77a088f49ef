"""Errors of webhook operations: each says what to fix. An unknown endpoint and a disabled one
are endpoint management's own `EndpointNotFound` and `EndpointDisabled`."""

from __future__ import annotations

import uuid
from typing import Any

from services.kernel.errors import Conflict, NotFound, ValidationFailed


class MessageNotFound(NotFound):
    """No such message in this brand (it may be past its retention)."""

    code = "MessageNotFound"

    def __init__(self, message_id: uuid.UUID) -> None:
        super().__init__(
            f"No webhook message {message_id} in this brand: it never existed here or was "
            "dropped after the retention period."
        )


class DeliveryNotFound(NotFound):
    """The message was never meant for that endpoint (or there is no such message)."""

    code = "DeliveryNotFound"

    def __init__(self, message_id: uuid.UUID, endpoint_id: uuid.UUID) -> None:
        super().__init__(
            f"Message {message_id} has no delivery to endpoint {endpoint_id} in this brand: "
            "`GET /webhooks/v1/messages/{id}` lists the endpoints it went to."
        )


class DeliveryInFlight(Conflict):
    """A worker is sending the message to that endpoint right now."""

    code = "DeliveryInFlight"


class _Invalid(ValidationFailed):
    def __init__(self, path: str, message: str) -> None:
        detail: Any = {"path": path, "message": message}
        super().__init__(detail)


class InvalidTimeRange(_Invalid):
    """`until` is not after `since`."""

    code = "InvalidTimeRange"


class RecoverTooFarBack(_Invalid):
    """A recovery reaches further back than the limit."""

    code = "RecoverTooFarBack"


class RecoverFromFuture(_Invalid):
    """A recovery from a time that has not come yet."""

    code = "RecoverFromFuture"
