"""The split deployment's files: Compose Specification valid, and a container per service."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from services.registry import SERVICES

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"


def test_compose_file_matches_the_compose_specification() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(COMPOSE),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _commands() -> dict[str, list[str]]:
    document = yaml.safe_load(COMPOSE.read_text())
    return {name: spec.get("command", []) for name, spec in document["services"].items()}


def test_every_service_the_cli_can_serve_has_a_container() -> None:
    commands = _commands()
    served = {command[1] for command in commands.values() if command[:1] == ["serve"]}
    assert served == {service.name for service in SERVICES}


def test_relay_worker_and_migrations_have_containers() -> None:
    commands = _commands()
    assert commands["relay"] == ["relay"]
    assert commands["worker"] == ["worker"]
    assert commands["migrate"] == ["migrate"]


def test_dockerfile_runs_the_kinfolk_command() -> None:
    dockerfile = (ROOT / "infra" / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["kinfolk"]' in dockerfile
    assert "uv sync --frozen --no-dev" in dockerfile
