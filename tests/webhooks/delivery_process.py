"""The delivery loop alone in a process of its own, for the end-to-end test to kill: what
`kinfolk worker --only webhooks.deliveries` runs (`DeliveryWorker.run` on the process's database,
Redis and settings, from KINFOLK_* variables, until SIGTERM), without first importing every other
service as the command does, which costs seconds a start on a small machine."""

from __future__ import annotations

import asyncio
import signal

from redis.asyncio import Redis

from services.kernel.db import Database
from services.kernel.settings import Settings
from services.webhooks.delivery.worker import DeliveryWorker


async def main() -> None:
    settings = Settings()
    assert settings.database_url, "set KINFOLK_DATABASE_URL"
    assert settings.redis_url, "set KINFOLK_REDIS_URL"
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    database = Database(settings.database_url)
    redis = Redis.from_url(settings.redis_url)
    try:
        await DeliveryWorker(database, redis, settings).run(stop)
    finally:
        await redis.aclose()
        await database.dispose()


if __name__ == "__main__":
    asyncio.run(main())
