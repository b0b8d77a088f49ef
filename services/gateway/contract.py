"""The committed GraphQL schema, and what in a new version would break the apps already out.

Mobile apps stay installed for months, so a field they query cannot just disappear: `kinfolk
schemas` refuses to commit a breaking change unless told it is deliberate.
"""

from __future__ import annotations

from graphql import build_schema, find_breaking_changes

SCHEMA_PATH = "schemas/graphql/schema.graphql"


def render_schema() -> str:
    from services.gateway.schema_build import SCHEMA

    return SCHEMA.as_str() + "\n"


def breaking_changes(previous: str, current: str) -> list[str]:
    """Each change in `current` that breaks a client written against `previous`, in words."""
    changes = find_breaking_changes(build_schema(previous), build_schema(current))
    return [f"{change.type.name}: {change.description}" for change in changes]
