"""Pure ASGI middleware: request ids, access logs and metrics, rate limits and body size limits."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from prometheus_client import Counter, Histogram
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.kernel.auth import Authenticator, Principal
from services.kernel.errors import KinfolkError, PayloadTooLarge, error_body
from services.kernel.ids import new_id
from services.kernel.rate_limits import Bucket, Decision, RateLimiter, bucket_for, refusal

REQUEST_ID_HEADER = b"x-request-id"

log = structlog.get_logger("kinfolk.http")

HTTP_REQUESTS = Counter(
    "kinfolk_http_requests_total", "HTTP requests served", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "kinfolk_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

RATE_LIMIT_EVENTS = Counter(
    "kinfolk_rate_limit_events_total",
    "Requests refused by a rate limit, or let through unchecked because Redis failed.",
    ["kind", "outcome"],
)


def _route_template(scope: Scope) -> str:
    # The matched route's template keeps metric cardinality bounded (no ids in labels).
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


def current_request_id() -> str | None:
    """The id of the request this code serves, if it serves one: the one its log lines carry.
    The calls it makes to other services send it on as `X-Request-ID`
    (`clients.service_client`), so one id runs through the logs of every service a request
    touched, in process or across the network."""
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    return request_id if isinstance(request_id, str) else None


class RequestContextMiddleware:
    """Gives each request an id (kept from `X-Request-ID` when sent), logs it and counts it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(REQUEST_ID_HEADER, b"").decode("latin-1")
        request_id = incoming[:128] if incoming else str(new_id())
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"].append((REQUEST_ID_HEADER, request_id.encode("latin-1")))
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                elapsed = time.perf_counter() - started
                route = _route_template(scope)
                method = scope["method"]
                HTTP_REQUESTS.labels(method, route, str(status)).inc()
                HTTP_LATENCY.labels(method, route).observe(elapsed)
                log.info(
                    "request",
                    method=method,
                    path=scope["path"],
                    route=route,
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                )


class BodyLimitMiddleware:
    """Refuses bodies over a limit with 413, by `Content-Length` or while streaming."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await send_error(send, 413, PayloadTooLarge.code, _too_large(limit))
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # An HTTPException passes through FastAPI's body parsing and error handlers
                    # unchanged, so a streamed body over the limit is answered like a declared one.
                    raise HTTPException(413, _too_large(limit))
            return message

        await self.app(scope, counting_receive, send)


def _too_large(limit: int) -> str:
    return f"The body is larger than this endpoint accepts ({limit} bytes)."


async def send_error(
    send: Send,
    status: int,
    code: str,
    detail: Any,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """Answer `{"error", "detail"}` from a middleware, outside the app's error handlers."""
    body = orjson.dumps(error_body(code, detail))
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# Paths that are never limited: probes and scrapes must answer however busy a principal is.
RATE_LIMIT_EXEMPT = frozenset({"/healthz", "/readyz", "/metrics"})

# True while a request from outside is being served. The requests it makes in process to other
# services (the gateway's upstream calls, the members service's privacy peers, through
# `httpx.ASGITransport`, which runs them in the same task or in tasks that inherit its context)
# are part of it and are not counted again. A client cannot set it: it exists only in process.
_SERVING: ContextVar[bool] = ContextVar("kinfolk_serving", default=False)


# The credentials this request's rate limit check verified, and whom they name: the route, the
# gateway's context and the request's in-process calls with the same header take the principal
# from here instead of verifying the same token (or reading the same API key from Redis) again.
_VERIFIED: ContextVar[tuple[str, Principal] | None] = ContextVar("kinfolk_verified", default=None)


@dataclass(slots=True)
class VerifiedOnceAuthenticator(Authenticator):
    """An `Authenticator` that reuses what the rate limit check verified for this request."""

    async def authenticate(self, authorization: str | None) -> Principal:
        verified = _VERIFIED.get()
        if verified is not None and authorization is not None and verified[0] == authorization:
            return verified[1]
        # Named, not super(): slots dataclasses are new classes, which zero-argument super()
        # does not follow.
        return await Authenticator.authenticate(self, authorization)

    @classmethod
    def of(cls, authenticator: Authenticator) -> VerifiedOnceAuthenticator:
        return cls(
            tokens=authenticator.tokens,
            api_keys=authenticator.api_keys,
            services=authenticator.services,
        )


class RateLimitMiddleware:
    """Refuses a member or API key over its requests-a-minute budget with 429 and `Retry-After`.

    Requests with no credentials, or credentials that do not verify, pass untouched: the route
    answers them (401, or its public answer) and they spend no one's budget, so a forged token
    cannot use up the member it names. A verified principal's request costs one Redis round
    trip (`RateLimiter.hit`). Websockets pass untouched; what a socket's operations call in
    process is counted call by call.
    """

    def __init__(self, app: ASGIApp, *, member_limit: int, api_key_limit: int) -> None:
        self.app = app
        self.member_limit = member_limit
        self.api_key_limit = api_key_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in RATE_LIMIT_EXEMPT or _SERVING.get():
            await self.app(scope, receive, send)
            return
        serving = _SERVING.set(True)
        verified = _VERIFIED.set(None)
        try:
            checked = await self._check(scope)
            if checked is None:
                await self.app(scope, receive, send)
                return
            bucket, decision = checked
            limit_headers = [
                (b"ratelimit-limit", str(decision.limit).encode()),
                (b"ratelimit-remaining", str(decision.remaining).encode()),
            ]
            if not decision.allowed:
                RATE_LIMIT_EVENTS.labels(bucket.kind, "refused").inc()
                refused = refusal(bucket, decision)
                await send_error(
                    send,
                    refused.status_code,
                    refused.code,
                    refused.detail,
                    [(b"retry-after", str(decision.retry_after).encode()), *limit_headers],
                )
                return

            async def send_with_limits(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message.setdefault("headers", [])
                    message["headers"].extend(limit_headers)
                await send(message)

            await self.app(scope, receive, send_with_limits)
        finally:
            _VERIFIED.reset(verified)
            _SERVING.reset(serving)

    async def _check(self, scope: Scope) -> tuple[Bucket, Decision] | None:
        """The request's bucket and the limiter's decision; None when it is not limited."""
        if self.member_limit <= 0 and self.api_key_limit <= 0:
            return None
        # The first header, as the route reads it: charging one principal while the route
        # serves another (a second `Authorization` header) would be a way around the limit.
        authorization = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        state = getattr(scope.get("app"), "state", None)
        authenticator: Authenticator | None = getattr(state, "authenticator", None)
        limiter: RateLimiter | None = getattr(state, "rate_limiter", None)
        if not authorization or authenticator is None or limiter is None:
            return None
        header = authorization.decode("latin-1")
        try:
            principal = await authenticator.authenticate(header)
        except KinfolkError:
            return None  # not verified: the route refuses it, or needs no credentials
        except Exception:
            # Checking the key failed (Redis or the members service is down): the route checks
            # it again and answers for that failure itself.
            return None
        _VERIFIED.set((header, principal))
        bucket = bucket_for(
            principal, member_limit=self.member_limit, api_key_limit=self.api_key_limit
        )
        if bucket is None:
            return None
        try:
            return bucket, await limiter.hit(bucket)
        except (RedisError, OSError) as exc:
            # Fails open: with Redis down, limits are not worth refusing every request for. The
            # routes that need Redis fail on their own; the others keep serving.
            RATE_LIMIT_EVENTS.labels(bucket.kind, "unavailable").inc()
            log.warning("rate_limit.unavailable", error=str(exc), bucket=bucket.key)
            return None
