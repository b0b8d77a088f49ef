"""The whole check, as the README's test command runs it: lint, types, the test suite, then an
audit of the locked dependencies for known vulnerabilities.

Run it with `python3 -m uv run --frozen infra/test.py [pytest args]`. Tests use the servers named
by KINFOLK_DATABASE_URL / KINFOLK_REDIS_URL when set, else embedded ones under .kinfolk/test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def step(name: str, *command: str) -> None:
    print(f"==> {name}: {' '.join(command)}", flush=True)
    result = subprocess.run(command, cwd=ROOT, check=False)  # noqa: S603 - our own fixed commands
    if result.returncode != 0:
        print(f"==> {name} failed (exit {result.returncode})", flush=True)
        sys.exit(result.returncode)


# Vulnerabilities accepted after review (an id pip-audit reports, e.g. "GHSA-..."), each with the
# reason in a comment; pip-audit leaves them out. None so far.
ACCEPTED_VULNERABILITIES: tuple[str, ...] = ()


def audit(python: str) -> None:
    """pip-audit over every package version uv.lock pins, against PyPI's vulnerability data.

    A known vulnerability fails the run. PyPI's service being out of reach does not: pip-audit
    then skips each package ("not found on PyPI") and would still say "No known vulnerabilities
    found", so the step reads its JSON report and says plainly what was and was not checked.
    Where the network reaches only a package mirror (as on this project's machines, where
    PyPI's per-version JSON API answers 404), that is every package.
    """
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    # A package locked at two versions (one per Python range) goes in a second batch: pip-audit
    # refuses a requirements file that names a package twice.
    batches: list[dict[str, str]] = []
    for package in lock["package"]:
        if "registry" not in package["source"]:
            continue  # the project itself
        batch = next((b for b in batches if package["name"] not in b), None)
        if batch is None:
            batch = {}
            batches.append(batch)
        batch[package["name"]] = package["version"]
    count = sum(len(batch) for batch in batches)
    print(f"==> audit: pip-audit over the {count} package versions uv.lock pins", flush=True)
    dependencies: list[dict[str, Any]] = []
    for batch in batches:
        found = _pip_audit(python, batch)
        if found is None:
            return
        dependencies += found
    if judge_audit(dependencies):
        sys.exit(1)


def _pip_audit(python: str, pins: dict[str, str]) -> list[dict[str, Any]] | None:
    """pip-audit's report on `pins` (name -> version), or None, said why, if it could not run."""
    with tempfile.TemporaryDirectory() as folder:
        requirements = Path(folder) / "requirements.txt"
        requirements.write_text("".join(f"{n}=={v}\n" for n, v in sorted(pins.items())))
        report = Path(folder) / "audit.json"
        command = [
            python, "-m", "pip_audit", "--requirement", str(requirements),
            "--no-deps", "--disable-pip",  # the pins are the whole, resolved set
            "--format", "json", "--output", str(report), "--progress-spinner", "off",
            "--timeout", "10",
        ]  # fmt: skip
        for accepted in ACCEPTED_VULNERABILITIES:
            command += ["--ignore-vuln", accepted]
        try:
            # Bounded: a network that drops packets must not hold CI for a timeout per package.
            result = subprocess.run(  # noqa: S603 - our own fixed command
                command, cwd=ROOT, check=False, capture_output=True, text=True, timeout=180
            )
        except subprocess.TimeoutExpired:
            print("==> audit COULD NOT RUN: pip-audit took over 180 s (network?)", flush=True)
            return None
        if not report.exists():
            reason = (result.stderr.strip().splitlines() or ["no output"])[-1]
            print(
                f"==> audit COULD NOT RUN: pip-audit exited {result.returncode}: {reason}",
                flush=True,
            )
            return None
        found: list[dict[str, Any]] = json.loads(report.read_text())["dependencies"]
        return found


def judge_audit(dependencies: list[dict[str, Any]]) -> int:
    """Prints what the audit found; the exit status: 1 for a known vulnerability, else 0."""
    skipped = [d for d in dependencies if "skip_reason" in d]
    vulnerable = [d for d in dependencies if d.get("vulns")]
    for dependency in vulnerable:
        for vuln in dependency["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "no fixed version yet"
            print(
                f"==> audit: {dependency['name']} {dependency['version']}: {vuln['id']} "
                f"(fixed in: {fixes})",
                flush=True,
            )
    checked = len(dependencies) - len(skipped)
    if skipped and not checked:
        print(
            f"==> audit COULD NOT RUN: PyPI's vulnerability data answered for none of the "
            f"{len(skipped)} packages ({skipped[0]['skip_reason']}); nothing was checked",
            flush=True,
        )
    elif skipped:
        names = ", ".join(d["name"] for d in skipped)
        print(f"==> audit: {len(skipped)} packages could not be checked: {names}", flush=True)
    if vulnerable:
        print(
            f"==> audit failed: {len(vulnerable)} packages with known vulnerabilities", flush=True
        )
        return 1
    if checked:
        print(f"==> audit: no known vulnerabilities in {checked} packages", flush=True)
    return 0


def cache_rewritten_tests(python: str) -> subprocess.Popen[bytes]:
    """Starts pytest collecting the suite with bytecode writing on, and returns the process.

    pytest rewrites each test module's asserts and caches the result beside it, unless
    PYTHONDONTWRITEBYTECODE is set (as on this project's machines): then every test worker
    rewrites every module again, about 7 s of each worker's start. It reads a cached rewrite
    either way, so one collection run while mypy keeps the other core busy spares the workers
    that work. Its output does not matter: the tests step collects and reports for itself.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return subprocess.Popen(  # noqa: S603 - our own fixed command
        [python, "-m", "pytest", "--collect-only", "-q"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main() -> None:
    python = sys.executable
    step("lint", python, "-m", "ruff", "check", ".")
    step("format", python, "-m", "ruff", "format", "--check", ".")
    collecting = cache_rewritten_tests(python)
    try:
        step("types", python, "-m", "mypy")
        step("contracts", python, "-m", "services.cli", "schemas", "--check")
        # Our own packages compiled once here, for the same reason as `compile-bytecode` in
        # pyproject.toml: each test worker and test subprocess would otherwise compile them
        # again. The tests' helper modules too (pytest caches the test modules, above).
        packages = ("services", "recommender", "simulator", "tests")
        step("bytecode", python, "-m", "compileall", "-q", *packages)
    finally:
        collecting.wait()
    # Three workers on two cores: a fair share of the suite waits (on PostgreSQL, subprocesses,
    # timeouts it stages), and a third worker keeps the cores busy meanwhile. On this project's
    # two-core machines: 188.8 and 197.1 s against 209.4 and 227.1 s with two (and 231.9 s
    # with four).
    workers = os.environ.get("KINFOLK_TEST_WORKERS", "3")
    # Work stealing: the suite's tests range from milliseconds to tens of seconds, and a worker
    # left idle while the other works through a long tail is time lost.
    step("tests", python, "-m", "pytest", "-n", workers, "--dist", "worksteal", "-q", *sys.argv[1:])
    audit(python)


if __name__ == "__main__":
    main()
