"""Errors are data: every failure the caller can fix is a 4xx with `{"error", "detail"}`."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from typing import Any

import asyncpg
import redis.exceptions
import sqlalchemy.exc
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.kernel.logging import note_logged

log = structlog.get_logger(__name__)


class KinfolkError(Exception):
    """Base of every error a caller can act on. Subclasses fix the status and the code."""

    status_code = 400
    code = "BadRequest"

    def __init__(self, detail: Any = None, *, headers: dict[str, str] | None = None) -> None:
        self.detail = detail if detail is not None else self.__class__.__doc__
        self.headers = headers
        super().__init__(str(self.detail))


class BadRequest(KinfolkError):
    """The request is not valid."""


class InvalidJSON(KinfolkError):
    """The body is not valid JSON."""

    code = "InvalidJSON"


class ValidationFailed(KinfolkError):
    """Some fields are missing, unknown or of the wrong type."""

    status_code = 422
    code = "ValidationError"


class Unauthorized(KinfolkError):
    """Send a valid `Authorization: Bearer <token>` header."""

    status_code = 401
    code = "Unauthorized"

    def __init__(self, detail: Any = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(KinfolkError):
    """The credentials are valid but do not allow this."""

    status_code = 403
    code = "Forbidden"


class NotFound(KinfolkError):
    """Nothing was found here."""

    status_code = 404
    code = "NotFound"


class MethodNotAllowed(KinfolkError):
    """This path does not accept that method."""

    status_code = 405
    code = "MethodNotAllowed"


class Conflict(KinfolkError):
    """The request conflicts with the current state."""

    status_code = 409
    code = "Conflict"


class PayloadTooLarge(KinfolkError):
    """The body is larger than this endpoint accepts."""

    status_code = 413
    code = "PayloadTooLarge"


class UnsupportedMediaType(KinfolkError):
    """This endpoint does not accept that content type."""

    status_code = 415
    code = "UnsupportedMediaType"


class ServiceUnavailable(KinfolkError):
    """A dependency is not reachable right now; retry later."""

    status_code = 503
    code = "ServiceUnavailable"


def error_body(code: str, detail: Any) -> dict[str, Any]:
    return {"error": code, "detail": detail}


def _validation_detail(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]


async def _kinfolk_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, KinfolkError)
    return JSONResponse(
        error_body(exc.code, exc.detail), status_code=exc.status_code, headers=exc.headers
    )


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = _validation_detail(exc)
    if any(item["type"] == "json_invalid" for item in detail):
        return JSONResponse(error_body(InvalidJSON.code, detail), status_code=400)
    return JSONResponse(error_body(ValidationFailed.code, detail), status_code=422)


_HTTP_CODES: dict[int, type[KinfolkError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
}


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    cls = _HTTP_CODES.get(exc.status_code, BadRequest if exc.status_code < 500 else None)
    code = cls.code if cls is not None else "InternalError"
    detail = exc.detail if cls is None or exc.detail not in (None, "") else cls.__doc__
    return JSONResponse(error_body(code, detail), status_code=exc.status_code, headers=exc.headers)


def _is_data_exception(exc: sqlalchemy.exc.DBAPIError) -> bool:
    """PostgreSQL's SQLSTATE class 22 ("data exception"), or asyncpg refusing an argument."""
    sqlstate = getattr(exc.orig, "sqlstate", None)
    cause = exc.orig.__cause__ if exc.orig is not None else None
    return (isinstance(sqlstate, str) and sqlstate.startswith("22")) or isinstance(
        cause, asyncpg.exceptions.DataError
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    # A value that passed validation but PostgreSQL cannot hold (a NUL character in text, a
    # number past 64 bits, a date past year 9999) is the caller's to fix, not a server error.
    assert isinstance(exc, sqlalchemy.exc.DBAPIError)
    if not _is_data_exception(exc):
        return await _unhandled(request, exc)
    cause = exc.orig
    reason = str(cause).splitlines()[0].rsplit(": ", 1)[-1][:200]
    log.warning("unstorable_value", path=request.url.path, reason=reason)
    return JSONResponse(
        error_body(
            "InvalidValue",
            f"A value in the request cannot be stored ({reason}); "
            "remove NUL characters and keep numbers and dates in range.",
        ),
        status_code=422,
    )


# How long a client is asked to wait when PostgreSQL or Redis is out of reach (a restart, a
# failover): the pool reconnects on the next request, so a second is enough to try again.
UNAVAILABLE_RETRY_AFTER_SECONDS = 1

# SQLSTATEs of a server that is there but will not serve: shutting down, crashed, starting up,
# out of connection slots. Class 08 (connection exceptions) counts as well.
_UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})
# A socket that could not connect: refused, or no Unix socket file (a server that is down).
_UNREACHABLE_ERRNOS = frozenset(
    {errno.ECONNREFUSED, errno.ENOENT, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT}
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, what SQLAlchemy wrapped, and what it was raised from, a few levels deep."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending and len(seen) < 8:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        pending += [current.__cause__, current.__context__]
        if isinstance(orig, BaseException):
            pending.append(orig)


# The kinds an outage is raised as: each error `dependency_unavailable` accepts is one of these
# (or wrapped in a `DBAPIError`), which it then tells apart by errno or SQLSTATE. Each has a
# handler of its own (`install_error_handlers`).
_OUTAGE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    sqlalchemy.exc.TimeoutError,
    asyncpg.PostgresError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)


def dependency_unavailable(exc: BaseException) -> bool:
    """True when `exc` says PostgreSQL or Redis could not be reached, not that a query or a
    command was wrong: the request is worth sending again in a moment."""
    for found in _chain(exc):
        if isinstance(found, sqlalchemy.exc.DBAPIError) and found.connection_invalidated:
            return True
        if isinstance(
            found,
            ConnectionError
            | sqlalchemy.exc.TimeoutError  # no pooled connection came free in time
            | asyncpg.exceptions.ConnectionDoesNotExistError
            | redis.exceptions.ConnectionError
            | redis.exceptions.TimeoutError,
        ):
            return True
        if isinstance(found, asyncpg.PostgresError):
            sqlstate = getattr(found, "sqlstate", None) or ""
            if sqlstate.startswith("08") or sqlstate in _UNAVAILABLE_SQLSTATES:
                return True
        if (
            isinstance(found, OSError)
            and found.errno in _UNREACHABLE_ERRNOS
            and found.filename is None  # a socket's address, not a file the code opened
        ):
            return True
    return False


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    if dependency_unavailable(exc):
        # Mostly nothing was written; but a connection lost during COMMIT leaves it unknown, so
        # the answer asks for the retry with the same idempotency key, which is safe either way.
        log.warning("dependency_unavailable", path=request.url.path, error=repr(exc)[:300])
        note_logged(exc)  # an outage needs no traceback
        return JSONResponse(
            error_body(
                ServiceUnavailable.code,
                "A database or cache this service needs is out of reach; "
                "retry in a moment with the same idempotency key.",
            ),
            status_code=503,
            headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_SECONDS)},
        )
    log.exception("unhandled_error", path=request.url.path)
    note_logged(exc)
    return JSONResponse(
        error_body("InternalError", "Something went wrong on our side; it has been logged."),
        status_code=500,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(KinfolkError, _kinfolk_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(sqlalchemy.exc.DBAPIError, _database_error)
    # An outage is answered (503, or 500 when it is not one) where a route's other errors are.
    # The `Exception` handler runs in Starlette's outermost middleware, which re-raises after
    # answering: the server then logged an error-level traceback ("Exception in ASGI
    # application") beside the warning for every 503 of an outage.
    for outage in _OUTAGE_ERRORS:
        app.add_exception_handler(outage, _unhandled)
    app.add_exception_handler(Exception, _unhandled)
