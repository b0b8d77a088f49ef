"""The migrations build exactly the models: autogenerate against a migrated database is empty."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import AsyncConnection

from services.kernel.module import ServiceModule
from services.registry import SERVICES

each_service = pytest.mark.parametrize(
    "service", [s for s in SERVICES if s.owns_tables], ids=lambda s: s.name
)


def _differences(connection: Connection, service: ServiceModule) -> list[Any]:
    def include_name(name: str | None, type_: str, _parent: dict[str, Any]) -> bool:
        return type_ != "schema" or name == service.schema

    context = MigrationContext.configure(
        connection,
        opts={
            "target_metadata": service.metadata,
            "include_schemas": True,
            "include_name": include_name,
            "compare_type": True,
            "compare_server_default": True,
            "version_table_schema": service.schema,
        },
    )
    return list(compare_metadata(context, service.metadata))


@each_service
async def test_autogenerate_finds_no_differences(
    connection: AsyncConnection, service: ServiceModule
) -> None:
    assert await connection.run_sync(_differences, service) == []


@each_service
async def test_every_model_table_exists_with_the_version_table(
    connection: AsyncConnection, service: ServiceModule
) -> None:
    tables = await connection.run_sync(
        lambda sync: set(inspect(sync).get_table_names(schema=service.schema))
    )
    expected = {t.name for t in service.metadata.tables.values()} | {"alembic_version"}
    assert tables == expected
