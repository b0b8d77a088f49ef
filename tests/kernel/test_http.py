"""The HTTP layer every service shares: error shapes, body limits, request ids, probes, metrics."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict
from redis.asyncio import Redis
from sqlalchemy import text
from starlette.types import Receive, Scope, Send

from services.kernel.db import Database, service_metadata
from services.kernel.errors import Conflict
from services.kernel.module import ServiceModule
from services.kernel.runtime import Runtime
from services.kernel.settings import Settings
from tests.conftest import app_for
from tests.served import served


class Echo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    count: int


router = APIRouter(prefix="/probe/v1")


@router.post("/echo")
async def echo(body: Echo) -> Echo:
    return body


@router.post("/import")
async def bulk(body: Echo) -> dict[str, int]:
    return {"count": body.count}


@router.post("/conflict")
async def conflict() -> None:
    raise Conflict("That name is taken; choose another.")


@router.get("/boom")
async def boom() -> None:
    raise RuntimeError("a bug")


# Real clients of servers that are not there: nothing listens on port 9 (discard) here, and the
# socket file does not exist.
UNREACHABLE_DATABASES = {
    "tcp": "postgresql://postgres@127.0.0.1:9/kinfolk",
    "socket": "postgresql://postgres@/kinfolk?host=/nonexistent-kinfolk-socket-dir",
}


@router.get("/database-down/{kind}")
async def database_down(kind: str) -> None:
    database = Database(UNREACHABLE_DATABASES[kind])
    try:
        async with database.unit_of_work() as session:
            await session.execute(text("SELECT 1"))
    finally:
        await database.dispose()


@router.get("/redis-down")
async def redis_down() -> None:
    async with Redis.from_url("redis://127.0.0.1:9/0") as client:
        await client.get("anything")


@router.get("/missing-file")
def missing_file() -> None:  # sync: FastAPI runs it in a thread
    Path("/nonexistent-kinfolk-file").read_text()


PROBE = ServiceModule(
    name="probe",
    schema="probe",
    metadata=service_metadata("probe"),
    router=router,
    migrations=Path("."),
    large_body_paths=("/probe/v1/import",),
)


@asynccontextmanager
async def _probe_client(
    base_settings: Settings, runtime: Runtime, *, raise_app_exceptions: bool
) -> AsyncIterator[httpx.AsyncClient]:
    settings = base_settings.model_copy(update={"max_body_bytes": 200, "max_import_bytes": 5000})
    app = app_for([PROBE], settings, runtime)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    async with httpx.AsyncClient(transport=transport, base_url="http://probe") as client:
        yield client


@pytest.fixture
async def probe(base_settings: Settings, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """What the app answers, whatever it also raises on to the server (a 500 is both)."""
    async with _probe_client(base_settings, runtime, raise_app_exceptions=False) as client:
        yield client


@pytest.fixture
async def raising_probe(
    base_settings: Settings, runtime: Runtime
) -> AsyncIterator[httpx.AsyncClient]:
    """Raises what the app raises on to the server, which logs it as an error."""
    async with _probe_client(base_settings, runtime, raise_app_exceptions=True) as client:
        yield client


async def test_valid_body_is_echoed_with_a_request_id(probe: httpx.AsyncClient) -> None:
    response = await probe.post("/probe/v1/echo", json={"name": "a", "count": 1})
    assert response.status_code == 200
    assert response.json() == {"name": "a", "count": 1}
    assert len(response.headers["x-request-id"]) == 36


async def test_a_callers_request_id_is_kept(probe: httpx.AsyncClient) -> None:
    response = await probe.get("/healthz", headers={"X-Request-ID": "trace-123"})
    assert response.headers["x-request-id"] == "trace-123"


async def test_malformed_json_is_a_400(probe: httpx.AsyncClient) -> None:
    response = await probe.post(
        "/probe/v1/echo", content=b'{"name": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "InvalidJSON"


async def test_unknown_fields_and_wrong_types_are_422_with_their_location(
    probe: httpx.AsyncClient,
) -> None:
    response = await probe.post("/probe/v1/echo", json={"name": "a", "count": "many", "x": 1})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "ValidationError"
    assert sorted((d["loc"], d["type"]) for d in body["detail"]) == [
        (["body", "count"], "int_parsing"),
        (["body", "x"], "extra_forbidden"),
    ]


async def test_oversize_bodies_are_413_by_length_and_while_streaming(
    probe: httpx.AsyncClient,
) -> None:
    big = {"name": "x" * 300, "count": 1}
    declared = await probe.post("/probe/v1/echo", json=big)
    assert declared.status_code == 413
    assert declared.json() == {
        "error": "PayloadTooLarge",
        "detail": "The body is larger than this endpoint accepts (200 bytes).",
    }

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "'
        yield b"y" * 300
        yield b'", "count": 1}'

    streamed = await probe.post(
        "/probe/v1/echo", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413
    assert streamed.json()["error"] == "PayloadTooLarge"


async def test_bulk_paths_take_larger_bodies(probe: httpx.AsyncClient) -> None:
    response = await probe.post("/probe/v1/import", json={"name": "x" * 1000, "count": 2})
    assert response.status_code == 200
    assert response.json() == {"count": 2}


async def test_errors_have_one_shape(probe: httpx.AsyncClient) -> None:
    conflict = await probe.post("/probe/v1/conflict")
    assert (conflict.status_code, conflict.json()) == (
        409,
        {"error": "Conflict", "detail": "That name is taken; choose another."},
    )
    missing = await probe.get("/probe/v1/nowhere")
    assert (missing.status_code, missing.json()["error"]) == (404, "NotFound")
    wrong_method = await probe.delete("/probe/v1/echo")
    assert (wrong_method.status_code, wrong_method.json()["error"]) == (405, "MethodNotAllowed")
    bug = await probe.get("/probe/v1/boom")
    assert bug.status_code == 500
    assert bug.json()["error"] == "InternalError"
    assert "a bug" not in bug.text  # internals are logged, not shown


@pytest.mark.parametrize(
    "path",
    ["/probe/v1/database-down/tcp", "/probe/v1/database-down/socket", "/probe/v1/redis-down"],
)
async def test_an_unreachable_database_or_redis_is_a_503_to_retry(
    raising_probe: httpx.AsyncClient, path: str
) -> None:
    """Answered inside the app, not also raised on to the server (which logged an error with
    its traceback for every request of an outage)."""
    answer = await raising_probe.get(path)
    assert (answer.status_code, answer.json()["error"]) == (503, "ServiceUnavailable")
    assert answer.headers["Retry-After"] == "1"
    assert "retry in a moment" in answer.json()["detail"]


async def test_a_missing_file_is_still_a_bug_not_an_outage(probe: httpx.AsyncClient) -> None:
    answer = await probe.get("/probe/v1/missing-file")
    assert (answer.status_code, answer.json()["error"]) == (500, "InternalError")


async def test_probes_and_metrics(probe: httpx.AsyncClient) -> None:
    assert (await probe.get("/healthz")).json() == {"status": "ok"}
    assert (await probe.get("/readyz")).json() == {
        "status": "ready",
        "database": "ok",
        "redis": "ok",
    }
    await probe.post("/probe/v1/echo", json={"name": "a", "count": 1})
    metrics = (await probe.get("/metrics")).text
    assert (
        'kinfolk_http_requests_total{method="POST",route="/probe/v1/echo",status="200"}' in metrics
    )


async def _raising_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("an error no handler of ours saw")


async def test_a_500_is_logged_once_by_us_not_again_by_the_server(
    base_settings: Settings, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """Starlette raises what its outermost handler answered on to the server, and uvicorn
    logged it again with its traceback ("Exception in ASGI application"), beside our
    `unhandled_error`. What no handler of ours logged is still reported by the server."""
    app = app_for([PROBE], base_settings, runtime)
    caplog.set_level(logging.ERROR, logger="uvicorn.error")
    async with served(app) as port, httpx.AsyncClient() as client:
        bug = await client.get(f"http://127.0.0.1:{port}/probe/v1/boom")
    assert (bug.status_code, bug.json()["error"]) == (500, "InternalError")
    assert [r.getMessage() for r in caplog.records if r.name == "uvicorn.error"] == []

    async with served(_raising_app) as port, httpx.AsyncClient() as client:
        assert (await client.get(f"http://127.0.0.1:{port}/")).status_code == 500
    reported = [r for r in caplog.records if r.name == "uvicorn.error"]
    assert [r.getMessage() for r in reported] == ["Exception in ASGI application\n"]
    assert reported[0].exc_info is not None
    assert str(reported[0].exc_info[1]) == "an error no handler of ours saw"
