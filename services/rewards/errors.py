"""Errors the rewards service answers with: each a 4xx with a code and what to fix."""

from __future__ import annotations

from services.kernel.errors import Conflict, NotFound, ValidationFailed


class MemberNotFound(NotFound):
    """No such member in this brand (rewards learns of new members within a moment; retry)."""

    code = "MemberNotFound"


class ProgramNotConfigured(Conflict):
    """This brand has no loyalty program yet: `PUT /rewards/v1/program` first."""

    code = "ProgramNotConfigured"


class InsufficientPoints(Conflict):
    """The member does not have enough available points."""

    code = "InsufficientPoints"


class UnknownCurrency(ValidationFailed):
    """The currency is not an ISO 4217 code this program accepts."""

    code = "UnknownCurrency"
