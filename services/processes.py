"""How Kinfolk's processes run: all in one (`kinfolk dev`), or one piece each (containers).

Every entry point opens the same `Runtime` and runs the same components (HTTP app, outbox relay,
event consumers, job worker); `kinfolk dev` simply runs all of them in one event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Coroutine, Iterator, Sequence
from typing import Any, Literal

import structlog
import uvicorn

from services.demo import seed as demo
from services.kernel.app import build_app
from services.kernel.clients import Peers
from services.kernel.consumer import ConsumerRunner
from services.kernel.db import Database
from services.kernel.embedded import InfrastructureUrls
from services.kernel.jobs import run_worker
from services.kernel.live import LiveConsumerRunner, live_consumer_specs
from services.kernel.loops import cancel_and_wait
from services.kernel.metrics import shared_between_processes
from services.kernel.migrations import migrate
from services.kernel.module import ServiceModule
from services.kernel.relay import Relay
from services.kernel.runtime import Runtime
from services.kernel.settings import Settings
from services.members import service as members_service
from services.registry import SERVICES, service_named
from services.webhooks.urls import LOOPBACK_NETWORKS

log = structlog.get_logger(__name__)

# How long stopping components (the relay, consumers, jobs, the delivery loop) may take together
# before they are cancelled.
STOP_GRACE_SECONDS = 10.0


def _uvicorn(app: Any, settings: Settings, host: str, port: int) -> uvicorn.Server:
    return uvicorn.Server(_http_config(app, settings, host=host, port=port, lifespan="on"))


def _http_options(settings: Settings) -> dict[str, Any]:
    """How every process serves HTTP: no access log of uvicorn's (the app logs requests), and
    idle connections kept as the settings say."""
    return {
        "log_config": None,
        "access_log": False,
        "timeout_keep_alive": settings.http_keep_alive_seconds,
    }


def _http_config(
    app: Any, settings: Settings, *, host: str, port: int, lifespan: Literal["on", "off"]
) -> uvicorn.Config:
    return uvicorn.Config(app, host=host, port=port, lifespan=lifespan, **_http_options(settings))


async def _announce_when_listening(server: uvicorn.Server, message: str) -> None:
    while not server.started:
        if server.should_exit:
            return
        await asyncio.sleep(0.05)
    print(message, flush=True)


async def _serve_until_stopped(
    server: uvicorn.Server,
    background: Sequence[Coroutine[Any, Any, None]],
    stop: asyncio.Event,
    announce: str | None = None,
) -> None:
    """Serve HTTP; when the server exits (a signal), stop the background components and wait."""
    if announce is not None:
        background = [*background, _announce_when_listening(server, announce)]
    tasks = [asyncio.create_task(c, name=getattr(c, "__qualname__", None)) for c in background]
    try:
        await server.serve()
    finally:
        stop.set()
        await _stop_all(tasks)


async def _stop_all(tasks: Sequence[asyncio.Task[None]]) -> None:
    """Let the components finish on `stop` within a shared grace; cancel what has not (a job's
    transaction rolls back, a delivery's lease runs out: nothing is lost) and wait for that, so
    none is left running and a slow one does not turn a clean stop into a crash."""
    if not tasks:
        return
    deadline = asyncio.get_running_loop().time() + STOP_GRACE_SECONDS
    try:
        await asyncio.wait(tasks, timeout=STOP_GRACE_SECONDS)
    except asyncio.CancelledError:
        # uvicorn raises the signal it handled again once it has stopped serving, and asyncio
        # turns a SIGINT into a cancellation of the main task, which lands here. The process is
        # stopping already: finish the stop (the rest of the grace, then cancel what is late)
        # rather than leave the components running while their servers are shut down. A second
        # interrupt is not absorbed.
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining > 0:
            await asyncio.wait(tasks, timeout=remaining)
    late = [task for task in tasks if not task.done()]
    for task in late:
        log.warning("process.component_cancelled", component=task.get_name())
    await asyncio.gather(*(cancel_and_wait(task) for task in late))
    for task, outcome in zip(
        tasks, await asyncio.gather(*tasks, return_exceptions=True), strict=True
    ):
        if isinstance(outcome, Exception):
            log.error("process.component_failed", component=task.get_name(), exc_info=outcome)


def _consumer_runner(runtime: Runtime, services: Sequence[ServiceModule]) -> ConsumerRunner | None:
    specs = [spec for s in services for spec in s.consumers]
    if not specs:
        return None
    return ConsumerRunner(
        runtime.database,
        runtime.redis,
        specs,
        runtime.settings,
        consumer_name=f"c-{uuid.uuid4().hex[:8]}",
    )


# What `kinfolk worker` runs besides the services' own loops (named by their `LoopSpec`).
WORKER_COMPONENTS = ("jobs", "consumers", "live")


def worker_components(services: Sequence[ServiceModule]) -> tuple[str, ...]:
    """Every component name `kinfolk worker --only` accepts."""
    return (*WORKER_COMPONENTS, *(loop.name for s in services for loop in s.loops))


def _workers(
    runtime: Runtime,
    urls: InfrastructureUrls,
    services: Sequence[ServiceModule],
    stop: asyncio.Event,
    only: Sequence[str] = (),
    peers: Peers | None = None,
) -> list[Coroutine[Any, Any, None]]:
    """What `kinfolk worker` runs: the job worker, every event consumer and the services' loops
    (the webhooks' deliveries), or only the components named, to scale them apart. Jobs reach
    other services through `peers` (default: at their `KINFOLK_<SERVICE>_URL`)."""

    def wanted(name: str) -> bool:
        return not only or name in only

    components: list[Coroutine[Any, Any, None]] = []
    if wanted("jobs"):
        components.append(
            run_worker(
                runtime.database, urls.redis_url, services, runtime.settings, stop, peers=peers
            )
        )
    consumers = _consumer_runner(runtime, services)
    if consumers is not None and wanted("consumers"):
        components.append(consumers.run(stop))
    live = live_consumer_specs(services)
    if live and wanted("live"):
        runner = LiveConsumerRunner(
            runtime.redis, live, runtime.settings, consumer_name=f"l-{uuid.uuid4().hex[:8]}"
        )
        components.append(runner.run(stop))
    components.extend(
        loop.run(runtime, stop) for s in services for loop in s.loops if wanted(loop.name)
    )
    return components


async def run_dev(settings: Settings, urls: InfrastructureUrls, *, host: str, port: int) -> None:
    if not settings.webhooks_allowed_networks:
        # A developer wires webhooks to a receiver on their own machine.
        settings = settings.model_copy(
            update={"webhooks_allowed_networks": list(LOOPBACK_NETWORKS)}
        )
    await migrate(urls.database_url, SERVICES)
    async with Runtime.open(
        settings, SERVICES, database_url=urls.database_url, redis_url=urls.redis_url
    ) as runtime:
        app = build_app(SERVICES, settings, runtime, title="Kinfolk")
        seeded = await demo.ensure_demo_brand(settings, runtime, app)
        stop = asyncio.Event()
        relay = Relay(runtime.database, runtime.redis, SERVICES, settings).run(stop)
        # One process hosts every service: jobs call them in process, as requests do.
        components = [relay, *_workers(runtime, urls, SERVICES, stop, peers=Peers.of(app))]
        banner = demo.banner(settings, urls, seeded, host=host, port=port)
        await _serve_until_stopped(_uvicorn(app, settings, host, port), components, stop, banner)


def _hosted(service: str) -> Sequence[ServiceModule]:
    return SERVICES if service == "all" else [service_named(service)]


async def serve_one(
    settings: Settings, urls: InfrastructureUrls, service: str, *, host: str, port: int
) -> None:
    services = _hosted(service)
    async with Runtime.open(
        settings, services, database_url=urls.database_url, redis_url=urls.redis_url
    ) as runtime:
        app = build_app(services, settings, runtime)
        await _serve_until_stopped(_uvicorn(app, settings, host, port), [], asyncio.Event())


def serve_many(
    settings: Settings,
    urls: InfrastructureUrls,
    service: str,
    *,
    host: str,
    port: int,
    workers: int,
) -> None:
    """Several worker processes through `services.asgi`, on the URLs resolved here."""
    os.environ["KINFOLK_DATABASE_URL"] = urls.database_url
    os.environ["KINFOLK_REDIS_URL"] = urls.redis_url
    if service != "all":
        os.environ["KINFOLK_SERVICES"] = service
    with shared_between_processes():
        uvicorn.run(
            "services.asgi:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            **_http_options(settings),
        )


class _SideServer(uvicorn.Server):
    """An HTTP server beside a process's main work: the process handles the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _probes(runtime: Runtime, title: str, stop: asyncio.Event) -> None:
    """`/healthz`, `/readyz` and `/metrics` of a process that serves no HTTP otherwise (the
    relay, the workers), on `metrics_port` when it is set, until `stop`. Served from the
    process's own event loop, so a loop that is stuck fails its liveness probe."""
    settings = runtime.settings
    if settings.metrics_port is None:
        return
    app = build_app([], settings, runtime, title=title)
    server = _SideServer(
        _http_config(
            app, settings, host=settings.metrics_host, port=settings.metrics_port, lifespan="off"
        )
    )
    serving = asyncio.create_task(server.serve(), name="probes")
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([serving, stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        server.should_exit = True
        stopping.cancel()
    await serving


async def run_relay(settings: Settings, urls: InfrastructureUrls, stop: asyncio.Event) -> None:
    async with Runtime.open(
        settings, SERVICES, database_url=urls.database_url, redis_url=urls.redis_url
    ) as runtime:
        await asyncio.gather(
            Relay(runtime.database, runtime.redis, SERVICES, settings).run(stop),
            _probes(runtime, "Kinfolk relay", stop),
        )


async def run_workers(
    settings: Settings,
    urls: InfrastructureUrls,
    stop: asyncio.Event,
    only: Sequence[str] = (),
    services: Sequence[ServiceModule] = SERVICES,
) -> None:
    """The workers of `services` (all by default), or only the `only` components of them."""
    async with Runtime.open(
        settings, SERVICES, database_url=urls.database_url, redis_url=urls.redis_url
    ) as runtime:
        await asyncio.gather(
            *_workers(runtime, urls, services, stop, only),
            _probes(runtime, "Kinfolk worker", stop),
        )


async def create_brand_with_key(urls: InfrastructureUrls, name: str) -> tuple[uuid.UUID, str]:
    await migrate(urls.database_url, SERVICES)
    database = Database(urls.database_url)
    try:
        async with database.unit_of_work() as session:
            brand, api_key = await members_service.create_brand(session, name)
        return brand.id, api_key
    finally:
        await database.dispose()
