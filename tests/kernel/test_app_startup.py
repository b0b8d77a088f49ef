"""What a server process does once it has started: what start-up made is frozen out of the
garbage collector's passes, so that a full pass does not stall the requests it serves."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from services.kernel.app import build_app
from services.kernel.runtime import Runtime
from services.kernel.settings import Settings
from services.members.module import MEMBERS


def _tracked(thing: object) -> bool:
    """Whether the collector's passes look at `thing` (frozen objects are not listed)."""
    return any(found is thing for found in gc.get_objects())


@pytest.mark.parametrize("given", ["factory", "ready"])
async def test_a_started_server_leaves_what_start_up_made_out_of_collections(
    base_settings: Settings, runtime: Runtime, given: str
) -> None:
    """Both ways a server is given its runtime: `kinfolk serve all --workers N` opens it through
    a factory, `kinfolk serve` and `kinfolk dev` open it first."""

    @asynccontextmanager
    async def opened() -> AsyncIterator[Runtime]:
        yield runtime

    app = build_app([MEMBERS], base_settings, opened if given == "factory" else runtime)
    gc.unfreeze()
    assert _tracked(app)
    try:
        async with app.router.lifespan_context(app):
            assert not _tracked(app)
            assert gc.get_freeze_count() > 0
            made_while_serving: list[object] = []
            assert _tracked(made_while_serving)
    finally:
        gc.unfreeze()
    assert _tracked(app)
