"""The migrations build exactly the models: autogenerate against a migrated database is empty."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import AsyncConnection

from services.members.module import MEMBERS


def _differences(connection: Connection) -> list[Any]:
    def include_name(name: str | None, type_: str, _parent: dict[str, Any]) -> bool:
        return type_ != "schema" or name == MEMBERS.schema

    context = MigrationContext.configure(
        connection,
        opts={
            "target_metadata": MEMBERS.metadata,
            "include_schemas": True,
            "include_name": include_name,
            "compare_type": True,
            "compare_server_default": True,
            "version_table_schema": MEMBERS.schema,
        },
    )
    return list(compare_metadata(context, MEMBERS.metadata))


async def test_autogenerate_finds_no_differences(connection: AsyncConnection) -> None:
    assert await connection.run_sync(_differences) == []


async def test_every_model_table_exists_with_the_version_table(connection: AsyncConnection) -> None:
    tables = await connection.run_sync(
        lambda sync: set(inspect(sync).get_table_names(schema=MEMBERS.schema))
    )
    expected = {t.name for t in MEMBERS.metadata.tables.values()} | {"alembic_version"}
    assert tables == expected
