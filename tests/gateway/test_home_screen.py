"""`kinfolk dev`'s demo brand through the GraphQL API, driven by `gql` (a client library this
project did not write): the home screen, redeeming a recommended perk and booking a session, each
with its idempotency key; and the home screen's calls to services and to the database do not
grow with the number of items asked for.

The world is what `kinfolk dev` builds: the simulator's demo brand, its events delivered by the
relay and the consumers, a model trained and the lists folded in (as the dev worker does).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from gql import Client, GraphQLRequest
from gql.transport.httpx import HTTPXAsyncTransport
from redis.asyncio import Redis
from sqlalchemy import event

from services.demo.seed import ensure_demo_brand, settle
from services.gateway.upstream import Upstream
from services.kernel.auth import MemberTokenCodec
from services.kernel.db import Database
from services.kernel.settings import Settings
from services.registry import SERVICES
from tests.conftest import app_for, bearer, make_runtime, purge_brand

HOME = """
query Home($n: Int!) {
  me {
    id
    displayName
    tierStatus { tier { name } spendMinor nextTier { tier { name } remainingMinor } }
    points { available pending expiringSoon { points } }
    recommendedPerks(first: $n) {
      reason exposureId position item { id name costPoints redeemable }
    }
    recommendedPrompts(first: $n) { reason exposureId item { id title } }
    forYou(first: $n) { reason exposureId item { id body author { id displayName } } }
  }
}
"""

REDEEM = """
mutation Redeem($input: RedeemPerkInput!) {
  redeemPerk(input: $input) {
    redemption { id status points perk { id } }
    userErrors { field code message }
  }
}
"""

FEEDBACK = """
mutation Feedback($input: RecordRecommendationFeedbackInput!) {
  recordRecommendationFeedback(input: $input) { recorded userErrors { field code message } }
}
"""

SESSIONS = """
query Sessions($from: DateTime!) {
  sessions(first: 50, filter: {from: $from}) {
    nodes { id title seatsLeft pricePoints status }
  }
  me { bookings(first: 100) { nodes { session { id } } } }
}
"""

BOOK = """
mutation Book($input: BookSessionInput!) {
  bookSession(input: $input) {
    booking { id seats status }
    userErrors { field code message }
  }
}
"""


async def ask(session: Any, document: str, variables: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = await session.execute(
        GraphQLRequest(document, variable_values=variables)
    )
    return answer


def client_for(app: FastAPI, token: str) -> Client:
    transport = HTTPXAsyncTransport(
        url="http://kinfolk.test/graphql",
        headers=bearer(token),
        transport=httpx.ASGITransport(app=app),
    )
    # The client checks every document against the served schema before sending it.
    return Client(transport=transport, fetch_schema_from_transport=True)


@contextmanager
def counting(database: Database) -> Iterator[dict[str, int]]:
    """Counts calls from the gateway to services, and SQL statements, while open."""
    counts = {"calls": 0, "statements": 0}
    original = Upstream.request

    async def spy(self: Upstream, *args: Any, **kwargs: Any) -> Any:
        counts["calls"] += 1
        return await original(self, *args, **kwargs)

    def statement(*_: Any) -> None:
        counts["statements"] += 1

    engine = database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", statement)
    Upstream.request = spy  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        Upstream.request = original  # type: ignore[method-assign]
        event.remove(engine, "before_cursor_execute", statement)


async def balance(client: httpx.AsyncClient, staff: dict[str, str], member: str) -> int:
    response = await client.get(f"/rewards/v1/members/{member}/balance", headers=staff)
    assert response.status_code == 200, response.text
    return int(response.json()["available"])


@pytest.mark.timeout(300)
async def test_the_home_screen_redeem_and_book_through_a_graphql_client(
    base_settings: Settings, engine_database: Database, redis: Redis, tmp_path: Path
) -> None:
    settings = base_settings.model_copy(update={"data_dir": tmp_path})
    runtime = make_runtime(settings, engine_database, redis)
    app = app_for(SERVICES, settings, runtime)
    demo = await ensure_demo_brand(settings, runtime, app, size=60, days=60)
    staff = bearer(demo.api_key)
    try:
        assert await settle(runtime, demo.brand_id, "test-gateway") == 1

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://kinfolk") as rest:
            listed = await rest.get("/members/v1/members", params={"limit": 5}, headers=staff)
            member = listed.json()["items"][0]
            member_id = member["id"]
            # Enough points to redeem whatever is recommended first.
            given = await rest.post(
                f"/rewards/v1/members/{member_id}/adjustments",
                json={"points": 100_000, "reason": "test: a generous goodwill gesture"},
                headers={**staff, "Idempotency-Key": f"gift-{uuid.uuid4()}"},
            )
            assert given.status_code == 201, given.text
            before = await balance(rest, staff, member_id)
            token = MemberTokenCodec(settings).issue(
                demo.brand_id, uuid.UUID(member_id), timedelta(hours=1)
            )

            async with client_for(app, token) as graphql:
                home = (await ask(graphql, HOME, {"n": 10}))["me"]
                assert home["displayName"] == member["display_name"]
                assert home["points"]["available"] == before
                for name in ("recommendedPerks", "recommendedPrompts", "forYou"):
                    shown = home[name]
                    assert 1 <= len(shown) <= 10, name
                    assert all(item["reason"] for item in shown), name
                    assert len({item["exposureId"] for item in shown}) == 1, name
                positions = [item["position"] for item in home["recommendedPerks"]]
                assert positions == sorted(positions)

                # A click on a recommended post goes back to the recommender as feedback.
                post = home["forYou"][0]
                click = {
                    "exposureId": post["exposureId"],
                    "itemId": post["item"]["id"],
                    "action": "CLICK",
                }
                clicked = await ask(graphql, FEEDBACK, {"input": click})
                assert clicked["recordRecommendationFeedback"] == {
                    "recorded": True,
                    "userErrors": [],
                }
                forged = await ask(graphql, FEEDBACK, {"input": {**click, "itemId": "forged"}})
                assert forged["recordRecommendationFeedback"]["recorded"] is False
                assert forged["recordRecommendationFeedback"]["userErrors"][0]["code"] == (
                    "INVALID_ID"
                )

                # Redeem the first recommended perk the member can redeem, twice with one key.
                perk = next(r["item"] for r in home["recommendedPerks"] if r["item"]["redeemable"])
                key = f"redeem-{uuid.uuid4()}"
                redeem = {"input": {"perkId": perk["id"], "idempotencyKey": key}}
                first = (await ask(graphql, REDEEM, redeem))["redeemPerk"]
                assert first["userErrors"] == []
                assert first["redemption"]["perk"]["id"] == perk["id"]
                assert first["redemption"]["points"] == perk["costPoints"]
                again = (await ask(graphql, REDEEM, redeem))["redeemPerk"]
                assert again == first
                assert await balance(rest, staff, member_id) == before - perk["costPoints"]

                # Book a seat of a coming session, twice with one key.
                now = datetime.now(UTC).isoformat()
                sessions = await ask(graphql, SESSIONS, {"from": now})
                mine = {b["session"]["id"] for b in sessions["me"]["bookings"]["nodes"]}
                bookable = next(
                    s
                    for s in sessions["sessions"]["nodes"]
                    if s["seatsLeft"] > 0
                    and not s["pricePoints"]
                    and s["status"] == "SCHEDULED"
                    and s["id"] not in mine
                )
                key = f"book-{uuid.uuid4()}"
                book = {"input": {"sessionId": bookable["id"], "seats": 1, "idempotencyKey": key}}
                booked = (await ask(graphql, BOOK, book))["bookSession"]
                assert booked["userErrors"] == []
                assert booked["booking"]["status"] == "CONFIRMED"
                assert (await ask(graphql, BOOK, book))["bookSession"] == booked
                after = await ask(graphql, SESSIONS, {"from": now})
                seats = {s["id"]: s["seatsLeft"] for s in after["sessions"]["nodes"]}
                assert seats[bookable["id"]] == bookable["seatsLeft"] - 1

                # The home screen's cost in calls and statements does not grow with its lists.
                with counting(engine_database) as few:
                    small = (await ask(graphql, HOME, {"n": 2}))["me"]
                with counting(engine_database) as many:
                    large = (await ask(graphql, HOME, {"n": 10}))["me"]
                assert len(large["recommendedPerks"]) > len(small["recommendedPerks"])
                assert len(large["forYou"]) > len(small["forYou"])
                assert many == few, (few, many)
                # The profile; the summary with the tier; the three lists in one call; one
                # batch read each of perks, prompts and posts (a post carries its author's name).
                assert few["calls"] == 6
    finally:
        await purge_brand(engine_database, demo.brand_id)
