"""Stopping a process's components: a component slow to stop is cancelled after the grace, and
the stop still completes cleanly (a crash on Ctrl-C in `kinfolk dev` while workers were busy);
and the probes a process without HTTP of its own serves."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest
from redis.asyncio import Redis

from services import processes
from services.kernel.db import Database
from services.kernel.settings import Settings
from tests.conftest import make_runtime


async def test_a_component_slow_to_stop_is_cancelled_and_the_stop_completes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(processes, "STOP_GRACE_SECONDS", 0.1)
    stop = asyncio.Event()
    finished: list[str] = []

    async def prompt() -> None:
        await stop.wait()
        finished.append("prompt")

    async def stubborn() -> None:
        try:
            await asyncio.sleep(3600)  # ignores `stop`
        except asyncio.CancelledError:
            finished.append("stubborn cancelled")
            raise

    async def broken() -> None:
        raise RuntimeError("boom")

    tasks = [asyncio.create_task(c()) for c in (prompt, stubborn, broken)]
    stop.set()
    async with asyncio.timeout(5):
        await processes._stop_all(tasks)
    assert sorted(finished) == ["prompt", "stubborn cancelled"]
    assert all(task.done() for task in tasks)


async def test_a_cancellation_while_stopping_still_stops_every_component(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As when uvicorn raises SIGINT again after serving and asyncio cancels the main task."""
    monkeypatch.setattr(processes, "STOP_GRACE_SECONDS", 0.5)
    stop = asyncio.Event()
    cancelled: list[str] = []
    finished: list[str] = []

    async def prompt() -> None:
        await asyncio.sleep(0.2)  # finishes within the grace, after the cancellation
        finished.append("prompt")

    async def slow_to_stop() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append("component")
            raise

    tasks = [asyncio.create_task(slow_to_stop()), asyncio.create_task(prompt())]
    stop.set()
    stopping = asyncio.create_task(processes._stop_all(tasks))
    await asyncio.sleep(0.05)
    stopping.cancel()  # the signal's cancellation arrives while the stop waits
    async with asyncio.timeout(5):
        await stopping  # completes: it does not raise CancelledError
    assert cancelled == ["component"]
    assert finished == ["prompt"]  # it was given the rest of the grace, not cancelled
    assert all(task.done() for task in tasks)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_the_probes_of_a_process_without_http_answer_until_it_stops(
    base_settings: Settings, database: Database, redis: Redis
) -> None:
    """The relay's and the workers' `/healthz`, `/readyz` and `/metrics`, on `metrics_port`;
    none without one."""
    port = _free_port()
    stop = asyncio.Event()
    unset = make_runtime(base_settings, database, redis)
    async with asyncio.timeout(5):
        await processes._probes(unset, "Kinfolk relay", stop)  # no port: nothing served

    settings = base_settings.model_copy(update={"metrics_port": port})
    runtime = make_runtime(settings, database, redis)
    serving = asyncio.create_task(processes._probes(runtime, "Kinfolk relay", stop))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        async with asyncio.timeout(10):
            while True:
                try:
                    health = await client.get("/healthz")
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.05)
        ready = await client.get("/readyz")
        metrics = await client.get("/metrics")
        missing = await client.get("/members/v1/members")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (
        200,
        {"status": "ready", "database": "ok", "redis": "ok"},
    )
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    # The process's own counters, the relay's among them, and its probes counted as requests.
    assert "# TYPE kinfolk_relay_events_published_total counter" in metrics.text
    assert 'kinfolk_http_requests_total{method="GET",route="/healthz",status="200"}' in (
        metrics.text
    )
    assert missing.status_code == 404  # only the probes: no service is hosted
    stop.set()
    async with asyncio.timeout(5):
        await serving
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(timeout=2) as client:
            await client.get(f"http://127.0.0.1:{port}/healthz")


async def _idle_connection_survives(port: int) -> bool:
    """Whether a keep-alive connection that answered once still answers after 1.3 idle
    seconds (uvicorn counts its keep-alive in whole seconds)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = b"GET /healthz HTTP/1.1\r\nHost: kinfolk\r\n\r\n"
    try:
        writer.write(request)
        first = await reader.readuntil(b'{"status":"ok"}')
        assert first.startswith(b"HTTP/1.1 200")
        await asyncio.sleep(1.3)
        writer.write(request)
        second = await reader.read(1024)  # b"" once the server closed the connection
        return second.startswith(b"HTTP/1.1 200")
    finally:
        writer.close()


@pytest.mark.parametrize(("keep_alive", "survives"), [(1, False), (30, True)])
async def test_idle_connections_are_kept_open_as_long_as_the_settings_say(
    base_settings: Settings, database: Database, redis: Redis, keep_alive: int, survives: bool
) -> None:
    """A load balancer reuses idle connections up to its own timeout (AWS's ALB: 60 s); a server
    closing them sooner (uvicorn's default is 5 s) makes some of its requests fail. Shown on the
    probes' server, which every process's HTTP shares its configuration with."""
    port = _free_port()
    settings = base_settings.model_copy(
        update={"metrics_port": port, "http_keep_alive_seconds": keep_alive}
    )
    stop = asyncio.Event()
    serving = asyncio.create_task(
        processes._probes(make_runtime(settings, database, redis), "Kinfolk relay", stop)
    )
    try:
        async with asyncio.timeout(10):
            while True:
                try:
                    survived = await _idle_connection_survives(port)
                    break
                except ConnectionRefusedError:
                    await asyncio.sleep(0.05)
        assert survived is survives
    finally:
        stop.set()
        async with asyncio.timeout(5):
            await serving
