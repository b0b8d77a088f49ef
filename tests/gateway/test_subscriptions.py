"""Subscriptions over `graphql-transport-ws`, end to end and committed: a REST write, its outbox,
the relay, Redis Streams, the gateway's live consumer, the member's pub/sub channel, and a real
websocket client (the `websockets` package) on a real server (uvicorn) in front of the real app.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from services.community.experiences.events import BookedData, ExperienceBooked
from services.community.models import ContentStatus
from services.community.posts.events import (
    CommentApproved,
    CommentCreated,
    CommentData,
    ReactionAdded,
    ReactionData,
    ReactionKind,
)
from services.gateway.endpoints import MAX_SUBSCRIPTIONS_PER_SOCKET
from services.gateway.ids import encode_global_id
from services.gateway.notifications.channels import member_channel
from services.gateway.notifications.messages import (
    BookingPromotedMessage,
    DropWonMessage,
    ReplyMessage,
    message_for,
)
from services.kernel.app import build_app
from services.kernel.auth import MemberTokenCodec
from services.kernel.clock import utcnow
from services.kernel.db import Database
from services.kernel.drain import drain_events
from services.kernel.runtime import Runtime
from services.kernel.settings import Settings
from services.members import service as members_service
from services.registry import SERVICES
from services.rewards.events import (
    DropWon,
    DropWonData,
    PointsEarned,
    PointsMovement,
    TierChanged,
    TierChangedData,
)
from services.rewards.models import Bucket, EntryKind
from tests.conftest import WorkerInfrastructure, bearer, make_runtime, purge_brand
from tests.served import served

PROTOCOL = Subprotocol("graphql-transport-ws")
WAIT = 5.0  # seconds; every wait here ends as soon as its condition holds

POINTS = """subscription { pointsChanged {
  available pending entry { kind bucket points reason sourceType }
} }"""
TIER = """subscription { tierChanged {
  direction fromTierId fromTierName toTierId toTierName reason
} }"""
NOTIFICATIONS = """subscription { notifications {
  __typename
  ... on Notification { kind text subjectId }
  ... on ReplyNotification { actorId postId replyId parentCommentId }
  ... on ReactionNotification { actorId reaction postId commentId }
} }"""


# --- A server and a client ----------------------------------------------------------------------


async def eventually(condition: Callable[[], Awaitable[bool]]) -> None:
    """Returns as soon as `condition()` holds; fails after WAIT seconds."""
    for _ in range(int(WAIT / 0.01)):
        if await condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition did not hold in time")


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """The app behind uvicorn on a free port, in the test's loop; yields its ws URL."""
    async with served(app) as port:
        yield f"ws://127.0.0.1:{port}/graphql"


class Socket:
    """A graphql-transport-ws client: connection_init, subscribe, and the messages that come."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def receive(self) -> dict[str, Any]:
        async with asyncio.timeout(WAIT):
            message: dict[str, Any] = json.loads(await self.ws.recv())
        return message

    async def subscribe(self, operation_id: str, query: str) -> None:
        await self.send({"id": operation_id, "type": "subscribe", "payload": {"query": query}})


@contextlib.asynccontextmanager
async def socket(url: str, payload: dict[str, Any] | None) -> AsyncIterator[Socket]:
    async with connect(url, subprotocols=[PROTOCOL]) as ws:
        client = Socket(ws)
        await client.send({"type": "connection_init", "payload": payload or {}})
        assert await client.receive() == {"type": "connection_ack"}
        yield client


def data_of(message: dict[str, Any], operation_id: str) -> Any:
    """The `data` of a `next` message of that operation (its `extensions` report the cost)."""
    assert (message["id"], message["type"]) == (operation_id, "next"), message
    assert "errors" not in message["payload"], message
    return message["payload"]["data"]


def token_payload(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- A committed brand with two members ---------------------------------------------------------


@dataclass
class Member:
    id: uuid.UUID
    external_id: str
    token: str


@dataclass
class World:
    runtime: Runtime
    client: httpx.AsyncClient
    url: str
    brand_id: uuid.UUID
    staff: dict[str, str]
    ada: Member
    bea: Member
    gold_id: str

    async def settle(self) -> None:
        await drain_events(self.runtime, SERVICES, "subscriptions")

    async def call(self, path: str, headers: dict[str, str], body: Any) -> Any:
        response = await self.client.post(path, json=body, headers=headers)
        assert response.is_success, response.text
        return response.json()

    async def buy(self, member: Member, order_id: str, amount_minor: int) -> None:
        await self.call(
            "/rewards/v1/purchases",
            self.staff,
            {
                "order_id": order_id,
                "external_id": member.external_id,
                "amount_minor": amount_minor,
                "currency": "EUR",
                "lines": [],
                "occurred_at": (utcnow() - timedelta(seconds=1)).isoformat(),
            },
        )

    async def listening(self, member: Member, count: int = 1) -> None:
        """Wait until this many gateway processes SUBSCRIBEd to the member's channel: what is
        published before that is, by design, never seen."""
        channel = member_channel(self.brand_id, member.id)

        async def subscribed() -> bool:
            return bool((await self.runtime.redis.pubsub_numsub(channel))[0][1] == count)

        await eventually(subscribed)


@pytest.fixture
async def world(
    base_settings: Settings, engine_database: Database, redis: Redis
) -> AsyncIterator[World]:
    runtime = make_runtime(base_settings, engine_database, redis)
    app = build_app(SERVICES, base_settings, runtime)
    async with engine_database.unit_of_work() as session:
        brand, key = await members_service.create_brand(session, f"Subs {uuid.uuid4().hex[:6]}")
    staff = bearer(key)
    codec = MemberTokenCodec(base_settings)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://kinfolk.test") as client,
            serving(app) as url,
        ):
            program = {"currency": "EUR", "points_per_unit": 1}
            assert (await client.put("/rewards/v1/program", json=program, headers=staff)).is_success
            members = []
            for name in ("ada", "bea"):
                made = await client.post(
                    "/members/v1/members", json={"external_id": name}, headers=staff
                )
                assert made.status_code == 201, made.text
                member_id = uuid.UUID(made.json()["id"])
                token = codec.issue(brand.id, member_id, timedelta(hours=1))
                members.append(Member(member_id, name, token))
            found = World(runtime, client, url, brand.id, staff, *members, gold_id="")
            for name, rank, threshold in (("Insider", 0, 0), ("Gold", 1, 10_000)):
                tier = await found.call(
                    "/rewards/v1/tiers",
                    staff,
                    {"name": name, "rank": rank, "threshold_minor": threshold},
                )
                found.gold_id = tier["id"]
            await found.settle()  # rewards and the community learn the members
            yield found
    finally:
        await purge_brand(engine_database, brand.id)


# --- Points and tier ----------------------------------------------------------------------------


async def test_a_purchase_reaches_the_member_s_points_and_tier_and_no_one_else(
    world: World,
) -> None:
    async with (
        socket(world.url, token_payload(world.ada.token)) as ada,
        socket(world.url, token_payload(world.bea.token)) as bea,
    ):
        await ada.subscribe("points", POINTS)
        await ada.subscribe("tier", TIER)
        await bea.subscribe("points", POINTS)
        # Two subscriptions on one socket: the process SUBSCRIBEs to the channel once.
        await world.listening(world.ada)
        await world.listening(world.bea)

        await world.buy(world.ada, "A-1", 12_050)
        await world.settle()

        got = {m["id"]: m for m in [await ada.receive(), await ada.receive()]}
        assert data_of(got["points"], "points") == {
            "pointsChanged": {
                "available": 120,
                "pending": 0,
                "entry": {
                    "kind": "EARN",
                    "bucket": "AVAILABLE",
                    "points": 120,
                    "reason": "Order A-1: 120.50 EUR \u00d7 1 pt/EUR = 120 pts",
                    "sourceType": "purchase",
                },
            }
        }
        year = utcnow().year
        assert data_of(got["tier"], "tier") == {
            "tierChanged": {
                "direction": "UP",
                "fromTierId": None,
                "fromTierName": None,
                "toTierId": encode_global_id("Tier", world.gold_id),
                "toTierName": "Gold",
                "reason": f"Spent 120.50 EUR in {year} with order A-1, reaching Gold "
                "(from 100.00 EUR)",
            }
        }

        # Bea's first news is her own purchase: Ada's, published before it, never reached her.
        await world.buy(world.bea, "B-1", 1_000)
        await world.settle()
        first = data_of(await bea.receive(), "points")["pointsChanged"]
        assert (first["available"], first["entry"]["points"]) == (10, 10)
        assert first["entry"]["reason"].startswith("Order B-1:")
    # The sockets are gone and so are the process's subscriptions.
    await world.listening(world.ada, count=0)
    await world.listening(world.bea, count=0)


async def test_every_gateway_process_sees_the_news_and_a_reconnect_replays_none(
    world: World,
    base_settings: Settings,
    engine_database: Database,
    test_infra: WorkerInfrastructure,
) -> None:
    # A second process: its own app and its own Redis connections.
    other_redis = Redis.from_url(test_infra.redis_url)
    other = build_app(
        SERVICES, base_settings, make_runtime(base_settings, engine_database, other_redis)
    )
    try:
        async with serving(other) as other_url:
            async with (
                socket(world.url, token_payload(world.ada.token)) as here,
                socket(other_url, token_payload(world.ada.token)) as there,
            ):
                await here.subscribe("p", POINTS)
                await there.subscribe("p", POINTS)
                await world.listening(world.ada, count=2)
                await world.buy(world.ada, "A-1", 5_000)
                await world.settle()
                for client in (here, there):
                    news = data_of(await client.receive(), "p")["pointsChanged"]
                    assert (news["available"], news["entry"]["points"]) == (50, 50)

            # Published while Ada has no socket: lost to her, by design.
            await world.listening(world.ada, count=0)
            await world.buy(world.ada, "A-2", 2_000)
            await world.settle()

            async with socket(world.url, token_payload(world.ada.token)) as again:
                await again.subscribe("p", POINTS)
                await world.listening(world.ada)
                await world.buy(world.ada, "A-3", 3_000)
                await world.settle()
                changed = data_of(await again.receive(), "p")["pointsChanged"]
                assert changed["available"] == 100  # 50 + 20 + 30: A-3's, not A-2's
                assert changed["entry"]["reason"].startswith("Order A-3:")
    finally:
        await other_redis.aclose()


# --- Notifications ------------------------------------------------------------------------------


async def test_replies_and_reactions_to_my_post_notify_me_but_not_my_own(world: World) -> None:
    ada, bea = bearer(world.ada.token), bearer(world.bea.token)
    post = await world.call("/community/v1/posts", ada, {"body": "My evening routine, in 3 steps"})
    assert post["status"] == "published"
    await world.settle()
    async with socket(world.url, token_payload(world.ada.token)) as ada_socket:
        await ada_socket.subscribe("n", NOTIFICATIONS)
        await world.listening(world.ada)

        # Ada's own reaction comes first in the stream; it tells nobody.
        await world.call(f"/community/v1/posts/{post['id']}/reactions", ada, {"kind": "love"})
        comment = await world.call(
            f"/community/v1/posts/{post['id']}/comments", bea, {"body": "Trying this tonight!"}
        )
        await world.call(f"/community/v1/posts/{post['id']}/reactions", bea, {"kind": "helpful"})
        await world.settle()

        post_id = encode_global_id("Post", post["id"])
        comment_id = encode_global_id("Comment", comment["id"])
        bea_id = encode_global_id("Member", world.bea.id)
        assert data_of(await ada_socket.receive(), "n") == {
            "notifications": {
                "__typename": "ReplyNotification",
                "kind": "REPLY",
                "text": "Someone replied to your post.",
                "subjectId": comment_id,
                "actorId": bea_id,
                "postId": post_id,
                "replyId": comment_id,
                "parentCommentId": None,
            }
        }
        assert data_of(await ada_socket.receive(), "n") == {
            "notifications": {
                "__typename": "ReactionNotification",
                "kind": "REACTION",
                "text": "Someone reacted \u201chelpful\u201d to your post.",
                "subjectId": post_id,
                "actorId": bea_id,
                "reaction": "helpful",
                "postId": post_id,
                "commentId": None,
            }
        }


def test_who_is_told_what_comes_from_the_event_alone() -> None:
    brand, ada, bea = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    post, comment = uuid.uuid4(), uuid.uuid4()
    now = utcnow()

    def reply(status: ContentStatus, author: uuid.UUID, *, age: timedelta = timedelta(0)) -> Any:
        data = CommentData(
            comment_id=comment,
            post_id=post,
            post_author_id=ada,
            parent_id=None,
            author_id=author,
            status=status,
        )
        return CommentCreated(brand_id=brand, data=data, occurred_at=now - age)

    # A held reply waits for its approval, which tells the post's author.
    assert message_for(reply(ContentStatus.HELD, bea), now) is None
    held = reply(ContentStatus.HELD, bea)
    approved = CommentApproved(
        brand_id=brand, data=held.data.model_copy(update={"status": ContentStatus.PUBLISHED})
    )
    told = message_for(approved, now)
    assert told is not None
    assert told[0] == ada
    assert isinstance(told[1], ReplyMessage)
    # One's own comment, and a reply loaded from history, tell nobody.
    assert message_for(reply(ContentStatus.PUBLISHED, ada), now) is None
    assert message_for(reply(ContentStatus.PUBLISHED, bea, age=timedelta(days=3)), now) is None
    # A reaction to a comment tells the comment's author.
    reaction = ReactionAdded(
        brand_id=brand,
        data=ReactionData(
            member_id=ada,
            kind=ReactionKind.WOW,
            post_id=post,
            comment_id=comment,
            target_author_id=bea,
        ),
    )
    told = message_for(reaction, now)
    assert told is not None
    assert told[0] == bea

    # A tier reached in a brand's imported history is not news; points moved are, whatever the
    # purchase's own time.
    gold = uuid.uuid4()
    tier = TierChangedData(
        member_id=ada,
        from_tier_id=None,
        from_tier=None,
        to_tier_id=gold,
        to_tier="Gold",
        direction="up",
        reason="Imported",
        window_spend_minor=10_000,
    )
    assert message_for(TierChanged(brand_id=brand, data=tier), now) is not None
    old = now - timedelta(days=300)
    assert message_for(TierChanged(brand_id=brand, data=tier, occurred_at=old), now) is None
    movement = PointsMovement(
        member_id=ada,
        entry_id=uuid.uuid4(),
        kind=EntryKind.EARN,
        bucket=Bucket.AVAILABLE,
        points=7,
        reason="Order Z-1",
        source_type="purchase",
        source_id="Z-1",
        available=7,
        pending=0,
    )
    told = message_for(PointsEarned(brand_id=brand, data=movement, occurred_at=old), now)
    assert told is not None
    assert told[0] == ada

    session, experience, booking = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    def booked(promoted: bool) -> ExperienceBooked:
        data = BookedData(
            booking_id=booking,
            member_id=bea,
            session_id=session,
            experience_id=experience,
            seats=2,
            points=0,
            promoted_from_waitlist=promoted,
            starts_at=now + timedelta(days=2),
        )
        return ExperienceBooked(brand_id=brand, data=data)

    assert message_for(booked(promoted=False), now) is None
    told = message_for(booked(promoted=True), now)
    assert told is not None
    assert told[0] == bea
    assert isinstance(told[1], BookingPromotedMessage)
    assert (told[1].booking_id, told[1].seats) == (booking, 2)

    drop, perk, redemption = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    won = DropWon(
        brand_id=brand,
        data=DropWonData(
            member_id=ada, drop_id=drop, perk_id=perk, redemption_id=redemption, position=3
        ),
    )
    told = message_for(won, now)
    assert told is not None
    assert told[0] == ada
    assert isinstance(told[1], DropWonMessage)
    assert (told[1].drop_id, told[1].redemption_id, told[1].position) == (drop, redemption, 3)


# --- Refusals -----------------------------------------------------------------------------------


async def test_a_subscription_without_a_valid_member_token_is_unauthenticated(
    world: World, base_settings: Settings
) -> None:
    expired = MemberTokenCodec(base_settings).issue(
        world.brand_id, world.ada.id, timedelta(seconds=-60)
    )
    payloads: list[dict[str, Any] | None] = [
        None,
        token_payload(expired),
        {"Authorization": world.staff["Authorization"]},  # a staff key is not a member
        {"Authorization": "Bearer not-a-token"},
    ]
    for payload in payloads:
        async with socket(world.url, payload) as client:
            await client.subscribe("p", POINTS)
            answer = await client.receive()
            assert (answer["id"], answer["type"]) == ("p", "error"), answer
            assert [e["extensions"]["code"] for e in answer["payload"]] == ["UNAUTHENTICATED"]
    # Nothing was left listening.
    await world.listening(world.ada, count=0)


async def test_a_socket_holds_at_most_ten_subscriptions_and_the_rest_are_refused_with_a_code(
    world: World,
) -> None:
    async with socket(world.url, token_payload(world.ada.token)) as ada:
        for index in range(MAX_SUBSCRIPTIONS_PER_SOCKET):
            await ada.subscribe(f"p{index}", POINTS)
        await ada.subscribe("one-too-many", POINTS)
        refusal = await ada.receive()
        assert (refusal["id"], refusal["type"]) == ("one-too-many", "error")
        assert [e["extensions"]["code"] for e in refusal["payload"]] == ["TOO_MANY_SUBSCRIPTIONS"]
        assert "at most 10 subscriptions" in refusal["payload"][0]["message"]

        # The ten that were accepted carry on, each told once of the next purchase.
        await world.listening(world.ada)
        await world.buy(world.ada, "A-CAP", 1_000)
        await world.settle()
        told = [await ada.receive() for _ in range(MAX_SUBSCRIPTIONS_PER_SOCKET)]
        assert sorted(m["id"] for m in told) == sorted(
            f"p{i}" for i in range(MAX_SUBSCRIPTIONS_PER_SOCKET)
        )
        assert {data_of(m, m["id"])["pointsChanged"]["available"] for m in told} == {10}


async def test_an_unexpected_error_in_a_subscription_is_masked(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_: object) -> None:
        raise RuntimeError("secret internals: postgresql://kinfolk:hunter2@db")

    monkeypatch.setattr("services.gateway.schema.subscriptions._points_change", broken)
    async with socket(world.url, token_payload(world.ada.token)) as client:
        await client.subscribe("p", POINTS)
        await world.listening(world.ada)
        await world.buy(world.ada, "A-9", 1_000)
        await world.settle()
        message = await client.receive()
    assert "hunter2" not in json.dumps(message)
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert [e["extensions"]["code"] for e in errors] == ["INTERNAL_SERVER_ERROR"]
    assert errors[0]["message"].startswith("Unexpected error; it has been logged as ")
