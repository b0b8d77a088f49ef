"""`kinfolk simulate` through typer's runner (no subprocess): bad input exits 2 with a reason;
good input loads a world and prints its summary."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services import cli
from services.cli import app
from services.kernel.db import Database
from services.kernel.settings import get_settings
from simulator import run
from tests.conftest import WorkerInfrastructure, purge_brand


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("KINFOLK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("KINFOLK_LOG_LEVEL", "WARNING")
    # The command configures logging onto the current stderr, which the runner replaces with a
    # buffer it closes afterwards: later tests' logs would then hit a closed file.
    monkeypatch.setattr(cli, "configure_logging", lambda settings: None)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--members", "0"], "--members must be at least 1"),
        (["--members", "-5"], "--members must be at least 1"),
        (["--members", "10", "--days", "0"], "--days must be at least 1"),
        (["--members", "10", "--days", "-3"], "--days must be at least 1"),
        (["--members", "10", "--seed", "-1"], "--seed must be zero or more"),
        (["--members", "1000000000"], "--members must be at most"),
        (["--members", "10", "--days", "100000"], "--days must be at most"),
        (["--members", "10", "--brand", "  "], "--brand needs a name"),
    ],
)
def test_bad_input_exits_2(env: None, args: list[str], reason: str) -> None:
    result = CliRunner().invoke(app, ["simulate", *args])
    assert result.exit_code == 2, result.output
    assert reason in result.output


def test_a_world_larger_than_the_disk_is_refused_with_the_estimate(
    env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run, "free_disk_bytes", lambda path: 10_000_000)
    result = CliRunner().invoke(app, ["simulate", "--members", "1000000", "--days", "365"])
    assert result.exit_code == 2
    assert "need about" in result.output
    assert "only 10.0 MB is free" in result.output


def test_the_estimate_grows_with_members_and_days() -> None:
    small = run.check_request(1_000, 30, 1, free_bytes=10**15)
    assert run.check_request(2_000, 30, 1, free_bytes=10**15) > small
    assert run.check_request(1_000, 365, 1, free_bytes=10**15) > small
    # A million members over a year: the order of gigabytes, not megabytes or terabytes.
    assert 10**9 < run.check_request(1_000_000, 365, 1, free_bytes=10**15) < 10**11


def test_simulate_loads_and_prints_its_summary(
    env: None,
    test_infra: WorkerInfrastructure,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("KINFOLK_DATABASE_URL", test_infra.database_url)
    monkeypatch.setenv("KINFOLK_REDIS_URL", test_infra.redis_url)
    get_settings.cache_clear()
    brand = f"Cli Sim {uuid.uuid4().hex[:8]}"
    args = ["simulate", "--members", "40", "--days", "30", "--seed", "5", "--brand", brand]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "members        40" in result.output
    assert "database size" in result.output
    assert "elapsed" in result.output
    folder = run.default_out(tmp_path, brand, 5)
    assert (folder / "truth.npz").exists()
    assert (folder / run.STATE_FILE).exists()
    # The same command again: refused, the first run stands.
    again = CliRunner().invoke(app, args)
    assert "INCOMPLETE" not in result.output
    assert again.exit_code == 2
    assert "already complete" in again.output
    brand_id = uuid.UUID(result.output.split("brand id", 1)[1].split()[0])
    asyncio.run(_purge(test_infra.database_url, brand_id))


async def _purge(url: str, brand_id: uuid.UUID) -> None:
    database = Database(url)
    try:
        await purge_brand(database, brand_id)
    finally:
        await database.dispose()
