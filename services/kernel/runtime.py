"""The long-lived resources of one process: database, Redis, authentication."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypedDict
from urllib.parse import urlsplit

import httpx
from redis.asyncio import Redis

from services.kernel.auth import (
    ApiKeyLookup,
    ApiKeyRecord,
    ApiKeyVerifier,
    Authenticator,
    MemberTokenCodec,
    ServiceTokens,
)
from services.kernel.clients import service_client
from services.kernel.consumer import BLOCK_MILLISECONDS
from services.kernel.db import Database, connect_options
from services.kernel.errors import ServiceUnavailable
from services.kernel.module import ServiceModule
from services.kernel.settings import Settings
from services.kernel.tcp_liveness import DEFAULTS, TcpLiveness


class RedisOptions(TypedDict, total=False):
    socket_connect_timeout: float
    socket_timeout: float
    socket_keepalive: bool
    socket_keepalive_options: dict[int, int]


def redis_options(url: str, settings: Settings, liveness: TcpLiveness = DEFAULTS) -> RedisOptions:
    """redis-py's connect and reply timeouts, so a Redis that accepts and never answers fails
    a call (a 503 in a request) instead of holding it forever; and over TCP, keepalives, so a
    Redis that goes silent fails a read that waits on it (`tcp_liveness`).

    The reply timeout leaves room for the longest block a consumer asks XREADGROUP for: that
    reply is late on purpose. Pub/sub listeners pass a timeout of their own to each read
    (`get_message(timeout=...)`), which redis-py uses instead of this one: only the keepalives
    end such a read on a dead connection.
    """
    options = RedisOptions(
        socket_connect_timeout=settings.redis_timeout_seconds,
        socket_timeout=settings.redis_timeout_seconds + BLOCK_MILLISECONDS / 1000,
    )
    if urlsplit(url).scheme != "unix":  # redis-py refuses keepalive options for a Unix socket
        options["socket_keepalive"] = liveness.keepalives
        options["socket_keepalive_options"] = liveness.tcp_options()
    return options


def redis_client(url: str, settings: Settings) -> Redis:
    client: Redis = Redis.from_url(url, **redis_options(url, settings))
    return client


class RemoteApiKeyLookup:
    """Asks the members service (in another process) about a key it has not seen recently."""

    def __init__(
        self, base_url: str, timeout: float, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._client = service_client(base_url, timeout=timeout, transport=transport)

    async def __call__(self, key_id: uuid.UUID, token: str) -> ApiKeyRecord | None:
        try:
            response = await self._client.post(
                "/members/v1/internal/api-keys/verify", json={"key": token}
            )
            if response.status_code in (401, 404):
                return None
            response.raise_for_status()
        except httpx.HTTPError as exc:
            # The key may well be good: the caller should retry, not be told it erred.
            raise ServiceUnavailable(
                "API keys cannot be checked right now (the members service did not answer); "
                "retry shortly."
            ) from exc
        return ApiKeyRecord.from_json(response.content)

    async def aclose(self) -> None:
        await self._client.aclose()


@dataclass
class Runtime:
    settings: Settings
    database: Database
    redis: Redis
    authenticator: Authenticator

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        settings: Settings,
        services: Sequence[ServiceModule],
        *,
        database_url: str,
        redis_url: str,
    ) -> AsyncIterator[Runtime]:
        database = Database(database_url, **connect_options(settings))
        redis = redis_client(redis_url, settings)
        remote: RemoteApiKeyLookup | None = None
        lookup: ApiKeyLookup
        local = next((s.api_key_lookup for s in services if s.api_key_lookup is not None), None)
        if local is not None:
            lookup = local(database)
        elif settings.members_url:
            remote = RemoteApiKeyLookup(settings.members_url, settings.outbound_timeout_seconds)
            lookup = remote
        else:
            raise RuntimeError(
                "API keys are checked by the members service: run it in this process "
                "or set KINFOLK_MEMBERS_URL"
            )
        authenticator = Authenticator(
            tokens=MemberTokenCodec(settings),
            api_keys=ApiKeyVerifier(redis, lookup, settings.api_key_cache_seconds),
            services=ServiceTokens(settings),
        )
        try:
            yield cls(settings, database, redis, authenticator)
        finally:
            if remote is not None:
                await remote.aclose()
            await redis.aclose()
            await database.dispose()
