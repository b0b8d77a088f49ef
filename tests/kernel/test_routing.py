"""The kernel's `Router`: a path none of a router's routes can match is turned away before any
route is tried, and every other path is routed exactly as FastAPI routes it."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from services.kernel.routing import Router
from services.registry import SERVICES


def _app() -> tuple[FastAPI, Router, Router, list[Router]]:
    """A service as Kinfolk's are built: parts with the service's prefix, one of which includes
    a router of its own under a further prefix, and a router included with a prefix."""
    posts = Router(prefix="/shop/v1")

    @posts.get("/posts")
    async def list_posts() -> list[str]:
        return ["a"]

    @posts.get("/posts/{post_id}")
    async def one_post(post_id: int) -> dict[str, int]:
        return {"post": post_id}

    feeds = Router()

    @feeds.get("/feeds/{tag}")
    async def feed(tag: str) -> dict[str, str]:
        return {"feed": tag}

    posts.include_router(feeds)

    staff = Router()

    @staff.post("/moderate")
    async def moderate() -> dict[str, bool]:
        return {"moderated": True}

    service = Router()
    service.include_router(posts)
    service.include_router(staff, prefix="/shop/v1/staff")

    other = Router(prefix="/other/v1")

    @other.get("/things")
    async def things() -> list[str]:
        return ["thing"]

    app = FastAPI()
    app.include_router(service)
    app.include_router(other)
    return app, service, other, [posts, feeds, staff]


async def _get(app: FastAPI, method: str, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path, follow_redirects=False)


@pytest.mark.parametrize(
    ("method", "path", "status", "body"),
    [
        ("GET", "/shop/v1/posts", 200, ["a"]),
        ("GET", "/shop/v1/posts/7", 200, {"post": 7}),
        # A router included by a part: its routes carry the part's prefix.
        ("GET", "/shop/v1/feeds/lipstick", 200, {"feed": "lipstick"}),
        # A router included with a prefix of its own.
        ("POST", "/shop/v1/staff/moderate", 200, {"moderated": True}),
        # The second service, past the first one's gate.
        ("GET", "/other/v1/things", 200, ["thing"]),
        # A wrong method is still 405 (a partial match), not a 404.
        ("POST", "/shop/v1/posts", 405, None),
        # A path parameter that does not convert is still FastAPI's 422.
        ("GET", "/shop/v1/posts/seven", 422, None),
        ("GET", "/shop/v2/posts", 404, None),
        ("GET", "/nowhere", 404, None),
    ],
)
async def test_paths_are_routed_as_fastapi_routes_them(
    method: str, path: str, status: int, body: Any
) -> None:
    app, _, _, _ = _app()
    response = await _get(app, method, path)
    assert response.status_code == status, response.text
    if body is not None:
        assert response.json() == body


async def test_a_trailing_slash_still_redirects_to_the_route() -> None:
    app, _, _, _ = _app()
    response = await _get(app, "GET", "/shop/v1/posts/")
    assert response.status_code == 307
    assert response.headers["location"] == "http://test/shop/v1/posts"


def test_the_gate_holds_every_literal_prefix_of_the_tree() -> None:
    _, service, other, _ = _app()
    assert service.literal_prefixes() == (
        "/shop/v1/feeds/",
        "/shop/v1/posts",
        "/shop/v1/posts/",
        "/shop/v1/staff/moderate",
    )
    assert other.literal_prefixes() == ("/other/v1/things",)


async def test_a_foreign_path_is_turned_away_without_trying_a_route() -> None:
    app, _, _, parts = _app()
    tried: list[str] = []
    for route in (route for part in parts for route in part.routes if isinstance(route, APIRoute)):
        original = route.matches

        def spy(scope: Any, original: Any = original) -> Any:
            tried.append(scope["path"])
            return original(scope)

        route.matches = spy  # type: ignore[method-assign]
    response = await _get(app, "GET", "/other/v1/things")
    assert response.json() == ["thing"]
    assert tried == []
    # A path of its own is tried as FastAPI tries it.
    response = await _get(app, "GET", "/shop/v1/posts/1")
    assert response.json() == {"post": 1}
    assert "/shop/v1/posts/1" in tried


async def test_behind_a_proxy_the_gate_reads_the_path_without_the_root_path() -> None:
    app, _, _, _ = _app()
    transport = httpx.ASGITransport(app=app, root_path="/api")
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/api/shop/v1/posts/3")
    assert response.json() == {"post": 3}


async def test_a_router_of_another_kind_inside_turns_the_gate_off_not_its_routes() -> None:
    plain = APIRouter()

    @plain.get("/anywhere/at/all")
    async def anywhere() -> str:
        return "here"

    service = Router(prefix="/shop/v1")
    service.include_router(plain)
    app = FastAPI()
    app.include_router(service)
    assert service.literal_prefixes() is None
    response = await _get(app, "GET", "/shop/v1/anywhere/at/all")
    assert response.json() == "here"


def test_every_service_router_has_a_gate() -> None:
    """A service built from plain `APIRouter`s would still work, but every request to a later
    service would scan all of its routes again."""
    gated = {
        service.name: service.router.literal_prefixes()
        for service in SERVICES
        if isinstance(service.router, Router)
    }
    ungated = {service.name for service in SERVICES} - set(gated)
    # The gateway is strawberry's router: two routes, cheap to scan, and included last.
    assert ungated == {"gateway"}
    for name, prefixes in gated.items():
        assert prefixes, name
        assert all(prefix.startswith(f"/{name}/v1/") for prefix in prefixes), name


def _dependencies(dependant: Dependant) -> Iterator[Dependant]:
    for dependency in dependant.dependencies:
        yield dependency
        yield from _dependencies(dependency)


def _api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _api_routes(included.routes)


def test_no_dependency_of_a_route_waits_for_the_thread_pool() -> None:
    """FastAPI runs a plain `def` dependency in its thread pool: a hop that cost about half a
    millisecond of CPU per request, for dependencies that only read a query or the app's state.
    Every dependency of every service route is a coroutine (or an async generator)."""
    in_threads: set[str] = set()
    for service in SERVICES:
        for route in _api_routes(service.router.routes):
            for dependency in _dependencies(route.dependant):
                call = dependency.call
                if call is None or isinstance(call, type):
                    continue
                if not (inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call)):
                    in_threads.add(f"{call.__module__}.{call.__qualname__} ({route.path})")
    assert sorted(in_threads) == []
