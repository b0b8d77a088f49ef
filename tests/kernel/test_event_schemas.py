"""Event contracts: the JSON Schema rendering is deterministic and documents the envelope."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import APIRouter

from services.kernel.db import service_metadata
from services.kernel.event_schemas import render_event_schemas
from services.kernel.module import ServiceModule
from tests.kernel.eventing import OtherNoticed, ThingChanged, ThingHappened

NAMES = [
    "kerneltest.thing_changed.v1.json",
    "kerneltest.thing_happened.v1.json",
    "othertest.noticed.v1.json",
]


def service(name: str, *events: type) -> ServiceModule:
    return ServiceModule(
        name=name,
        schema=name,
        metadata=service_metadata(name),
        router=APIRouter(),
        migrations=Path("."),
        events=events,
    )


SERVICES = [service("schematest", ThingHappened, ThingChanged), service("othertest", OtherNoticed)]


def test_rendering_is_deterministic_sorted_and_pretty() -> None:
    rendered = render_event_schemas(SERVICES)
    assert list(rendered) == NAMES
    assert render_event_schemas(list(reversed(SERVICES))) == rendered
    for text in rendered.values():
        assert text.endswith("}\n")
        assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
    schema = json.loads(rendered["kerneltest.thing_happened.v1.json"])
    assert schema["title"] == "ThingHappened"
    assert schema["properties"]["type"]["const"] == "kerneltest.thing_happened"
    assert schema["properties"]["version"]["const"] == 1
    # Serialization mode: what a consumer receives always carries the envelope's defaults.
    assert sorted(schema["required"]) == [
        "brand_id",
        "data",
        "id",
        "occurred_at",
        "subject_id",
        "type",
        "version",
    ]
    assert schema["$defs"]["ThingData"]["properties"]["n"]["type"] == "integer"
