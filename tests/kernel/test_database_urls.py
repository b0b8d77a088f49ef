"""`KINFOLK_DATABASE_URL` as operators write it: libpq's form, which managed databases hand out
with `?sslmode=require`, works for the services (asyncpg) and for the libpq tools alike."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from services.kernel.db import Database, asyncpg_url, libpq_url
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
