"""Per-endpoint rate limits shared by every worker process: the kernel's sliding-window limiter
over one second, per endpoint. An attempt over the limit waits until it fits; it holds one of the
endpoint's concurrency slots meanwhile, so a limited endpoint never takes more of the worker than
that."""

from __future__ import annotations

import asyncio
import uuid

from redis.asyncio import Redis

from services.kernel.rate_limits import Bucket, RateLimiter


class EndpointRateLimiter:
    def __init__(self, redis: Redis) -> None:
        self._limiter = RateLimiter(redis, window_seconds=1)

    async def acquire(self, endpoint_id: uuid.UUID, per_second: int) -> None:
        """Return once this attempt fits in the endpoint's rate."""
        bucket = Bucket(f"webhook:{endpoint_id}", per_second, "webhook_endpoint", "this endpoint")
        while True:
            decision = await self._limiter.hit(bucket)
            if decision.allowed:
                return
            await asyncio.sleep(decision.retry_after_ms / 1000)
