"""Fixtures for the gateway: GraphQL over the real app, every service in process, the test's
transaction rolled back at the end."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest

from services.gateway.upstream import Upstream
from services.kernel.auth import MemberTokenCodec
from tests.conftest import BrandFixture, MemberFixture, bearer

GraphQL = Callable[..., Awaitable[dict[str, Any]]]


@contextmanager
def upstream_calls(service: str) -> Iterator[list[str]]:
    """The gateway's calls to `service` while open: method, path and the query's `list` and
    `include` values (sorted), e.g. `GET /rewards/v1/me/summary ['tier']`."""
    calls: list[str] = []
    original = Upstream.request

    async def spy(self: Upstream, method: str, path: str, **kwargs: Any) -> Any:
        if self.service == service:
            params = kwargs.get("params") or {}
            values = [*params.get("list", ()), *params.get("include", ())]
            calls.append(f"{method} {path} {sorted(values)}")
        return await original(self, method, path, **kwargs)

    Upstream.request = spy  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        Upstream.request = original  # type: ignore[method-assign]


@pytest.fixture
def graphql(client: httpx.AsyncClient) -> GraphQL:
    """POSTs a document to /graphql and returns the JSON answer: `data` and `errors`, and the
    top-level `extensions` (the query's cost, which changes with every request) only when asked
    for with `extensions=True`."""

    async def run(
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        member: MemberFixture | None = None,
        extensions: bool = False,
    ) -> dict[str, Any]:
        headers = bearer(member.token) if member is not None else {}
        if token is not None:
            headers = bearer(token)
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = variables
        response = await client.post("/graphql", json=body, headers=headers)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        if not extensions:
            answer.pop("extensions", None)
        return answer

    return run


MakeGatewayMember = Callable[..., Awaitable[MemberFixture]]


@pytest.fixture
def make_gateway_member(
    client: httpx.AsyncClient, brand: BrandFixture, tokens: MemberTokenCodec
) -> MakeGatewayMember:
    """A member created through the members API, with a member token for the gateway."""

    async def make(brand_fixture: BrandFixture | None = None, **fields: Any) -> MemberFixture:
        owner = brand_fixture or brand
        external_id = fields.pop("external_id", f"ext-{uuid.uuid4().hex[:10]}")
        body = {"external_id": external_id, "email": f"{external_id}@example.com", **fields}
        response = await client.post("/members/v1/members", json=body, headers=owner.headers)
        assert response.status_code == 201, response.text
        member_id = uuid.UUID(response.json()["id"])
        token = tokens.issue(owner.id, member_id, timedelta(hours=1))
        return MemberFixture(member_id, owner.id, external_id, token)

    return make
