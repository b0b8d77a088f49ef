"""Chunks loaded through `load_chunks`: in the simulating process or in workers."""

from __future__ import annotations

import gc
import uuid
from datetime import date
from typing import Any

from services.kernel.db import Database
from simulator import world
from simulator.chunks import WorldView
from simulator.workers import load_chunks


async def _collector_state(
    database: Database, view: WorldView, brand_id: uuid.UUID, chunk: int, args: tuple[Any, ...]
) -> dict[str, int]:
    return {"collector_enabled": int(gc.isenabled())}


async def test_simulator_chunks_load_with_the_collector_paused(collector_on: None) -> None:
    params = world.WorldParams(members=10, days=7, seed=1, start=date(2025, 1, 1))
    view = WorldView.of(params)
    database = Database("postgresql://unused/none")  # the loader above never connects
    loaded = [
        found
        async for found in load_chunks(
            _collector_state, database, view, uuid.uuid4(), [0, 1], workers=1
        )
    ]
    assert loaded == [(0, {"collector_enabled": 0}), (1, {"collector_enabled": 0})]
    assert gc.isenabled()
    await database.dispose()
