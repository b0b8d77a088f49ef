"""The `kinfolk` command against a configured database: brand create, token, and their bad input."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from typer.testing import Result

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
def in_process_env(cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`cli_env` in this process, for `in_process`: the command's settings are read afresh, and
    it leaves logging alone (it would write to the runner's stream, closed once it returns)."""
    from services import cli
    from services.kernel.settings import get_settings

    for name, value in cli_env.items():
        if name.startswith("KINFOLK_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setattr(cli, "configure_logging", lambda settings: None)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def in_process(*args: str) -> Result:
    """`kinfolk ARGS` through typer's runner in this process."""
    from typer.testing import CliRunner

    from services.cli import app

    return CliRunner().invoke(app, list(args))


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
    cli_env: dict[str, str],
    cli_brand: dict[str, str],
    engine_database: Database,
    in_process_env: None,
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
        # In process (its event loop in a thread of its own): the one `kinfolk` process above
        # shows the command starts; each further one would cost seconds of imports.
        token = await asyncio.to_thread(
            in_process, "token", "--brand", str(brand_id), "--member", reference, "--ttl", "60"
        )
        assert token.exit_code == 0, token.output
        assert token.stdout.count("\n") == 1  # only the token
        assert codec.verify(token.stdout.strip()) == MemberPrincipal(
            brand_id=brand_id, member_id=member.id
        )


def test_token_refuses_an_unknown_member(in_process_env: None) -> None:
    unknown = in_process("token", "--brand", str(uuid.uuid4()), "--member", "nobody")
    assert unknown.exit_code == 1
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


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["retry"], "say which letters to retry: name them, or give --group GROUP, or --all"),
        (["retry", "--all", "--group", "webhooks.messages"], "say which letters to retry"),
        (["retry", "rewards"], "'rewards' is not a dead letter: write <service>:<entry id>"),
        (["retry", "--group", "nope"], "no consumer group 'nope'; the groups are: "),
        (["list", "--group", "nope"], "no consumer group 'nope'; the groups are: "),
    ],
)
def test_dead_letters_refuse_a_selection_that_names_nothing(args: list[str], reason: str) -> None:
    from typer.testing import CliRunner

    from services.cli import app

    result = CliRunner().invoke(app, ["dead-letters", *args], terminal_width=400)
    assert result.exit_code == 2
    assert reason in " ".join(result.output.replace("│", " ").split())


def test_dead_letters_are_listed_and_retried_through_the_command(
    test_infra: WorkerInfrastructure, in_process_env: None
) -> None:
    """A letter whose event the group's inbox already holds is deleted as handled; one of a group
    no service declares stays, and the command exits 1 for it."""
    from redis.asyncio import Redis
    from sqlalchemy import delete, insert

    from services.kernel.event_examples import example_event
    from services.kernel.ids import new_id
    from services.members.events import MemberCreated
    from services.webhooks.models import INBOX

    event = example_event(MemberCreated).model_copy(update={"id": new_id()})
    dead = "kinfolk:events:members:dead"
    letter = {"type": event.type, "event_id": str(event.id), "payload": event.model_dump_json()}

    async def plant() -> list[str]:
        """The two letters, and the event in webhooks' inbox; returns their references."""
        database = Database(test_infra.database_url)
        redis = Redis.from_url(test_infra.redis_url)
        try:
            async with database.unit_of_work() as session:
                await session.execute(
                    insert(INBOX).values(consumer="webhooks.messages", event_id=event.id)
                )
            await redis.flushdb()
            refs: list[str] = []
            for group, error in [("webhooks.messages", "E: one"), ("retired.group", "E: two")]:
                fields = {**letter, "group": group, "error": error}
                entry = await redis.xadd(dead, fields)
                refs.append(f"members:{entry.decode()}")
            return refs
        finally:
            await redis.aclose()
            await database.dispose()

    async def clean_up() -> list[str]:
        """Removes what `plant` made; returns the references of the letters left."""
        database = Database(test_infra.database_url)
        redis = Redis.from_url(test_infra.redis_url)
        try:
            async with database.unit_of_work() as session:
                await session.execute(delete(INBOX).where(INBOX.c.event_id == event.id))
            left = [f"members:{entry.decode()}" for entry, _ in await redis.xrange(dead)]
            await redis.flushdb()
            return left
        finally:
            await redis.aclose()
            await database.dispose()

    handled_ref, retired_ref = asyncio.run(plant())
    try:
        listed = in_process("dead-letters", "list", "--json")
        assert listed.exit_code == 0, listed.output
        assert [json.loads(line) for line in listed.stdout.splitlines()] == [
            {
                "ref": ref,
                "group": group,
                "event_id": str(event.id),
                "event_type": "member.created",
                "deliveries": 0,
                "dead_at": "",
                "error": error,
            }
            for ref, group, error in [
                (handled_ref, "webhooks.messages", "E: one"),
                (retired_ref, "retired.group", "E: two"),
            ]
        ]
        one = in_process("dead-letters", "retry", handled_ref)
        assert one.exit_code == 0, one.output
        assert f"{handled_ref}  webhooks.messages  member.created  already handled" in one.output
        assert "1 dead letter(s) retried: 1 already handled" in one.stderr
        missing = in_process("dead-letters", "retry", handled_ref)
        assert missing.exit_code == 2
        assert f"no dead letter {handled_ref}: it was retried or deleted already" in missing.output
        rest = in_process("dead-letters", "retry", "--all")
        assert rest.exit_code == 1
        assert f"{retired_ref}  retired.group  member.created  no such group" in rest.output
        assert "1 dead letter(s) retried: 1 no such group" in rest.stderr
    finally:
        left = asyncio.run(clean_up())
    assert left == [retired_ref]


def test_streams_show_a_retired_group_and_drop_only_it(
    test_infra: WorkerInfrastructure, in_process_env: None
) -> None:
    from redis.asyncio import Redis

    stream = "kinfolk:events:members"

    async def in_redis(plant: bool) -> list[str]:
        """Plants a stream with a declared and a retired group, or reads its groups and clears
        Redis."""
        redis = Redis.from_url(test_infra.redis_url)
        try:
            if plant:
                await redis.flushdb()
                await redis.xadd(stream, {"n": "1"})
                await redis.xgroup_create(stream, "rewards.members", id="$")
                await redis.xgroup_create(stream, "retired.group", id="0")
                return []
            groups = [group["name"].decode() for group in await redis.xinfo_groups(stream)]
            await redis.flushdb()
            return groups
        finally:
            await redis.aclose()

    asyncio.run(in_redis(plant=True))
    try:
        status = in_process("streams", "status")
        assert status.exit_code == 0, status.output
        assert "members: 1 entries (kinfolk:events:members)" in status.output
        lines = status.output.splitlines()
        assert any(line.split() == ["retired.group", "lag", "1", "pending", "0", "consumers",
                                    "0", "RETIRED"] for line in lines), status.output  # fmt: skip
        assert "`kinfolk streams drop-group members retired.group` once you are sure" in (
            status.output
        )
        declared = in_process("streams", "drop-group", "members", "rewards.members")
        assert declared.exit_code == 2
        assert "'rewards.members' is declared by a service of this deployment" in declared.output
        dropped = in_process("streams", "drop-group", "members", "retired.group")
        assert dropped.exit_code == 0, dropped.output
        assert "dropped retired.group from the members stream (0 pending entries" in (
            dropped.output
        )
    finally:
        left = asyncio.run(in_redis(plant=False))
    assert left == ["rewards.members"]
