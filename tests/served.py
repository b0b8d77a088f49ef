"""An app behind a real uvicorn server, in the test's event loop (WebSockets included)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from starlette.types import ASGIApp

STARTUP_SECONDS = 10.0


@asynccontextmanager
async def served(app: ASGIApp) -> AsyncIterator[int]:
    """Serves `app` on a free port of 127.0.0.1, with the logging the process already has
    (Kinfolk's: `log_config=None`); yields the port, and stops the server after."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        lifespan="off",
        ws="websockets-sansio",
        log_config=None,
        access_log=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(int(STARTUP_SECONDS / 0.01)):  # uvicorn offers no event to wait on
            if server.started:
                break
            await asyncio.sleep(0.01)
        assert server.started, f"uvicorn did not start in {STARTUP_SECONDS:g} s"
        yield int(server.servers[0].sockets[0].getsockname()[1])
    finally:
        server.should_exit = True
        await task
