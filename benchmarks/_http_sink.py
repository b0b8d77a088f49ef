"""A plain HTTP/1.1 endpoint for the benchmarks' webhook receivers: keep-alive, every request
answered 204 at once, and each one's headers and body handed to `received`. Small and without
dependencies, so a receiver costs next to nothing next to what is measured."""

from __future__ import annotations

import asyncio
from typing import cast

ANSWER = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n"


class HttpSink(asyncio.Protocol):
    """Subclasses say what a request is for (`received`); header names arrive lower-cased."""

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def received(self, headers: dict[bytes, bytes], body: bytes) -> None:
        raise NotImplementedError

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, but are one.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            headers: dict[bytes, bytes] = {}
            for line in self.buffer[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get(b"content-length", b"0") or 0)
            if len(self.buffer) < end + 4 + length:
                return
            self.received(headers, self.buffer[end + 4 : end + 4 + length])
            self.buffer = self.buffer[end + 4 + length :]
            assert self.transport is not None
            self.transport.write(ANSWER)
