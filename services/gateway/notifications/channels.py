"""The gateway processes' side: one Redis pub/sub connection per process, shared by every live
subscription in it.

Each subscription gets a queue of its own. The first on a member's channel SUBSCRIBEs, the last
to leave UNSUBSCRIBEs, and one reader task hands each message to the channel's queues. A pub/sub
connection per socket would cost Redis a connection for every open app; this costs one per
process, opened with the first subscription and closed with the last.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from services.kernel.loops import Backoff

log = structlog.get_logger(__name__)

CHANNEL_PREFIX = "kinfolk:gateway:member:"

# Messages waiting for one slow socket; past this its news is dropped rather than held in memory.
QUEUE_SIZE = 256

# The longest one read waits for a message before it is asked again. A read given a timeout of
# its own ends quietly when nothing came; without one, redis-py would apply the client's reply
# timeout (seconds, meant for commands) and drop the connection of every quiet subscription.
READ_WAIT_SECONDS = 60.0


def member_channel(brand_id: uuid.UUID, member_id: uuid.UUID) -> str:
    return f"{CHANNEL_PREFIX}{brand_id}:{member_id}"


class MemberChannels:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._queues: dict[str, set[asyncio.Queue[bytes]]] = {}
        self._subscribed: set[str] = set()
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        # Orders SUBSCRIBE/UNSUBSCRIBE and the opening and closing of the connection.
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def listen(self, channel: str) -> AsyncIterator[asyncio.Queue[bytes]]:
        """A queue of the channel's messages from the moment this returns until the block ends."""
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self._queues.setdefault(channel, set()).add(queue)
        try:
            await self._settle(channel)
            yield queue
        finally:
            listeners = self._queues.get(channel, set())
            listeners.discard(queue)
            if not listeners:
                self._queues.pop(channel, None)
            # Shielded: the socket's task is being cancelled, and the channel must still be let go.
            await asyncio.shield(self._settle(channel))

    async def _settle(self, channel: str) -> None:
        """Make Redis match the listeners: subscribed to `channel` exactly while it has any.

        Run under the lock from both joining and leaving, so a leave and a join racing on one
        channel end in the state the listeners ask for, whatever order they run in."""
        async with self._lock:
            wanted = bool(self._queues.get(channel))
            if wanted and channel not in self._subscribed:
                if self._pubsub is None:
                    self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                await self._pubsub.subscribe(channel)
                self._subscribed.add(channel)
                if self._reader is None:
                    self._reader = asyncio.create_task(self._read(self._pubsub))
            elif not wanted and channel in self._subscribed:
                self._subscribed.discard(channel)
                if self._subscribed:
                    assert self._pubsub is not None
                    await self._pubsub.unsubscribe(channel)
                else:
                    await self._close()

    async def _close(self) -> None:
        reader, pubsub = self._reader, self._pubsub
        self._reader, self._pubsub = None, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        if pubsub is not None:
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _read(self, pubsub: PubSub) -> None:
        backoff = Backoff()
        while True:
            try:
                message: dict[str, Any] | None = await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=READ_WAIT_SECONDS
                )
            except Exception:
                # Redis went away: the next read reconnects, and redis-py subscribes the
                # connection to every channel again. What was published meanwhile is lost.
                delay = backoff.next_delay()
                log.warning("gateway.channels.read_failed", retry_in=delay, exc_info=True)
                await asyncio.sleep(delay)
                continue
            if message is None:
                # Nothing came: a quiet wait, or a connection the kernel gave up on (Redis gone
                # silent, found by the keepalives). redis-py answers None for both, the second
                # at once and on every read after (on Python 3.11+, ETIMEDOUT is the same
                # TimeoutError as its read's own), and never reconnects: the reader would spin.
                # A PING tells them apart: on a dead connection it raises, and the next read
                # reconnects. Its PONG, on a live one, is read as a message of another type.
                try:
                    await pubsub.ping()
                except Exception:
                    delay = backoff.next_delay()
                    log.warning("gateway.channels.ping_failed", retry_in=delay, exc_info=True)
                    await asyncio.sleep(delay)
                continue
            backoff.reset()
            if message.get("type") != "message":
                continue
            channel = _text(message["channel"])
            for queue in tuple(self._queues.get(channel, ())):
                try:
                    queue.put_nowait(message["data"])
                except asyncio.QueueFull:
                    log.warning("gateway.channels.dropped", channel=channel)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def channels_of(app: Any) -> MemberChannels:
    """The process's channels for the app's Redis, made on first use."""
    channels: MemberChannels | None = getattr(app.state, "gateway_channels", None)
    if channels is None:
        channels = MemberChannels(app.state.redis)
        app.state.gateway_channels = channels
    return channels
