"""Builds the ASGI app for one service or for all of them: same middleware, errors and probes."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field
from sqlalchemy import text

from services.kernel.errors import ServiceUnavailable, install_error_handlers
from services.kernel.metrics import exposition
from services.kernel.middleware import (
    BodyLimitMiddleware,
    RateLimitMiddleware,
    RequestContextMiddleware,
    VerifiedOnceAuthenticator,
)
from services.kernel.module import ServiceModule
from services.kernel.rate_limits import RateLimiter
from services.kernel.runtime import Runtime
from services.kernel.settings import Settings

RuntimeFactory = Callable[[], AbstractAsyncContextManager[Runtime]]


@asynccontextmanager
async def never_started() -> AsyncIterator[Runtime]:
    """The runtime factory of an app that is never started: one whose contracts are rendered,
    or one that tests point at a runtime of their own (`attach_runtime`)."""
    raise RuntimeError("this app is never started: it has no runtime of its own")
    yield  # pragma: no cover


@asynccontextmanager
async def _opened(runtime: RuntimeFactory | Runtime) -> AsyncIterator[Runtime]:
    """A ready runtime as it is (its opener closes it), or the factory's, open while in use."""
    if isinstance(runtime, Runtime):
        yield runtime
        return
    async with runtime() as opened:
        yield opened


def build_app(
    services: Sequence[ServiceModule],
    settings: Settings,
    runtime: RuntimeFactory | Runtime,
    *,
    title: str | None = None,
) -> FastAPI:
    """An app serving `services`. `runtime` is a ready Runtime (tests) or a factory (servers)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with _opened(runtime) as opened:
            attach_runtime(app, opened)
            # What start-up made (modules, models, the app, the schema: some 360,000 objects
            # with every service) lives as long as the process. Frozen, it is left out of the
            # collector's full passes, which otherwise walked all of it (125-140 ms, during
            # which the process answers nothing) to find it still alive.
            gc.freeze()
            yield

    names = ", ".join(s.name for s in services)
    app = FastAPI(
        title=title or f"Kinfolk {names}",
        version="1",
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    # Service clients talk in process (ASGI) to the services listed here, over HTTP to the others.
    app.state.services = tuple(services)
    if isinstance(runtime, Runtime):
        # Tests drive the app without a lifespan; attach eagerly so state is there at once.
        attach_runtime(app, runtime)
    install_error_handlers(app)

    large = tuple(p for s in services for p in s.large_body_paths)

    def limit_for(path: str) -> int:
        if path.startswith(large) if large else False:
            return settings.max_import_bytes
        return settings.max_body_bytes

    # The last added runs first: request ids and logs, then rate limits (a flood is refused
    # before its bodies are read), then body limits.
    app.add_middleware(BodyLimitMiddleware, limit_for=limit_for)
    app.add_middleware(
        RateLimitMiddleware,
        member_limit=settings.rate_limit_member_per_minute,
        api_key_limit=settings.rate_limit_api_key_per_minute,
    )
    app.add_middleware(RequestContextMiddleware)

    for service in services:
        app.include_router(service.router)
    _add_probes(app)
    _document_errors(app)
    return app


class ErrorBody(BaseModel):
    """Every 4xx and 5xx answer: a stable code to branch on and a detail that says what to fix."""

    error: str = Field(description="A stable code, e.g. ValidationError, NotFound, OutOfStock")
    detail: Any = Field(
        description="What went wrong and how to fix it: a sentence, or for ValidationError a "
        "list of {loc, msg, type}"
    )


_ERROR_STATUSES = {
    "400": "Malformed request (InvalidJSON, InvalidCursor, ...)",
    "401": "Missing, invalid, expired or revoked credentials",
    "403": "The credentials do not allow this",
    "404": "Not found in this brand",
    "409": "Conflicts with the current state",
    "413": "Body too large",
    "422": "Invalid fields (ValidationError) or a rule of the request refused",
    "429": "Too many requests from this member or API key (RateLimited); retry after "
    "`Retry-After` seconds",
}


def _document_errors(app: FastAPI) -> None:
    """Make the OpenAPI document say what the error handlers really answer, on every operation."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = get_openapi(
            title=app.title, version=app.version, routes=app.routes, description=app.description
        )
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas["Error"] = ErrorBody.model_json_schema()
        content = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                for status, description in _ERROR_STATUSES.items():
                    response = responses.setdefault(status, {"description": description})
                    response["content"] = content
        # FastAPI's own 422 shape is never sent: our handler answers with `Error`.
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def attach_runtime(app: FastAPI, runtime: Runtime) -> None:
    """Point a built app at a runtime (tests reuse one app across tests, each with its own)."""
    app.state.runtime = runtime
    app.state.database = runtime.database
    app.state.redis = runtime.redis
    # Verifies each request's credentials once, shared by its rate limit check and its route.
    app.state.authenticator = VerifiedOnceAuthenticator.of(runtime.authenticator)
    app.state.settings = runtime.settings
    app.state.rate_limiter = RateLimiter(runtime.redis)


def _add_probes(app: FastAPI) -> None:
    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> dict[str, str]:
        runtime: Runtime = request.app.state.runtime
        try:
            async with runtime.database.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:
            raise ServiceUnavailable(f"The database is not reachable: {exc}") from exc
        try:
            await runtime.redis.ping()
        except Exception as exc:
            raise ServiceUnavailable(f"Redis is not reachable: {exc}") from exc
        return {"status": "ready", "database": "ok", "redis": "ok"}

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        body, content_type = exposition()
        return Response(body, media_type=content_type)
