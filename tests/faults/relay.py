"""A TCP relay: each connection it accepts is piped both ways to one its opener makes.

Run as a module (`python -m tests.faults.relay HOST PORT TO_HOST TO_PORT`), as the silent-route
tests run it inside a network namespace of their own, it prints "ready" once it listens.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

Opener = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def relay(host: str, port: int, opener: Opener) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await opener()
            await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))
        except asyncio.CancelledError:
            # Cancelled when the test's loop closes: ended quietly, as Python 3.11's stream
            # server otherwise logs every cancelled connection as an error.
            writer.close()

    return await asyncio.start_server(handle, host, port)


async def _main(host: str, port: int, to_host: str, to_port: int) -> None:
    server = await relay(host, port, lambda: asyncio.open_connection(to_host, to_port))
    print("ready", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])))
