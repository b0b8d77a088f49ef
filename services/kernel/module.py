"""What a service declares about itself, so the kernel can host, migrate and wire it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from sqlalchemy import MetaData

from services.kernel.events import Event

if TYPE_CHECKING:
    from services.kernel.auth import ApiKeyLookup
    from services.kernel.consumer import ConsumerSpec
    from services.kernel.db import Database
    from services.kernel.jobs import JobSpec
    from services.kernel.live import LiveConsumerSpec
    from services.kernel.runtime import Runtime


@dataclass(frozen=True)
class LoopSpec:
    """A long-running loop a worker process runs beside the jobs and consumers (the webhooks'
    delivery loop): `await run(runtime, stop)` returns once `stop` is set."""

    name: str
    run: Callable[[Runtime, asyncio.Event], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class ServiceModule:
    name: str
    schema: str
    metadata: MetaData
    router: APIRouter
    # None for a stateless service (the gateway): it owns no tables, so there is nothing to migrate.
    migrations: Path | None
    events: Sequence[type[Event]] = ()
    consumers: Sequence[ConsumerSpec] = ()
    # Consumers with no inbox, for effects that are news only now (live notifications).
    live_consumers: Sequence[LiveConsumerSpec] = ()
    jobs: Sequence[JobSpec] = ()
    loops: Sequence[LoopSpec] = ()
    # Paths (prefixes) that accept bodies over the default limit, such as bulk imports.
    large_body_paths: Sequence[str] = ()
    # Set by the service that owns API keys, so keys are checked against its table in-process.
    api_key_lookup: Callable[[Database], ApiKeyLookup] | None = None
    # Serves `GET /<name>/v1/privacy/members/{id}`, so a member's privacy export includes its data.
    privacy_export: bool = False
    # Whether `kinfolk schemas` commits an OpenAPI document for it (the gateway's contract is its
    # GraphQL schema instead).
    openapi: bool = True
    tags: Sequence[str] = field(default_factory=tuple)

    @property
    def owns_tables(self) -> bool:
        return self.migrations is not None

    @property
    def stream(self) -> str:
        """The Redis Stream this service's events are published to."""
        return f"kinfolk:events:{self.name}"
