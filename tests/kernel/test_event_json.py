"""`event_json` writes exactly what pydantic writes, for every event type and for the values that
format differently in JSON libraries (times with and without microseconds, other offsets,
decimals, unicode, nested lists, empty optionals); what orjson cannot write goes to pydantic."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

import pytest
from asyncpg.pgproto.pgproto import UUID as PostgresUUID

from services.kernel.event_examples import example_event
from services.kernel.events import Event, EventData, event_json, parse_event
from services.registry import SERVICES

EVENTS = sorted(
    {event for service in SERVICES for event in service.events}, key=lambda e: e.event_type()
)


@pytest.mark.parametrize("event_class", EVENTS, ids=lambda e: e.event_type())
def test_every_event_is_written_as_pydantic_writes_it(event_class: type[Event]) -> None:
    event = example_event(event_class)

    written = event_json(event)

    assert written == event.model_dump_json().encode()
    assert parse_event(written) == event


class Shade(StrEnum):
    ROSE = "rose"


class Line(EventData):
    sku: str
    quantity: int
    price: Decimal


class Everything(EventData):
    member_id: uuid.UUID
    maybe_id: uuid.UUID | None
    shade: Shade
    direction: Literal["up", "down"]
    lines: list[Line]
    traits: dict[str, Any]
    birthday: date | None
    when: datetime
    note: str
    ratio: float
    multiplier: Decimal


class EverythingHappened(Event):
    type: Literal["eventjsontest.everything"] = "eventjsontest.everything"
    version: Literal[1] = 1
    data: Everything


def _everything(at: datetime, **changes: Any) -> EverythingHappened:
    data: dict[str, Any] = {
        "member_id": uuid.UUID("019cebae-61c0-7000-b23f-ae5b9bf3b2f9"),
        "maybe_id": None,
        "shade": Shade.ROSE,
        "direction": "up",
        "lines": [
            {"sku": "SKU-1", "quantity": 2, "price": Decimal("12.50")},
            {"sku": 'Crème "brûlée" \u2014 \U0001f484', "quantity": 1, "price": Decimal("0")},
        ],
        "traits": {"skin": "dry", "n": 3, "nested": {"a": [1, None, True]}},
        "birthday": date(1990, 12, 10),
        "when": at,
        "note": "line\nbreak\ttab \\ slash \u2028",
        "ratio": 0.1,
        "multiplier": Decimal("1.500"),
    }
    data.update(changes)
    return EverythingHappened(
        brand_id=uuid.UUID("019cebae-61c0-7000-b600-520e53ece04c"),
        occurred_at=at,
        data=Everything.model_validate(data),
    )


@pytest.mark.parametrize(
    "at",
    [
        datetime(2026, 3, 14, 9, 30, tzinfo=UTC),
        datetime(2026, 3, 14, 9, 30, 0, 123000, tzinfo=UTC),
        datetime(2026, 3, 14, 9, 30, 0, 1, tzinfo=UTC),
        datetime(2026, 3, 14, 9, 30, tzinfo=timezone(timedelta(0))),
        datetime(2026, 3, 14, 9, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(1, 1, 1, tzinfo=UTC),
    ],
    ids=["utc", "milliseconds", "microsecond", "zero-offset", "offset", "year-one"],
)
def test_times_decimals_and_text_are_written_as_pydantic_writes_them(at: datetime) -> None:
    event = _everything(at)

    assert event_json(event) == event.model_dump_json().encode()


@pytest.mark.parametrize(
    "changes",
    [
        {"ratio": 1e16},
        {"ratio": 1.5e-7},
        {"ratio": 123456.789},
        {"multiplier": Decimal("1E+3")},
        {"multiplier": Decimal("-0.000001")},
        {"maybe_id": uuid.UUID(int=0), "birthday": None, "lines": [], "traits": {}},
    ],
    ids=["large-float", "small-float", "float", "decimal-exponent", "small-decimal", "empties"],
)
def test_numbers_and_empty_values_are_written_as_pydantic_writes_them(
    changes: dict[str, Any],
) -> None:
    event = _everything(datetime(2026, 3, 14, 9, 30, tzinfo=UTC), **changes)

    assert event_json(event) == event.model_dump_json().encode()


def test_a_value_orjson_cannot_write_goes_to_pydantic() -> None:
    event = _everything(datetime(2026, 3, 14, 9, 30, tzinfo=UTC), traits={"big": 2**70})

    assert event_json(event) == event.model_dump_json().encode()


def test_ids_read_from_postgresql_are_written_without_pydantic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # asyncpg returns its own subclass of uuid.UUID, which orjson does not write by itself; the
    # events of the API and of bulk loads carry them, so they must not send each event to pydantic.
    member_id = PostgresUUID("019cebae-61c0-7000-b23f-ae5b9bf3b2f9")
    event = _everything(datetime(2026, 3, 14, 9, 30, tzinfo=UTC), member_id=member_id)
    assert type(event.data.member_id) is PostgresUUID
    expected = event.model_dump_json().encode()

    def fail(*args: object, **kwargs: object) -> str:
        raise AssertionError("event_json fell back to pydantic")

    monkeypatch.setattr(EverythingHappened, "model_dump_json", fail)

    assert event_json(event) == expected
    assert b'"member_id":"019cebae-61c0-7000-b23f-ae5b9bf3b2f9"' in expected
