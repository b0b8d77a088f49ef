"""What every benchmark shares: servers (configured or embedded), a scratch database, the report."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit, urlunsplit

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from benchmarks._http import Connection
from services.kernel.db import asyncpg_url, libpq_url
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


def pgbench_binary() -> str:
    """pgserver's own pgbench where it is installed (the embedded servers), else the PATH's."""
    import pgserver

    bundled = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pgbench"
    return str(bundled) if bundled.exists() else shutil.which("pgbench") or "pgbench"


def pgbench_args(url: str) -> list[str]:
    """Connection arguments for a pgbench run against the database at `url`."""
    parts = urlsplit(libpq_url(url))
    host = parse_qs(parts.query).get("host", [parts.hostname or "127.0.0.1"])[0]
    args = ["-h", host, "-U", parts.username or "postgres"]
    if parts.port:
        args += ["-p", str(parts.port)]
    return [*args, parts.path.lstrip("/")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rpartition(")")[2].split()[1])
            except OSError:
                continue
            children.setdefault(parent, []).append(int(entry))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def worker_of_port(server_pid: int) -> dict[int, int]:
    """Which server process holds the connection from each local client port (Linux /proc)."""
    sockets: dict[str, int] = {}
    for pid in descendants(server_pid):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                sockets[target[8:-1]] = pid
    owners: dict[int, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as rows:
                lines = rows.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[9] in sockets:
                owners[int(fields[2].rsplit(":", 1)[1], 16)] = sockets[fields[9]]
    return owners


async def open_balanced_connections(
    base: str, server_pid: int, count: int, workers: int
) -> tuple[list[Connection], list[int]]:
    """`count` keep-alive connections spread evenly over `workers` server processes.

    The workers share one listening socket: connections opened together all tend to land on
    whichever worker accepts first, and stay there, so one worker would do nearly all the work
    while the other idles (a load balancer in front of real servers spreads them). A connection
    that lands on a worker already holding its share is closed and opened again. Returns the
    connections and how many each worker holds.
    """
    connections: list[Connection] = []
    per_worker: dict[int, int] = {}
    share = -(-count // workers)
    for _ in range(count * 20):
        if len(connections) == count:
            break
        connection = await Connection.open(base)
        await connection.get("/healthz")
        worker = worker_of_port(server_pid).get(connection.local_port, -1)
        if worker != -1 and per_worker.get(worker, 0) >= share:
            await connection.aclose()
            await asyncio.sleep(0.01)
            continue
        per_worker[worker] = per_worker.get(worker, 0) + 1
        connections.append(connection)
    while len(connections) < count:  # could not balance: take what comes
        connections.append(await Connection.open(base))
    return connections, sorted(per_worker.values(), reverse=True)


async def wait_ready(base: str, server: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient(base_url=base) as client:
        for _ in range(1200):
            if server.poll() is not None:
                sys.exit("the server exited while starting")
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    sys.exit("the server did not become ready in two minutes")


def _cpu_seconds(pids: set[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def _postgres_pids() -> set[int]:
    """PostgreSQL's processes when it runs on this machine (its backends do the queries'
    work); empty when it is elsewhere."""
    found: set[int] = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as comm:
                    if comm.read().strip() == "postgres":
                        found.add(int(entry))
            except OSError:
                continue
    return found


class CpuPerRequest(NamedTuple):
    """CPU milliseconds a request took in each part of the system."""

    server: float
    generator: float  # this process, the load generator
    postgresql: float  # every database of the server; its processes that exited are not counted

    def describe(self) -> str:
        return (
            f"server {self.server} ms, load generator {self.generator} ms, "
            f"PostgreSQL {self.postgresql} ms"
        )

    def busy_share(self, rate: float) -> float:
        """The share of this machine's cores the three kept busy at `rate` requests a second:
        queueing, and with it the tail of the latencies, grows steeply as it nears 1."""
        total_ms = self.server + self.generator + self.postgresql
        return total_ms * rate / 1000 / (os.cpu_count() or 1)


class CpuMeter:
    """CPU seconds of the server's processes, of PostgreSQL's (when it runs on this machine) and
    of this one (the load generator) over a run: where a request's time goes on a shared
    machine."""

    def __init__(self, server_pid: int) -> None:
        self._server_pid = server_pid
        self._server = self._database = self._client = 0.0

    def _server_seconds(self) -> float:
        return _cpu_seconds({self._server_pid, *descendants(self._server_pid)})

    def start(self) -> None:
        self._server = self._server_seconds()
        self._database = _cpu_seconds(_postgres_pids())
        self._client = time.process_time()

    def per_request_ms(self, requests: int) -> CpuPerRequest:
        """CPU milliseconds per request since `start`."""
        server = (self._server_seconds() - self._server) / requests * 1000
        client = (time.process_time() - self._client) / requests * 1000
        database = (_cpu_seconds(_postgres_pids()) - self._database) / requests * 1000
        return CpuPerRequest(round(server, 2), round(client, 2), round(database, 2))


_PROBE_LOOP = """
import time
while True:
    started = time.process_time()
    total = 0
    for i in range(20_000):
        total += i * i
    print(f"{time.time():.3f} {(time.process_time() - started) * 1000:.4f}", flush=True)
    time.sleep(0.1)
"""


class MachineProbe:
    """How fast this shared machine ran, second by second: a fixed loop's CPU time, ten times a
    second, in a process of its own (about 1% of a core). Another tenant on the same host makes
    every process's CPU slower at once, the server's included; a second in which the loop took
    twice its usual time was such a second, and its latencies say little about the server."""

    def __init__(self) -> None:
        self._out = tempfile.NamedTemporaryFile(prefix="kinfolk-machine-probe-")  # noqa: SIM115
        self._path = Path(self._out.name)
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> MachineProbe:
        self._process = subprocess.Popen([sys.executable, "-c", _PROBE_LOOP], stdout=self._out)
        return self

    def __exit__(self, *_: object) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
        self._out.close()  # and gone

    def slowest_second(self, since: float, until: float) -> tuple[float, float]:
        """The loop's median CPU milliseconds over the seconds between two `time.time()`s, and
        how many times that its slowest second's median was."""
        seconds: dict[int, list[float]] = {}
        for line in self._path.read_text().splitlines():
            at, took = (float(part) for part in line.split())
            if since <= at < until:
                seconds.setdefault(int(at - since), []).append(took)
        if not seconds:
            return 0.0, 0.0
        medians = [statistics.median(loops) for loops in seconds.values()]
        usual = statistics.median(medians)
        return round(usual, 3), round(max(medians) / usual, 2)


def ms(latencies: list[float], percentile: int) -> float:
    return statistics.quantiles(latencies, n=100)[percentile - 1] * 1000


Send = Callable[[Connection, int], Awaitable[None]]


async def closed_loop(
    clients: list[Connection], send: Send, seconds: float
) -> tuple[list[float], float]:
    """Each connection sends its next request as soon as the last one is answered; returns
    every latency and the requests per second."""
    latencies: list[float] = []
    start = time.perf_counter()
    stop = start + seconds

    async def client_loop(client: Connection, k: int) -> None:
        i = k
        while time.perf_counter() < stop:
            sent = time.perf_counter()
            await send(client, i)
            latencies.append(time.perf_counter() - sent)
            i += len(clients)

    await asyncio.gather(*(client_loop(c, k) for k, c in enumerate(clients)))
    return latencies, len(latencies) / (time.perf_counter() - start)


def peak_rss_mb() -> float:
    """This process's peak resident memory. Not `getrusage`'s ru_maxrss: Linux carries that
    over from the parent through fork and exec, so a child started by a big parent reports
    the parent's peak. VmHWM belongs to the process's own address space."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")
