"""A request that calls another service while it holds its database connection is counted and
logged (`clients.count_held_connection`), and the suite's autouse check fails any test that
makes one: the guard that finds the next call site that forgot `release_connection`.

Counted: a request that read and then called. Not counted: one that gave its connection back
first, one whose transaction wrote (kept on purpose by `release_connection`), one that had not
touched the database, and work outside a request (a job holds its session through its calls).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from services.kernel.clients import service_client
from services.kernel.db import Database, SessionDep, release_connection
from services.members.models import Brand
from tests.conftest import BrandFixture, calls_holding_a_connection


def _app(database: Database, brand_id: uuid.UUID) -> FastAPI:
    """POSTs that call a peer, each in a transaction (a GET reads without one)."""
    app = FastAPI()
    app.state.database = database

    async def ask_peer() -> int:
        # The other service, in process, as `Peers.http` reaches a hosted one.
        async with service_client(
            "http://in-process", timeout=5.0, transport=httpx.ASGITransport(app=app)
        ) as peer:
            return (await peer.get("/peer")).status_code

    @app.get("/peer")
    async def peer(session: SessionDep) -> dict[str, str | None]:
        name = await session.scalar(select(Brand.name).where(Brand.id == brand_id))
        return {"name": name}

    @app.post("/read-then-call")
    async def read_then_call(session: SessionDep) -> int:
        await session.get(Brand, brand_id)
        return await ask_peer()

    @app.post("/read-release-then-call")
    async def read_release_then_call(session: SessionDep) -> int:
        await session.get(Brand, brand_id)
        await release_connection(session)
        return await ask_peer()

    @app.post("/write-release-then-call")
    async def write_release_then_call(session: SessionDep) -> int:
        await session.execute(update(Brand).where(Brand.id == brand_id).values(name="Renamed"))
        assert await release_connection(session) is False  # kept: it wrote
        return await ask_peer()

    @app.post("/call-first")
    async def call_first(session: SessionDep) -> int:
        status = await ask_peer()
        await session.get(Brand, brand_id)
        return status

    return app


@pytest.fixture
async def client(database: Database, brand: BrandFixture) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app(database, brand.id))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest.mark.holds_connection_on_purpose
async def test_a_request_that_read_and_then_called_is_counted(client: httpx.AsyncClient) -> None:
    before = calls_holding_a_connection()
    response = await client.post("/read-then-call")
    assert response.json() == 200  # the call still works: counted, not refused
    assert calls_holding_a_connection() - before == 1


@pytest.mark.parametrize(
    "path", ["/read-release-then-call", "/write-release-then-call", "/call-first"]
)
async def test_a_request_that_released_kept_on_purpose_or_had_not_read_is_not_counted(
    client: httpx.AsyncClient, path: str
) -> None:
    before = calls_holding_a_connection()
    response = await client.post(path)
    assert response.json() == 200
    assert calls_holding_a_connection() == before


async def test_work_outside_a_request_is_not_counted(
    database: Database, brand: BrandFixture
) -> None:
    app = _app(database, brand.id)
    before = calls_holding_a_connection()
    async with (
        database.unit_of_work() as session,
        service_client(
            "http://in-process", timeout=5.0, transport=httpx.ASGITransport(app=app)
        ) as peer,
    ):
        await session.get(Brand, brand.id)
        assert (await peer.get("/peer")).json() == {"name": "Acme Beauty"}
    assert calls_holding_a_connection() == before
