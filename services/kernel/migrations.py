"""Alembic, one history per service, each in the service's own schema.

A service's `migrations/env.py` is two lines that call `run_env()`; `migrate()` applies every
service's history under an advisory lock, so containers starting together do not race.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import command, context
from alembic.config import Config
from sqlalchemy import Connection, text

from services.kernel.db import create_engine
from services.kernel.module import ServiceModule

_MIGRATION_LOCK = 4_242_000_001


def _config(service: ServiceModule, connection: Connection | None) -> Config:
    if service.migrations is None:
        raise ValueError(f"the {service.name} service owns no tables, so it has no migrations")
    config = Config()
    config.set_main_option("script_location", str(service.migrations))
    config.set_main_option("version_locations", str(service.migrations / "versions"))
    # One location, so no separator is needed; saying so silences Alembic's legacy-split warning.
    config.set_main_option("path_separator", "os")
    config.attributes["service"] = service
    config.attributes["connection"] = connection
    return config


def run_env() -> None:
    """The body of every service's `env.py`."""
    config = context.config
    service: ServiceModule = config.attributes["service"]
    connection: Connection = config.attributes["connection"]

    def include_name(name: str | None, type_: str, _parent: object) -> bool:
        # Each history sees only its own schema, so autogenerate never touches another service.
        return type_ != "schema" or name == service.schema

    context.configure(
        connection=connection,
        target_metadata=service.metadata,
        version_table_schema=service.schema,
        include_schemas=True,
        include_name=include_name,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _upgrade(connection: Connection, services: Sequence[ServiceModule]) -> None:
    connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
    for service in services:
        if not service.owns_tables:
            continue
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{service.schema}"'))
        command.upgrade(_config(service, connection), "head")


async def migrate(database_url: str, services: Sequence[ServiceModule]) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade, services)
    finally:
        await engine.dispose()


def _revision(connection: Connection, service: ServiceModule, message: str) -> None:
    connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{service.schema}"'))
    command.revision(_config(service, connection), message=message, autogenerate=True)


async def make_revision(database_url: str, service: ServiceModule, message: str) -> None:
    """Autogenerate `service`'s next migration from its models, against a migrated database."""
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_revision, service, message)
    finally:
        await engine.dispose()
