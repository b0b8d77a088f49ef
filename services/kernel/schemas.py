"""Pydantic building blocks every service's `schemas.py` shares."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, TypeGuard

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict

# The largest integer that orjson writes (events, fingerprints) and a bigint column holds.
INT64_MAX = 2**63 - 1


def is_int64(value: Any) -> TypeGuard[int]:
    """An integer (a bool is not one) from -INT64_MAX to INT64_MAX: what a free-form field (a
    trait, a segment's rule) may hold and every service can carry on."""
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) <= INT64_MAX


class Input(BaseModel):
    """Base of every request body: unknown fields are an error, text is trimmed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def as_utc(value: datetime) -> datetime:
    """The same instant in UTC; an instant outside years 1-9999 in UTC is a validation error."""
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise ValueError("is out of range once converted to UTC") from exc


# Any offset is accepted (a naive time is refused); times are kept and shown in UTC.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(as_utc)]
