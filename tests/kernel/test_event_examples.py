"""Every event's documented example: built from the event's own classes, valid against its JSON
Schema, deterministic, and the same in the schema files and in docs/webhooks.md."""

from __future__ import annotations

import json
import re
import uuid
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import jsonschema
import pytest

from services.contracts import WEBHOOKS_DOC, render_webhooks_doc
from services.kernel.event_examples import (
    EXAMPLE_TIME,
    VALUES,
    example_event,
    example_payload,
    example_uuid,
)
from services.kernel.event_schemas import render_schema, schema_file_name
from services.kernel.events import Event, EventData
from services.registry import SERVICES

EVENTS = sorted(
    {event for service in SERVICES for event in service.events}, key=lambda e: e.event_type()
)
PUBLIC = [event for event in EVENTS if event.public]


class Shade(StrEnum):
    ROSE = "rose"
    NUDE = "nude"


class Line(EventData):
    sku: str
    quantity: int


class Kitchen(EventData):
    member_id: uuid.UUID
    perk_id: uuid.UUID | None
    shade: Shade
    direction: Literal["up", "down"]
    lines: list[Line]
    tags: list[str]
    traits: dict[str, Any]
    birthday: date | None
    mystery: str
    ratio: float
    reason: Shade  # "reason" is a sentence in the table: an enum field takes its first member


class KitchenSink(Event):
    type: Literal["examplestest.kitchen_sink"] = "examplestest.kitchen_sink"
    version: Literal[1] = 1
    data: Kitchen


def test_the_builder_walks_the_fields_by_type_and_name() -> None:
    payload = example_payload(KitchenSink)
    assert payload == {
        "type": "examplestest.kitchen_sink",
        "version": 1,
        "id": str(example_uuid("event examplestest.kitchen_sink")),
        "brand_id": str(example_uuid("brand_id")),
        # The member the payload names is the subject.
        "subject_id": str(example_uuid("member_id")),
        "occurred_at": "2026-03-14T09:30:00Z",
        "data": {
            "member_id": str(example_uuid("member_id")),
            "perk_id": str(example_uuid("perk_id")),
            "shade": "rose",
            "direction": "up",
            "lines": [{"sku": "SKU-LIP-0042", "quantity": 1}],
            "tags": ["skincare", "routine"],
            "traits": VALUES["traits"],
            "birthday": "1990-12-10",
            "mystery": "mystery",
            "ratio": 1.0,
            "reason": "rose",
        },
    }
    assert KitchenSink.model_validate(payload) == example_event(KitchenSink)


def test_ids_are_uuid7_of_the_example_time_and_stable_per_name() -> None:
    member = example_uuid("member_id")
    assert member.version == 7
    assert member == example_uuid("member_id") != example_uuid("perk_id")
    assert int(member.hex[:12], 16) == int(EXAMPLE_TIME.timestamp() * 1000)


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.event_type())
def test_every_example_is_valid_against_its_schema_and_deterministic(event: type[Event]) -> None:
    payload = example_payload(event)
    schema = json.loads(render_schema(event))
    assert schema["examples"] == [payload]
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    assert list(validator.iter_errors(payload)) == []
    assert event.model_validate(payload).model_dump(mode="json") == payload
    assert payload["type"] == event.event_type()
    assert payload["occurred_at"] == "2026-03-14T09:30:00Z"
    assert example_payload(event) == payload
    # Optionals are filled, so the example shows each field's shape (a few are null on purpose).
    nulls = {key for key, value in payload["data"].items() if value is None}
    assert nulls <= {"voters_next", "suspended_until", "decided_by_member_id"}


def test_the_committed_schema_files_carry_the_examples(contracts: dict[Path, str]) -> None:
    for event in EVENTS:
        schema = json.loads(contracts[Path("schemas/events") / schema_file_name(event)])
        assert schema["examples"] == [example_payload(event)]


def test_every_qualified_value_names_a_field_that_exists() -> None:
    """A renamed field or event must not leave its example value behind unnoticed."""
    paths: dict[str, set[str]] = {}
    for event in EVENTS:
        data = event.model_fields["data"].annotation
        assert isinstance(data, type)
        assert issubclass(data, EventData)
        paths[event.event_type()] = set(data.model_fields)
    stale = []
    for key in VALUES:
        if ":" not in key:
            continue
        target, field = key.split(":", 1)
        if target.endswith(".*"):
            family = target.removesuffix("*")
            found = any(t.startswith(family) and field in f for t, f in paths.items())
        else:
            found = field in paths.get(target, set())
        if not found:
            stale.append(key)
    assert stale == []


def test_a_qualified_value_that_does_not_fit_its_field_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(VALUES, "examplestest.kitchen_sink:shade", "plum")
    with pytest.raises(ValueError, match=r"examplestest\.kitchen_sink:shade"):
        example_payload(KitchenSink)
    monkeypatch.setitem(VALUES, "examplestest.kitchen_sink:shade", "nude")
    assert example_payload(KitchenSink)["data"]["shade"] == "nude"


def test_examples_read_like_real_messages() -> None:
    examples = {event.event_type(): example_payload(event) for event in EVENTS}
    purchase = examples["purchase.recorded"]["data"]
    assert (purchase["currency"], purchase["amount_minor"], purchase["order_id"]) == (
        "EUR",
        4_500,
        "ORD-2026-1042",
    )
    assert purchase["lines"] == [
        {"sku": "SKU-LIP-0042", "category": "skincare", "quantity": 1, "amount_minor": 4_500}
    ]
    assert examples["member.created"]["data"]["email"] == "ada@example.com"
    assert examples["points.redeemed"]["data"]["kind"] == "redeem"
    assert examples["points.redeemed"]["data"]["points"] < 0
    # One member throughout: the same id in every event about them, and as the subject.
    member = str(example_uuid("member_id"))
    assert examples["points.earned"]["subject_id"] == member
    assert examples["tier.changed"]["data"]["member_id"] == member
    assert examples["perk.updated"]["subject_id"] is None
    assert (
        examples["member.followed"]["subject_id"]
        == examples["member.followed"]["data"]["follower_id"]
    )


def test_the_webhooks_guide_documents_every_public_event_with_its_example(
    contracts: dict[Path, str],
) -> None:
    text = contracts[WEBHOOKS_DOC]
    assert text == render_webhooks_doc(EVENTS)
    headings = re.findall(r"^### `([a-z_.]+)`$", text, flags=re.MULTILINE)
    assert headings == [event.event_type() for event in PUBLIC]
    assert "experience.payment_requested" not in text  # internal: never sent to webhooks
    blocks = [json.loads(block) for block in re.findall(r"```json\n(.*?)\n```", text, re.DOTALL)]
    assert blocks == [example_payload(event) for event in PUBLIC]
    for event in PUBLIC:
        described = (event.__doc__ or "").split("\n", 1)[0].strip()
        if event.__dict__.get("__doc__"):
            assert described in text
    assert "5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h" in text
    for phrase in ("`410 Gone`", "5 days", "10 min", "webhook-signature", "webhooks listen"):
        assert phrase in text
