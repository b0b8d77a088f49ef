"""Errors of segments: each a 4xx with a code and, for a rule, the path of the node at fault
(`rule.and[2].or[0].value`) and what to change."""

from __future__ import annotations

import uuid
from typing import Any

from services.kernel.errors import (
    Conflict,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
)


class SegmentNotFound(NotFound):
    """No such segment in this brand (or it was deleted)."""

    code = "SegmentNotFound"

    def __init__(self, segment_id: uuid.UUID | None = None) -> None:
        super().__init__(
            f"No segment {segment_id} in this brand." if segment_id is not None else None
        )


class VersionNotFound(NotFound):
    """The segment has no such version."""

    code = "VersionNotFound"


class SegmentInUse(Conflict):
    """Other segments' rules name this segment: change them first."""

    code = "SegmentInUse"


def rule_detail(path: str, message: str) -> dict[str, Any]:
    """A rule error's `detail`: where the problem is, so a client can point at the node."""
    return {"path": path, "message": message}


class _RuleInvalid(ValidationFailed):
    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(rule_detail(path, message))


class InvalidRule(_RuleInvalid):
    """A node of the rule is not one of the documented shapes."""

    code = "InvalidRule"


class UnknownField(_RuleInvalid):
    """The field is not in the member-360 catalog (`GET /marketing/v1/fields`)."""

    code = "UnknownField"


class WrongType(_RuleInvalid):
    """The value does not have the field's type."""

    code = "WrongType"


class OperatorNotAllowed(_RuleInvalid):
    """The operator does not apply to the field's type."""

    code = "OperatorNotAllowed"


class UnknownEvent(_RuleInvalid):
    """An event condition names an activity the journal does not record."""

    code = "UnknownEvent"


class UnknownSegment(_RuleInvalid):
    """The rule names a segment that does not exist in this brand."""

    code = "UnknownSegment"


class SegmentCycle(_RuleInvalid):
    """Segments would name each other in a circle."""

    code = "SegmentCycle"


class RuleTooDeep(_RuleInvalid):
    """More than the allowed levels of nesting."""

    code = "RuleTooDeep"


class RuleTooLarge(_RuleInvalid):
    """More than the allowed number of conditions, counting those of named segments."""

    code = "RuleTooLarge"


class UnknownItem(_RuleInvalid):
    """The recommender does not know the item of an affinity condition."""

    code = "UnknownItem"


class _RuleForbidden(Forbidden):
    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(rule_detail(path, message))


class FieldNotReadable(_RuleForbidden):
    """The rule tests a personal field: the key needs `members:read` as well."""

    code = "FieldNotReadable"


class AffinityNotAllowed(_RuleForbidden):
    """An affinity condition reads the recommender: the key needs `recommender:read`."""

    code = "AffinityNotAllowed"


class AffinityUnavailable(ServiceUnavailable):
    """An affinity condition could not be resolved (the recommender is not reachable, or no
    caller key to ask it with): nothing was computed; retry, or materialise on demand."""

    code = "AffinityUnavailable"
