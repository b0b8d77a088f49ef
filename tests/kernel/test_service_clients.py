"""The clients one service uses to call another keep no cookies (one client serves every
member's or key's calls, so a cookie set in answer to one would go out with the next, whoever
made it), and carry the id of the request they are part of."""

from __future__ import annotations

import uuid

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.kernel.clients import Peers
from services.kernel.middleware import RequestContextMiddleware
from services.kernel.runtime import RemoteApiKeyLookup
from services.kernel.settings import Settings


async def _sets_a_session(request: Request) -> JSONResponse:
    answer = JSONResponse({})
    answer.set_cookie("session", "member-a")
    return answer


async def _echoes_the_cookie(request: Request) -> JSONResponse:
    return JSONResponse({"cookie": request.headers.get("cookie")})


APP = Starlette(routes=[Route("/set", _sets_a_session), Route("/echo", _echoes_the_cookie)])


async def test_an_in_process_client_sends_no_cookie_an_earlier_answer_set() -> None:
    async with Peers(Settings(), APP, frozenset({"members"})).http("members") as http:
        assert (await http.get("/set")).cookies["session"] == "member-a"
        assert (await http.get("/echo")).json() == {"cookie": None}
        assert len(http.cookies) == 0


@pytest.mark.parametrize("url", ["http://members.internal:8000", "https://members.example.com"])
async def test_a_client_of_a_remote_service_keeps_no_cookie_either(url: str) -> None:
    settings = Settings(members_url=url)
    async with Peers(settings, APP).http("members") as http:
        answer = httpx.Response(
            200,
            headers={"set-cookie": "AWSALB=sticky; Path=/"},
            request=http.build_request("GET", "/members/v1/members/me"),
        )
        http.cookies.extract_cookies(answer)
        assert len(http.cookies) == 0


async def test_the_remote_api_key_lookup_keeps_no_cookie() -> None:
    sent: list[str | None] = []

    def members(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers.get("cookie"))
        return httpx.Response(404, headers={"set-cookie": "session=key-a; Path=/"})

    lookup = RemoteApiKeyLookup("http://members.internal", 1.0, httpx.MockTransport(members))
    for _ in range(2):
        assert await lookup(uuid.uuid4(), "kf_x_y") is None
    assert sent == [None, None]


# --- Request ids -------------------------------------------------------------------------------


async def _the_id_it_got(request: Request) -> JSONResponse:
    return JSONResponse({"id": request.headers.get("x-request-id")})


async def _asks_another_service(request: Request) -> JSONResponse:
    async with Peers(Settings(), TRACED, frozenset({"members"})).http("members") as http:
        inner = (await http.get("/id")).json()
    sent: list[str | None] = []

    def members(call: httpx.Request) -> httpx.Response:
        sent.append(call.headers.get("x-request-id"))
        return httpx.Response(404)

    lookup = RemoteApiKeyLookup("http://members.internal", 1.0, httpx.MockTransport(members))
    await lookup(uuid.uuid4(), "kf_x_y")
    return JSONResponse({"inner": inner["id"], "key_lookup": sent[0]})


TRACED = Starlette(
    routes=[Route("/id", _the_id_it_got), Route("/outer", _asks_another_service)],
    middleware=[Middleware(RequestContextMiddleware)],
)


async def test_a_call_to_another_service_carries_the_id_of_the_request_it_serves() -> None:
    transport = httpx.ASGITransport(app=TRACED)
    async with httpx.AsyncClient(transport=transport, base_url="http://kinfolk") as client:
        given = await client.get("/outer", headers={"X-Request-ID": "trace-1"})
        made = await client.get("/outer")
    assert given.json() == {"inner": "trace-1", "key_lookup": "trace-1"}
    assert given.headers["x-request-id"] == "trace-1"
    made_id = made.headers["x-request-id"]
    assert made.json() == {"inner": made_id, "key_lookup": made_id}
    assert made_id != "trace-1"


async def test_a_call_made_outside_any_request_sends_no_id() -> None:
    async with Peers(Settings(), TRACED, frozenset({"members"})).http("members") as http:
        assert (await http.get("/id")).json() == {"id": None}


async def _fails(request: Request) -> JSONResponse:
    raise RuntimeError("a bug in the called service")


async def test_an_in_process_call_to_a_failing_route_is_answered_500_as_over_the_network() -> None:
    """Not the callee's exception raised on into the caller, which a caller of a service in
    another process never sees."""
    app = Starlette(routes=[Route("/fails", _fails)])
    async with Peers(Settings(), app, frozenset({"members"})).http("members") as http:
        answer = await http.get("/fails")
    assert answer.status_code == 500
