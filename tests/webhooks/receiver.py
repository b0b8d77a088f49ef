"""A real HTTP receiver on a local port for delivery tests: it records every request and
answers as the test scripts it (by default 204)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Arrival:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    at: float  # time.monotonic()
    wall: float  # time.time()

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def payload(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.body)
        return loaded


Respond = Callable[[Arrival], Awaitable[web.StreamResponse]]


async def accept(arrival: Arrival) -> web.StreamResponse:
    return web.Response(status=204)


@dataclass
class Receiver:
    port: int = 0
    arrivals: list[Arrival] = field(default_factory=list)
    respond: Respond = accept

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def at(self, path: str) -> list[Arrival]:
        return [a for a in self.arrivals if a.path == path]


@asynccontextmanager
async def receiving(respond: Respond = accept) -> AsyncIterator[Receiver]:
    receiver = Receiver(respond=respond)

    async def handle(request: web.Request) -> web.StreamResponse:
        arrival = Arrival(
            path=request.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=await request.read(),
            at=time.monotonic(),
            wall=time.time(),
        )
        receiver.arrivals.append(arrival)
        return await receiver.respond(arrival)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    receiver.port = runner.addresses[0][1]  # port 0 picked a free one
    try:
        yield receiver
    finally:
        await runner.cleanup()
