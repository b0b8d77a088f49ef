"""The `kinfolk` command against a configured database: brand create, token, and their bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.kernel.auth import ALL_SCOPES, MemberPrincipal, MemberTokenCodec
from services.kernel.db import Database
from services.kernel.settings import Settings
from services.members import service
from services.members.schemas import MemberCreate
from tests.conftest import WorkerInfrastructure, purge_brand


@pytest.fixture
def cli_env(test_infra: WorkerInfrastructure, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KINFOLK_")}
    env.update(
        KINFOLK_DATABASE_URL=test_infra.database_url,
        KINFOLK_REDIS_URL=test_infra.redis_url,
        KINFOLK_DATA_DIR=str(tmp_path),
        KINFOLK_JWT_SECRET="cli-test-secret-" + "z" * 48,
        KINFOLK_LOG_LEVEL="WARNING",
    )
    return env


def kinfolk(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
async def cli_brand(
    cli_env: dict[str, str], engine_database: Database
) -> AsyncIterator[dict[str, str]]:
    """A brand made by `kinfolk brand create --json`, purged afterwards (the CLI commits)."""
    created = kinfolk(cli_env, "brand", "create", "Maison Test", "--json")
    assert created.returncode == 0, created.stderr
    printed: dict[str, str] = json.loads(created.stdout)
    yield printed
    await purge_brand(engine_database, uuid.UUID(printed["brand_id"]))


async def test_brand_create_prints_a_working_admin_key_and_token_prints_only_a_jwt(
    cli_env: dict[str, str], cli_brand: dict[str, str], engine_database: Database
) -> None:
    assert sorted(cli_brand) == ["api_key", "brand_id"]
    brand_id = uuid.UUID(cli_brand["brand_id"])
    async with engine_database.unit_of_work() as session:
        key = await service.verify_api_key(session, cli_brand["api_key"])
        assert key is not None
        assert key.brand_id == brand_id
        assert key.scopes == ALL_SCOPES
        member = await service.create_member(
            session, brand_id, MemberCreate(external_id="cli-1", email="cli@example.com")
        )

    codec = MemberTokenCodec(Settings(jwt_secret=cli_env["KINFOLK_JWT_SECRET"]))  # type: ignore[arg-type]
    for reference in ("cli-1", str(member.id)):
        token = kinfolk(
            cli_env, "token", "--brand", str(brand_id), "--member", reference, "--ttl", "60"
        )
        assert token.returncode == 0, token.stderr
        assert token.stdout.count("\n") == 1  # only the token
        assert codec.verify(token.stdout.strip()) == MemberPrincipal(
            brand_id=brand_id, member_id=member.id
        )


def test_token_refuses_an_unknown_member(cli_env: dict[str, str]) -> None:
    unknown = kinfolk(cli_env, "token", "--brand", str(uuid.uuid4()), "--member", "nobody")
    assert unknown.returncode == 1
    assert unknown.stdout == ""
    assert "no member 'nobody' in brand" in unknown.stderr


def test_bad_arguments_are_refused_before_anything_runs() -> None:
    """Refused while the arguments are read, before logging is set up or a server started, so
    typer's runner in this process shows it (no `kinfolk` process needed, 4 s of imports).
    Logging set up here would write to the runner's stream, closed once it returns."""
    from typer.testing import CliRunner

    from services.cli import app

    runner = CliRunner()
    bad_brand = runner.invoke(app, ["token", "--brand", "acme", "--member", "x"])
    assert bad_brand.exit_code == 2
    assert "the brand must be a brand id" in bad_brand.output
    bad_ttl = runner.invoke(
        app, ["token", "--brand", str(uuid.uuid4()), "--member", "x", "--ttl", "0"]
    )
    assert bad_ttl.exit_code == 2
    assert "--ttl" in bad_ttl.output
    empty_name = runner.invoke(app, ["brand", "create", "  "])
    assert empty_name.exit_code == 2
    assert "the brand needs a name" in empty_name.output


def test_worker_refuses_an_unknown_service_or_component() -> None:
    from typer.testing import CliRunner

    from services.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["worker", "--service", "nope"])
    assert result.exit_code == 2
    assert "unknown service 'nope'" in result.output
    result = runner.invoke(app, ["worker", "--service", "webhooks", "--only", "deliveries"])
    assert result.exit_code == 2
    assert "unknown component(s) deliveries" in result.output
    assert "webhooks.deliveries" in result.output
