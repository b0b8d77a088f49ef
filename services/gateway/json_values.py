"""The services' JSON values the gateway's types are built from, and sends back: ISO 8601 times
and days, uuids, any of them possibly null."""

from __future__ import annotations

import datetime as dt
import uuid


def when(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def maybe_when(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value is not None else None


def maybe_day(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value is not None else None


def maybe_uuid(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(str(value)) if value is not None else None


def maybe_iso(value: dt.datetime | None) -> str | None:
    """A time as the services take it (a query parameter, a body's field)."""
    return value.isoformat() if value is not None else None
