"""The ASGI app for production servers: `uvicorn --factory services.asgi:create_app --workers N`.

Each worker process opens its own runtime in the app's lifespan. Workers never start embedded
servers: KINFOLK_DATABASE_URL and KINFOLK_REDIS_URL must be set (`kinfolk serve --workers N`
sets them for you). KINFOLK_SERVICES (comma-separated) picks the services; all by default.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI

from services.kernel.app import build_app
from services.kernel.logging import configure_logging
from services.kernel.module import ServiceModule
from services.kernel.runtime import Runtime
from services.kernel.settings import get_settings
from services.registry import SERVICES, service_named


def hosted_services() -> Sequence[ServiceModule]:
    names = os.environ.get("KINFOLK_SERVICES", "")
    if not names.strip():
        return SERVICES
    return [service_named(name.strip()) for name in names.split(",") if name.strip()]


def create_app() -> FastAPI:
    settings = get_settings()
    configure_logging(settings)
    database_url, redis_url = settings.database_url, settings.redis_url
    if not database_url or not redis_url:
        raise RuntimeError(
            "services.asgi needs KINFOLK_DATABASE_URL and KINFOLK_REDIS_URL; "
            "use `kinfolk serve` to run on the embedded servers"
        )
    services = hosted_services()

    def runtime() -> AbstractAsyncContextManager[Runtime]:
        return Runtime.open(settings, services, database_url=database_url, redis_url=redis_url)

    return build_app(services, settings, runtime)
