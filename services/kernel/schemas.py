"""Pydantic building blocks every service's `schemas.py` shares."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict


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
