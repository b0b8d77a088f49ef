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

from benchmarks._http_sink import HttpSink


class Receiver(HttpSink):
    def __init__(self, port: int, log: list[tuple[int, bytes, float]]) -> None:
        super().__init__()
        self.port = port
        self.log = log

    def received(self, headers: dict[bytes, bytes], body: bytes) -> None:
        webhook_id = headers.get(b"webhook-id")
        if webhook_id is not None:
            self.log.append((self.port, webhook_id, time.time()))


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
