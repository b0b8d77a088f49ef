"""Secrets never reach the logs.

A representative run, logged at DEBUG through Kinfolk's own logging setup
(`services.kernel.logging.configure_logging`, JSON as in production): staff API keys created,
used and revoked, member tokens minted and used (one expired), a webhook endpoint with a
custom credential header and its `whsec_` secret rotated, a purchase, a GraphQL request with
the member's bearer token, events drained and the webhook delivered. Then the captured log is
searched for every secret the run saw (and the settings' own: the JWT signing secret, database
and Redis passwords, the export link secret): none may appear, whole or in its secret part.

And a logged exception prints no frame's local variables, in either log format, whether it is
logged by Kinfolk or by a library through the standard `logging` module (uvicorn, arq).
"""

from __future__ import annotations

import io
import json
import logging
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Literal

import httpx
import pytest
import structlog
from redis.asyncio import Redis

from services.kernel.app import build_app
from services.kernel.auth import MemberTokenCodec, parse_api_key
from services.kernel.db import Database
from services.kernel.drain import drain_events
from services.kernel.logging import configure_logging
from services.kernel.settings import Settings
from services.registry import SERVICES
from services.webhooks.delivery.worker import DeliveryWorker
from tests.conftest import BrandFixture, bearer, make_runtime
from tests.webhooks.receiver import Receiver, receiving

LogFormat = Literal["json", "console"]

# What `structlog.get_logger()` hands out: module loggers are instances of it.
_LAZY_LOGGER = type(structlog.get_logger())


def _forget_cached_loggers() -> None:
    """Module loggers (`log = structlog.get_logger(...)`) keep the configuration of their
    first use when caching is on; they must forget it to log through a new one."""
    for module in list(sys.modules.values()):
        for value in list(getattr(module, "__dict__", {}).values()):
            if isinstance(value, _LAZY_LOGGER):
                value.__dict__.pop("bind", None)


@contextmanager
def captured_logs(log_format: LogFormat) -> Iterator[io.StringIO]:
    """Kinfolk's logging setup at DEBUG, writing into a buffer; everything put back after."""
    buffer = io.StringIO()
    saved_config = structlog.get_config()
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    levels = {
        name: logger.level
        for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    saved_stderr = sys.stderr
    sys.stderr = buffer  # configure_logging writes to the stderr of the moment
    try:
        configure_logging(Settings(log_level="DEBUG", log_format=log_format))
        _forget_cached_loggers()
        yield buffer
    finally:
        sys.stderr = saved_stderr
        structlog.configure(**saved_config)
        _forget_cached_loggers()
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        for name, logger in logging.Logger.manager.loggerDict.items():
            if isinstance(logger, logging.Logger):
                logger.setLevel(levels.get(name, logging.NOTSET))


def secret_parts(value: str) -> list[str]:
    """The value and the part of it that is the secret: an API key's secret after its id, a
    JWT's signature, a `whsec_` secret's key."""
    parts = [value]
    if (parsed := parse_api_key(value)) is not None:
        parts.append(parsed[1])
    elif value.startswith("whsec_"):
        parts.append(value.removeprefix("whsec_"))
    elif value.count(".") == 2:
        parts.append(value.rsplit(".", 1)[1])
    return parts


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with receiving() as r:
        yield r


async def test_a_representative_run_logs_no_secret(
    base_settings: Settings,
    database: Database,
    redis: Redis,
    brand: BrandFixture,
    receiver: Receiver,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tag = uuid.uuid4().hex
    settings = base_settings.model_copy(
        update={
            # Never used to connect here (the runtime has its connections): only to show that
            # nothing prints the settings' URLs or secrets.
            "database_url": f"postgresql://kinfolk:db-pass-{tag}@db.invalid:5432/kinfolk",
            "redis_url": f"redis://:redis-pass-{tag}@redis.invalid:6379/0",
            "export_link_secret": f"export-link-secret-{tag}",
            "consumer_retry_after_seconds": 0,
        }
    )
    runtime = make_runtime(settings, database, redis)
    app = build_app(SERVICES, settings, runtime)
    tokens = MemberTokenCodec(settings)
    secrets: list[str] = [
        brand.key,
        settings.jwt_signing_secret(),
        f"db-pass-{tag}",
        f"redis-pass-{tag}",
        f"export-link-secret-{tag}",
    ]
    request_ids: list[str] = []

    async def note(response: httpx.Response) -> None:
        request_ids.append(response.headers["x-request-id"])

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    with captured_logs("json") as logs:
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://kinfolk.test",
            event_hooks={"response": [note]},
        ) as client:

            async def call(
                method: str, path: str, headers: dict[str, str], body: Any = None
            ) -> Any:
                response = await client.request(method, path, json=body, headers=headers)
                assert response.is_success, (path, response.text)
                return response.json() if response.content else None

            admin = brand.headers
            key = await call(
                "POST",
                "/members/v1/api-keys",
                admin,
                {"name": "till", "scopes": ["rewards:write", "rewards:read", "members:write"]},
            )
            revoked = await call(
                "POST", "/members/v1/api-keys", admin, {"name": "old", "scopes": ["members:read"]}
            )
            await call("DELETE", f"/members/v1/api-keys/{revoked['id']}", admin)
            secrets += [key["key"], revoked["key"]]
            till = bearer(key["key"])

            member = await call(
                "POST",
                "/members/v1/members",
                till,
                {"external_id": f"crm-{tag}", "display_name": "Ada"},
            )
            member_id = uuid.UUID(member["id"])
            token = tokens.issue(brand.id, member_id, timedelta(hours=1))
            expired = tokens.issue(brand.id, member_id, -timedelta(minutes=5))
            secrets += [token, expired]

            crm_key = f"crm-credential-{tag}"
            endpoint = await call(
                "POST",
                "/webhooks/v1/endpoints",
                admin,
                {"url": receiver.url(), "event_types": ["*"], "headers": {"X-Crm-Key": crm_key}},
            )
            rotated = await call(
                "POST", f"/webhooks/v1/endpoints/{endpoint['id']}/secret/rotate", admin
            )
            shown = await call("GET", f"/webhooks/v1/endpoints/{endpoint['id']}/secret", admin)
            assert shown["secret"] == rotated["secret"] != endpoint["secret"]
            secrets += [crm_key, endpoint["secret"], rotated["secret"]]

            # Refused credentials: the revoked key, the expired token, the signing secret itself.
            for refused in (revoked["key"], expired, settings.jwt_signing_secret()):
                answer = await client.get("/members/v1/me", headers=bearer(refused))
                assert answer.status_code == 401, answer.text

            await call(
                "PUT", "/rewards/v1/program", till, {"currency": "EUR", "points_per_unit": 1}
            )
            await drain_events(runtime, SERVICES, "secrets")
            await call(
                "POST",
                "/rewards/v1/purchases",
                till,
                {
                    "external_id": f"crm-{tag}",
                    "order_id": f"o-{tag}",
                    "amount_minor": 4_200,
                    "currency": "EUR",
                    "occurred_at": "2026-01-01T00:00:00Z",
                },
            )
            answer = await call(
                "POST",
                "/graphql",
                bearer(token),
                {"query": "{ me { displayName points { available } } }"},
            )
            assert answer.get("data") == {
                "me": {"displayName": "Ada", "points": {"available": 42}}
            }, answer
            await drain_events(runtime, SERVICES, "secrets")
            assert await DeliveryWorker(database, redis, settings).deliver_due() > 0

    # The run was real: the webhook went out with its credentials, every request was logged
    # (and the gateway's calls to the services in process besides).
    assert {a.headers["x-crm-key"] for a in receiver.arrivals} == {crm_key}
    lines = [json.loads(line) for line in logs.getvalue().splitlines() if line.strip()]
    logged = {line.get("request_id") for line in lines if line["event"] == "request"}
    assert len(request_ids) == 13
    assert set(request_ids) <= logged
    printed = capsys.readouterr()
    everything = logs.getvalue() + printed.out + printed.err
    leaked = [part for secret in secrets for part in secret_parts(secret) if part in everything]
    assert leaked == []


def _fails_with_a_secret_in_scope(secret: str) -> None:
    credential = secret  # a local variable, as a request's headers or a signing key would be
    raise RuntimeError(f"could not reach the endpoint ({len(credential)} characters of key)")


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_a_logged_exception_prints_its_traceback_but_no_local_variables(
    log_format: LogFormat,
) -> None:
    secret = f"whsec_{uuid.uuid4().hex}"
    with captured_logs(log_format) as logs:
        for logger in (structlog.get_logger("kinfolk.test"), logging.getLogger("uvicorn.error")):
            try:
                _fails_with_a_secret_in_scope(secret)
            except RuntimeError:
                logger.exception("attempt failed")
    written = logs.getvalue()
    assert secret not in written
    assert secret.removeprefix("whsec_") not in written
    # Each traceback is there, as plain text.
    assert written.count("RuntimeError: could not reach the endpoint (38 characters of key)") == 2
    assert written.count(", in _fails_with_a_secret_in_scope") == 2
