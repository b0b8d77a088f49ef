"""One keep-alive HTTP/1.1 connection for the load generators.

The load generator shares this machine's two cores with the server it measures, so what it
spends on each request is taken from the server. httpx spent about a millisecond of CPU a
request here, as much as the server's whole answer to `GET /healthz`; a request written as bytes
and an answer read by httptools (the C parser uvicorn serves with) cost a small part of that, and
so the server under test keeps the cores a real client's load leaves it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlencode, urlsplit

import httptools
import orjson

Headers = Mapping[str, str] | None


@dataclass(frozen=True, slots=True)
class Answer:
    status_code: int
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def json(self) -> Any:
        return orjson.loads(self.content)


class Connection(asyncio.Protocol):
    """One request at a time on one connection, opened again when the server closed it while
    idle (uvicorn closes a connection after a few idle seconds)."""

    def __init__(self, host: str, port: int) -> None:
        self._host = host
        self._port = port
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._body: list[bytes] = []
        self._answer: asyncio.Future[Answer] | None = None
        self._lost: asyncio.Future[None] | None = None  # done when the socket is gone

    @classmethod
    async def open(cls, base: str) -> Connection:
        parts = urlsplit(base)
        connection = cls(parts.hostname or "127.0.0.1", parts.port or 80)
        await connection._connect()
        return connection

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_connection(lambda: self, self._host, self._port)

    @property
    def local_port(self) -> int:
        assert self._transport is not None
        return int(self._transport.get_extra_info("sockname")[1])

    async def get(
        self, path: str, *, params: Mapping[str, object] | None = None, headers: Headers = None
    ) -> Answer:
        target = f"{path}?{urlencode(params)}" if params else path
        return await self.request("GET", target, headers=headers)

    async def post(self, path: str, *, json: object, headers: Headers = None) -> Answer:
        body = orjson.dumps(json)
        extra = {"Content-Type": "application/json", **(headers or {})}
        return await self.request("POST", path, headers=extra, body=body)

    async def request(
        self, method: str, target: str, *, headers: Headers = None, body: bytes = b""
    ) -> Answer:
        if self._answer is not None:
            raise RuntimeError("one request at a time on a connection")
        if self._transport is not None and self._transport.is_closing():
            # The old socket's `connection_lost` must come before the new one's
            # `connection_made`, or it would drop the new transport.
            assert self._lost is not None
            await self._lost
        if self._transport is None:
            self._parser = httptools.HttpResponseParser(self)
            await self._connect()
        assert self._transport is not None
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self._host}:{self._port}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        lines.append(f"Content-Length: {len(body)}\r\n\r\n")
        self._answer = asyncio.get_running_loop().create_future()
        self._transport.write("\r\n".join(lines).encode() + body)
        try:
            return await self._answer
        finally:
            self._answer = None

    async def aclose(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._lost = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(ConnectionError(f"unreadable answer: {error}"))
            assert self._transport is not None
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)
        self._fail(ConnectionError(f"the server closed the connection ({exc})"))

    # httptools' callbacks
    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        answer = Answer(self._parser.get_status_code(), b"".join(self._body))
        self._body = []
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(answer)

    def _fail(self, error: Exception) -> None:
        self._body = []
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(error)
