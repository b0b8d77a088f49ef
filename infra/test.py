"""The whole check, as the README's test command runs it: lint, types, then the test suite.

Run it with `python3 -m uv run --frozen infra/test.py [pytest args]`. Tests use the servers named
by KINFOLK_DATABASE_URL / KINFOLK_REDIS_URL when set, else embedded ones under .kinfolk/test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def step(name: str, *command: str) -> None:
    print(f"==> {name}: {' '.join(command)}", flush=True)
    result = subprocess.run(command, cwd=ROOT, check=False)  # noqa: S603 - our own fixed commands
    if result.returncode != 0:
        print(f"==> {name} failed (exit {result.returncode})", flush=True)
        sys.exit(result.returncode)


def main() -> None:
    python = sys.executable
    step("lint", python, "-m", "ruff", "check", ".")
    step("format", python, "-m", "ruff", "format", "--check", ".")
    step("types", python, "-m", "mypy")
    step("contracts", python, "-m", "services.cli", "schemas", "--check")
    # Our own packages compiled once here, for the same reason as `compile-bytecode` in
    # pyproject.toml: each test worker and test subprocess would otherwise compile them again.
    step("bytecode", python, "-m", "compileall", "-q", "services", "recommender", "simulator")
    workers = os.environ.get("KINFOLK_TEST_WORKERS", "2")
    step("tests", python, "-m", "pytest", "-n", workers, "-q", *sys.argv[1:])


if __name__ == "__main__":
    main()
