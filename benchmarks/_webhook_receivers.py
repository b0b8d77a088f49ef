"""Fast webhook receivers for `benchmarks.webhooks`: plain asyncio HTTP/1.1 servers (keep-alive)
on the given ports that answer 204 at once and log each request's `webhook-id` with the
wall-clock time it arrived. The log is written when the process is told to stop (SIGTERM), so
writing it costs the receivers nothing while they are measured.

Run: python -m benchmarks._webhook_receivers LOG_PATH PORT [PORT ...]
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time

ANSWER = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n"
ID_HEADER = b"\r\nwebhook-id:"
LENGTH_HEADER = b"\r\ncontent-length:"


class Receiver(asyncio.Protocol):
    def __init__(self, port: int, log: list[tuple[int, bytes, float]]) -> None:
        self.port = port
        self.log = log
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            length = 0
            at = head.find(LENGTH_HEADER)
            if at >= 0:
                length = int(
                    head[at + len(LENGTH_HEADER) : head.find(b"\r\n", at + 2)].strip() or 0
                )
            if len(self.buffer) < end + 4 + length:
                return
            at = head.find(ID_HEADER)
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                webhook_id = self.buffer[at + len(ID_HEADER) : stop if stop > 0 else end].strip()
                self.log.append((self.port, webhook_id, time.time()))
            self.buffer = self.buffer[end + 4 + length :]
            assert self.transport is not None
            self.transport.write(ANSWER)


async def serve(ports: list[int]) -> list[tuple[int, bytes, float]]:
    loop = asyncio.get_running_loop()
    log: list[tuple[int, bytes, float]] = []
    servers = [
        await loop.create_server(lambda p=port: Receiver(p, log), "127.0.0.1", port)
        for port in ports
    ]
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("listening", flush=True)
    await stop.wait()
    for server in servers:
        server.close()
    return log


def main(log_path: str, ports: list[int]) -> None:
    log = asyncio.run(serve(ports))
    with open(log_path, "w") as out:
        for port, webhook_id, at in log:
            out.write(f"{port} {webhook_id.decode()} {at:.6f}\n")


if __name__ == "__main__":
    main(sys.argv[1], [int(p) for p in sys.argv[2:]])
