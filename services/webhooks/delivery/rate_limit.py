"""Per-endpoint rate limits shared by every worker process: a counter per endpoint and second
in Redis. An attempt over the limit waits for the next second; it holds one of the endpoint's
concurrency slots meanwhile, so a limited endpoint never takes more of the worker than that."""

from __future__ import annotations

import asyncio
import time
import uuid

from redis.asyncio import Redis

PREFIX = "kinfolk:webhooks:rate"


class RateLimiter:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def acquire(self, endpoint_id: uuid.UUID, per_second: int) -> None:
        """Return once this attempt fits in the endpoint's rate."""
        while True:
            now = time.time()
            second = int(now)
            key = f"{PREFIX}:{endpoint_id}:{second}"
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.incr(key)
                pipe.expire(key, 2)
                count, _ = await pipe.execute()
            if count <= per_second:
                return
            await asyncio.sleep(second + 1 - now)
