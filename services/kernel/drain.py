"""Run the relay and every consumer until no event is left: what the background workers do
shortly after a write, done at once. For seeding the demo and for end-to-end tests."""

from __future__ import annotations

from collections.abc import Sequence

from services.kernel.consumer import ConsumerRunner
from services.kernel.module import ServiceModule
from services.kernel.relay import Relay
from services.kernel.runtime import Runtime


async def drain_events(
    runtime: Runtime, services: Sequence[ServiceModule], consumer: str = "drain"
) -> int:
    """Publish every outbox and handle every event, repeatedly, until a round does nothing
    (an event's handler may write new events). Returns how many messages were handled."""
    relay = Relay(runtime.database, runtime.redis, services, runtime.settings)
    specs = [spec for service in services for spec in service.consumers]
    runner = ConsumerRunner(runtime.database, runtime.redis, specs, runtime.settings, consumer)
    total = 0
    while True:
        published = await relay.publish_pending()
        handled = 0
        while (batch := await runner.process_once()) > 0:
            handled += batch
        total += handled
        if published == 0 and handled == 0:
            return total
