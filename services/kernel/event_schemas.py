"""Event contracts as committed JSON Schema files: `schemas/events/<type>.v<N>.json`.

The files are generated from the event models, so the text must be byte-for-byte stable: sorted
keys, two-space indents, one trailing newline. `services.contracts` writes them with the other
contracts and checks that the committed files match.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pydantic.json_schema import GenerateJsonSchema

from services.kernel.event_examples import example_payload
from services.kernel.events import Event
from services.kernel.module import ServiceModule


def schema_file_name(event: type[Event]) -> str:
    return f"{event.event_type()}.v{event.event_version()}.json"


class _PublishedJsonSchema(GenerateJsonSchema):
    """The schema of the JSON a producer publishes, which is what consumers and webhooks read.

    An event is always serialized whole, so a field with a default (`id`, `occurred_at`, a
    nullable `subject_id`) is nonetheless present in every message: the contract marks it
    required, which pydantic's default (validation-side) schema does not.
    """

    def field_is_required(self, field: Any, total: bool) -> bool:
        if self.mode == "serialization":
            return not field.get("serialization_exclude")
        return super().field_is_required(field, total)


def render_schema(event: type[Event]) -> str:
    schema = event.model_json_schema(mode="serialization", schema_generator=_PublishedJsonSchema)
    # One realistic message, built from the model itself, so it is valid and cannot drift.
    schema["examples"] = [example_payload(event)]
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_event_schemas(services: Iterable[ServiceModule]) -> dict[str, str]:
    """File name to schema text for every event the services declare, sorted by file name."""
    rendered: dict[str, str] = {}
    owners: dict[str, str] = {}
    for service in services:
        for event in service.events:
            name = schema_file_name(event)
            if name in owners and rendered[name] != render_schema(event):
                raise ValueError(
                    f"{name} is declared differently by {owners[name]} and {service.name}"
                )
            owners[name] = service.name
            rendered[name] = render_schema(event)
    return dict(sorted(rendered.items()))
