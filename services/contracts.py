"""The committed contracts: OpenAPI per service and JSON Schema per event, made by one command.

`kinfolk schemas` writes them; `kinfolk schemas --check` (and tests/test_contracts.py) fails when a
committed file no longer matches the code.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from services.gateway.contract import SCHEMA_PATH, breaking_changes, render_schema
from services.kernel.app import build_app
from services.kernel.event_schemas import render_event_schemas
from services.kernel.module import ServiceModule
from services.kernel.runtime import Runtime
from services.kernel.settings import Settings
from services.registry import SERVICES

ROOT = Path(__file__).resolve().parent.parent
# Directories whose every file of that kind is generated: one no code produces any more is stale.
GENERATED_FILES = (
    (Path("schemas/openapi"), "*.json"),
    (Path("schemas/events"), "*.json"),
    (Path("schemas/graphql"), "*.graphql"),
)


def _pretty(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@asynccontextmanager
async def _no_runtime() -> AsyncIterator[Runtime]:
    raise RuntimeError("rendering a contract never starts the app")
    yield  # pragma: no cover


def render_openapi(service: ServiceModule) -> str:
    app = build_app([service], Settings(), _no_runtime, title=f"Kinfolk {service.name}")
    return _pretty(app.openapi())


def render_contracts(services: Sequence[ServiceModule] = SERVICES) -> dict[Path, str]:
    """Every generated contract file, by path relative to the repository root."""
    files: dict[Path, str] = {}
    for service in services:
        if service.openapi:
            files[Path("schemas/openapi") / f"{service.name}.json"] = render_openapi(service)
    for name, text in render_event_schemas(services).items():
        files[Path("schemas/events") / name] = text
    if any(service.name == "gateway" for service in services):
        files[Path(SCHEMA_PATH)] = render_schema()
    return files


def _extra_files(root: Path, expected: Mapping[Path, str]) -> list[Path]:
    return [
        existing.relative_to(root)
        for directory, pattern in GENERATED_FILES
        for existing in sorted((root / directory).glob(pattern))
        if existing.relative_to(root) not in expected
    ]


def stale_contracts(root: Path = ROOT, expected: Mapping[Path, str] | None = None) -> list[str]:
    """Files whose committed text differs from the code, is missing, or is no longer produced."""
    expected = render_contracts() if expected is None else expected
    problems = [
        str(path)
        for path, text in expected.items()
        if not (root / path).exists() or (root / path).read_text(encoding="utf-8") != text
    ]
    problems += [f"{path} (no longer produced)" for path in _extra_files(root, expected)]
    return problems


def write_contracts(root: Path = ROOT, expected: Mapping[Path, str] | None = None) -> list[Path]:
    """Bring the committed files up to date; returns the paths written or removed."""
    expected = render_contracts() if expected is None else expected
    changed: list[Path] = []
    for path, text in expected.items():
        target = root / path
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            changed.append(path)
    for path in _extra_files(root, expected):
        (root / path).unlink()
        changed.append(path)
    return changed


def breaking_graphql_changes(
    root: Path = ROOT, expected: Mapping[Path, str] | None = None
) -> list[str]:
    """What the code's GraphQL schema breaks against the committed one (empty if none is)."""
    expected = render_contracts() if expected is None else expected
    committed = root / SCHEMA_PATH
    current = expected.get(Path(SCHEMA_PATH))
    if current is None or not committed.exists():
        return []
    return breaking_changes(committed.read_text(encoding="utf-8"), current)
