"""Errors of endpoint management: each says what to fix."""

from __future__ import annotations

import uuid
from typing import Any

from services.kernel.errors import Conflict, NotFound, ValidationFailed


class EndpointNotFound(NotFound):
    """No such endpoint in this brand."""

    code = "EndpointNotFound"

    def __init__(self, endpoint_id: uuid.UUID) -> None:
        super().__init__(f"No webhook endpoint {endpoint_id} in this brand.")


class _Invalid(ValidationFailed):
    def __init__(self, path: str, message: str) -> None:
        detail: Any = {"path": path, "message": message}
        super().__init__(detail)


class UrlNotAllowed(_Invalid):
    """The URL is not https to a public address."""

    code = "UrlNotAllowed"


class UnknownEventType(_Invalid):
    """An event type (or `prefix.*`) that no service publishes."""

    code = "UnknownEventType"


class ReservedHeader(_Invalid):
    """A custom header that would replace one the delivery sets."""

    code = "ReservedHeader"


class EndpointDisabled(Conflict):
    """The endpoint is disabled: enable it first."""

    code = "EndpointDisabled"
