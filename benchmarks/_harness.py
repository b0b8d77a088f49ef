"""What every benchmark shares: servers (configured or embedded), a scratch database, the report."""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.kernel.db import asyncpg_url
from services.kernel.embedded import InfrastructureUrls, infrastructure
from services.kernel.migrations import migrate
from services.kernel.settings import Settings
from services.registry import SERVICES

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def servers() -> Iterator[InfrastructureUrls]:
    """The configured servers when KINFOLK_*_URL are set, else embedded ones in .kinfolk/bench."""
    settings = Settings(
        data_dir=Path(os.environ.get("KINFOLK_DATA_DIR", ROOT / ".kinfolk" / "bench"))
    )
    with infrastructure(settings) as urls:
        yield urls


@asynccontextmanager
async def scratch_database(server_url: str, name: str) -> AsyncIterator[str]:
    """A new, migrated database for one benchmark run, dropped afterwards."""
    admin = create_async_engine(asyncpg_url(server_url), isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    parts = urlsplit(server_url)
    url = urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))
    try:
        await migrate(url, SERVICES)
        yield url
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


def median(values: list[float]) -> float:
    return statistics.median(values)


def report(
    benchmark: str,
    *,
    value: float,
    unit: str,
    anchor: str,
    anchor_value: float,
    target: str,
    **extra: Any,
) -> None:
    """The one JSON line every benchmark ends with."""
    line = {
        "benchmark": benchmark,
        "value": round(value, 2),
        "unit": unit,
        "anchor": anchor,
        "anchor_value": round(anchor_value, 2),
        "ratio": round(value / anchor_value, 4) if anchor_value else None,
        "target": target,
        **extra,
    }
    print(json.dumps(line), flush=True)
