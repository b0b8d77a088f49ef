"""Run the relay and every consumer until no event is left: what the background workers do
shortly after a write, done at once. For seeding the demo and for end-to-end tests."""

from __future__ import annotations

from collections.abc import Sequence

from services.kernel.consumer import ConsumerRunner
from services.kernel.live import LiveConsumerRunner, live_consumer_specs
from services.kernel.module import ServiceModule
from services.kernel.relay import Relay
from services.kernel.runtime import Runtime

# Draining works through a backlog, not a trickle: bigger reads than the workers' own make the
# per-round-trip costs (XREADGROUP, the inbox insert, XACK) small next to the handling.
DRAIN_RELAY_BATCH = 5_000
DRAIN_CONSUMER_BATCH = 2_000


async def drain_events(
    runtime: Runtime, services: Sequence[ServiceModule], consumer: str = "drain"
) -> int:
    """Publish every outbox and handle every event, repeatedly, until a round does nothing
    (an event's handler may write new events). Returns how many messages were handled."""
    settings = runtime.settings.model_copy(
        update={
            "relay_batch_size": max(runtime.settings.relay_batch_size, DRAIN_RELAY_BATCH),
            "consumer_batch_size": max(runtime.settings.consumer_batch_size, DRAIN_CONSUMER_BATCH),
        }
    )
    relay = Relay(runtime.database, runtime.redis, services, settings)
    specs = [spec for service in services for spec in service.consumers]
    runner = ConsumerRunner(runtime.database, runtime.redis, specs, settings, consumer)
    live = LiveConsumerRunner(runtime.redis, live_consumer_specs(services), settings, consumer)
    # Live groups start at the streams' end: made before publishing, they see this drain's events.
    await live.prepare()
    total = 0
    while True:
        published = await relay.publish_pending()
        handled = 0
        while (batch := await runner.process_once() + await live.process_once()) > 0:
            handled += batch
        total += handled
        if published == 0 and handled == 0:
            # As the relay does: what every group has acknowledged leaves the streams.
            await relay.trimmer.trim_all()
            return total
