"""Pydantic building blocks every service's `schemas.py` shares."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict


class Input(BaseModel):
    """Base of every request body: unknown fields are an error, text is trimmed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


# Any offset is accepted (a naive time is refused); times are kept and shown in UTC.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_utc)]
