"""The workers' side: a live consumer that publishes each member's news on their channel."""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from redis.asyncio import Redis

from services.gateway.notifications.channels import member_channel
from services.gateway.notifications.messages import NOTIFYING_EVENTS, encode, message_for
from services.kernel.clock import utcnow
from services.kernel.events import Event
from services.kernel.live import LiveConsumerSpec

log = structlog.get_logger(__name__)


async def publish_news(redis: Redis, events: Sequence[Event]) -> None:
    """PUBLISH one message per event that tells someone, in stream order, in one round trip.

    Pub/sub reaches every gateway process subscribed to the channel at that moment and keeps
    nothing, so a socket opened later never sees it again."""
    now = utcnow()
    published = 0
    async with redis.pipeline(transaction=False) as pipe:
        for event in events:
            found = message_for(event, now)
            if found is None:
                continue
            member_id, message = found
            pipe.publish(member_channel(event.brand_id, member_id), encode(message))
            published += 1
        if published:
            await pipe.execute()


NEWS_CONSUMER = LiveConsumerSpec(
    name="gateway.member-news",
    services=("rewards", "community"),
    handler=publish_news,
    event_types=frozenset(cls.event_type() for cls in NOTIFYING_EVENTS),
)
