"""`KINFOLK_DATABASE_URL` as operators write it: libpq's form, which managed databases hand out
with `?sslmode=require`, works for the services (asyncpg) and for the libpq tools alike."""

from __future__ import annotations

import sys

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from services.cli import main
from services.kernel.db import Database, asyncpg_url, libpq_url
from services.kernel.settings import Settings, get_settings, settings_refused
from tests.conftest import WorkerInfrastructure


@pytest.mark.parametrize(
    ("given", "for_asyncpg", "for_libpq"),
    [
        (
            "postgresql://kin:pw@db.example:5432/kinfolk?sslmode=require",
            "postgresql+asyncpg://kin:pw@db.example:5432/kinfolk?ssl=require",
            "postgresql://kin:pw@db.example:5432/kinfolk?sslmode=require",
        ),
        (
            # asyncpg's own spelling is understood both ways too.
            "postgresql://kin@db.example/kinfolk?ssl=verify-full",
            "postgresql+asyncpg://kin@db.example/kinfolk?ssl=verify-full",
            "postgresql://kin@db.example/kinfolk?sslmode=verify-full",
        ),
        (
            # A socket folder in `host` (the embedded server's form) is kept as it is.
            "postgresql://postgres@/postgres?host=/tmp/kinfolk-pg",
            "postgresql+asyncpg://postgres@/postgres?host=%2Ftmp%2Fkinfolk-pg",
            "postgresql://postgres@/postgres?host=/tmp/kinfolk-pg",
        ),
        (
            "postgres://kin@db.example/kinfolk",
            "postgresql+asyncpg://kin@db.example/kinfolk",
            "postgresql://kin@db.example/kinfolk",
        ),
        (
            # libpq's keepalive parameters: asyncpg refuses them (the services set them on the
            # socket themselves, tests/kernel/test_tcp_liveness.py); libpq reads them.
            "postgresql://kin@db.example/kinfolk?keepalives_idle=20&sslmode=require"
            "&tcp_user_timeout=5000&keepalives=1&keepalives_interval=4&keepalives_count=2",
            "postgresql+asyncpg://kin@db.example/kinfolk?ssl=require",
            "postgresql://kin@db.example/kinfolk?keepalives_idle=20&sslmode=require"
            "&tcp_user_timeout=5000&keepalives=1&keepalives_interval=4&keepalives_count=2",
        ),
    ],
)
def test_a_url_is_spelled_for_asyncpg_and_for_libpq(
    given: str, for_asyncpg: str, for_libpq: str
) -> None:
    assert asyncpg_url(given) == for_asyncpg
    assert libpq_url(given) == for_libpq


@pytest.mark.parametrize("mode", ["disable", "prefer"])
async def test_a_url_with_sslmode_connects(test_infra: WorkerInfrastructure, mode: str) -> None:
    """asyncpg refused `sslmode` as an unexpected argument: every request failed."""
    separator = "&" if "?" in test_infra.database_url else "?"
    database = Database(f"{test_infra.database_url}{separator}sslmode={mode}")
    try:
        async with database.unit_of_work() as session:
            assert (await session.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await database.dispose()


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        (
            "KINFOLK_DATABASE_URL",
            "postgresql://kin@db.example/kinfolk?sslmode=requried",
            "KINFOLK_DATABASE_URL: sslmode must be one of disable, allow, prefer, require, "
            "verify-ca, verify-full (not 'requried')",
        ),
        (
            "KINFOLK_DATABASE_URL",
            "postgresql://kin@db.example/kinfolk?ssl=on",
            "KINFOLK_DATABASE_URL: ssl must be one of disable, allow, prefer, require, "
            "verify-ca, verify-full (not 'on')",
        ),
        (
            "KINFOLK_DATABASE_URL",
            "postgresql://kin:secret-pw@db.example/kinfolk?keepalives_idle=0",
            "KINFOLK_DATABASE_URL: keepalives_idle must be a whole number of at least 1 (not '0')",
        ),
        (
            "KINFOLK_DATABASE_URL",
            "postgresql://kin@db.example/kinfolk?tcp_user_timeout=30s",
            "KINFOLK_DATABASE_URL: tcp_user_timeout must be a whole number of at least 0 "
            "(not '30s')",
        ),
        (
            "KINFOLK_DATABASE_URL",
            "postgresql://kin@db.example/kinfolk?keepalives=yes",
            "KINFOLK_DATABASE_URL: keepalives must be 0 or 1 (not 'yes')",
        ),
        (
            "KINFOLK_DATABASE_URL",
            "postgresql://kin@db.example/kinfolk?keepalives=2",
            "KINFOLK_DATABASE_URL: keepalives must be 0 or 1 (not '2')",
        ),
        (
            "KINFOLK_DATABASE_URL",
            "mysql://kin:secret-pw@db.example/kinfolk",
            "KINFOLK_DATABASE_URL: use a PostgreSQL URL, postgresql://user@host:5432/database "
            "(not mysql scheme)",
        ),
        (
            "KINFOLK_REDIS_URL",
            "http://cache.example:6379",
            "KINFOLK_REDIS_URL: use a Redis URL: redis://host:6379/0, rediss:// for TLS, or "
            "unix:///path.sock",
        ),
    ],
)
def test_a_url_that_cannot_work_is_refused_with_what_to_change(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, said: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as refused:
        Settings()
    message = settings_refused(refused.value)
    assert message.splitlines() == [
        "kinfolk cannot start with these settings (1 to fix):",
        f"  {said}",
    ]
    assert "secret-pw" not in message  # a URL's password is never echoed


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://kin@db.example/kinfolk?sslmode=verify-full",
        "postgres://kin@db.example/kinfolk",
        "postgresql+asyncpg://kin@db.example/kinfolk?ssl=disable",
        "postgresql://postgres@/postgres?host=/tmp/kinfolk-pg",
        "postgresql://kin@db.example/kinfolk?keepalives=0&tcp_user_timeout=0",
    ],
)
def test_the_urls_operators_write_are_accepted(url: str) -> None:
    assert Settings(database_url=url).database_url == url


def test_the_command_says_which_setting_to_fix_and_starts_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KINFOLK_DATABASE_URL", "postgresql://kin@db.invalid/kinfolk?sslmode=bogus")
    monkeypatch.setenv("KINFOLK_DATABASE_POOL_SIZE", "0")
    monkeypatch.setattr(sys, "argv", ["kinfolk", "migrate"])
    get_settings.cache_clear()
    try:
        with pytest.raises(SystemExit) as stopped:
            main()
    finally:
        get_settings.cache_clear()
    assert stopped.value.code == 2
    printed = capsys.readouterr()
    assert printed.out == ""
    assert printed.err.splitlines() == [
        "kinfolk cannot start with these settings (2 to fix):",
        "  KINFOLK_DATABASE_URL: sslmode must be one of disable, allow, prefer, require, "
        "verify-ca, verify-full (not 'bogus')",
        "  KINFOLK_DATABASE_POOL_SIZE: Input should be greater than or equal to 1",
    ]
