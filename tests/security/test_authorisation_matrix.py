"""The authorisation matrix: every REST route and every GraphQL root field, tried by every kind of
caller, answers as `authorisation_expectations` says.

One world is set up for the module, committed (through the public API, the real relay and
consumers; the staff keys through the members service) and purged at the end: two brands, two
members of the first and one of the second, staff keys scoped one way and another, a revoked key,
forged tokens, and one object of each kind the routes' paths name (the member's post, comment,
redemption, booking, idea; the brand's perk, drop, group, segment, webhook endpoint, ...).
The matrix then runs inside one transaction on one connection, each try that may get in under a
savepoint rolled back after it, so no try changes what the next one meets (a suspension, an
erasure, a deleted perk).

Requests go through an in-process app (httpx over ASGI) built with the rate limits off: the
matrix sends each member's token a few hundred times a minute, and the limits have their own
tests. Subscriptions go over a real websocket (uvicorn on a free port, in the test's loop).

Besides each answer's class, every refusal must be an `{"error", "detail"}` body (a 401 with
`WWW-Authenticate: Bearer`), no answer may be a 5xx, no answer to a caller of the other brand may
name anything of the first brand that the request itself did not, and no answer to another member
of the brand may show the member's private data (their email, redemption, booking, ...).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLUnionType,
    get_named_type,
)
from graphql.pyutils import Undefined
from redis.asyncio import Redis
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncConnection
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from services.gateway.errors import BadUserInput
from services.gateway.ids import decode_global_id, encode_global_id
from services.gateway.notifications.channels import member_channel
from services.gateway.schema_build import SCHEMA
from services.kernel.app import attach_runtime, build_app
from services.kernel.auth import ALL_SCOPES, MemberTokenCodec, Scope
from services.kernel.clock import utcnow
from services.kernel.db import Database
from services.kernel.drain import drain_events
from services.kernel.errors import KinfolkError
from services.kernel.settings import Settings
from services.members import service as members_service
from services.members.models import ApiKey
from services.members.schemas import ApiKeyCreate
from services.registry import SERVICES
from tests.conftest import WorkerInfrastructure, bearer, make_runtime
from tests.security.authorisation_expectations import (
    BAD_CREDENTIALS,
    GRAPHQL,
    GRAPHQL_CALLERS,
    NODE_CALLERS,
    NODES,
    OF_OTHER_BRAND,
    PARAMETERS,
    REST,
    Access,
    Answer,
    FieldAccess,
    Who,
    path_parameters,
)
from tests.security.conftest import without_limits
from tests.served import served

BASE_URL = "http://kinfolk.test"
WAIT = 5.0  # seconds: the most a wait here lasts; each ends as soon as its condition holds

# --- The app's routes and the schema's fields ---------------------------------------------------


def http_routes(app: FastAPI) -> set[str]:
    """Every "METHOD /path" the app answers (HEAD left out: Starlette adds it to GETs)."""
    found: set[str] = set()
    for route in iter_route_contexts(app.routes):
        for method in route.methods or ():
            if method != "HEAD":
                found.add(f"{method} {route.path}")
    return found


def websocket_routes(app: FastAPI) -> set[str]:
    return {str(r.path) for r in iter_route_contexts(app.routes) if not r.methods}


def root_fields() -> dict[str, GraphQLField]:
    """Every root field of the gateway's schema, as "Query.me", "Mutation.redeemPerk", ..."""
    schema = SCHEMA._schema
    found: dict[str, GraphQLField] = {}
    for root in (schema.query_type, schema.mutation_type, schema.subscription_type):
        if root is not None:
            found.update({f"{root.name}.{name}": f for name, f in root.fields.items()})
    return found


@functools.cache
def error_statuses() -> dict[str, int]:
    """Each error code the services answer with, and its status: mutations' userErrors carry
    the service's code only."""
    statuses: dict[str, int] = {}
    pending: list[type[KinfolkError]] = [KinfolkError]
    while pending:
        cls = pending.pop()
        assert statuses.setdefault(cls.code, cls.status_code) == cls.status_code, cls.code
        pending.extend(cls.__subclasses__())
    return statuses


# --- Credentials --------------------------------------------------------------------------------


def lacking_scopes(scope: Scope) -> list[str]:
    """Every scope but `scope` and those that grant it (admin grants all; write grants read)."""
    granting = {scope.value, Scope.ADMIN.value}
    if scope.value.endswith(":read"):
        granting.add(scope.value.replace(":read", ":write"))
    return sorted(ALL_SCOPES - granting)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed_with_header(claims: Mapping[str, Any], header: Mapping[str, str], secret: str) -> str:
    """A JWT with `header` as given, HMAC-SHA256-signed with `secret` whatever it claims."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def unsigned(claims: Mapping[str, Any]) -> str:
    """An `alg: none` JWT: no signature at all."""
    header = {"alg": "none", "typ": "JWT"}
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}."


def member_claims(settings: Settings, brand_id: uuid.UUID, member_id: uuid.UUID) -> dict[str, Any]:
    now = int(utcnow().timestamp())
    return {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": str(member_id),
        "brand": str(brand_id),
        "iat": now,
        "exp": now + 3600,
    }


def forged_tokens(settings: Settings, brand_id: uuid.UUID, member_id: uuid.UUID) -> dict[Who, str]:
    """Tokens naming a real member that no verifier may accept."""
    claims = member_claims(settings, brand_id, member_id)
    secret = settings.jwt_signing_secret()
    expired = {**claims, "iat": claims["iat"] - 7200, "exp": claims["iat"] - 3600}
    return {
        Who.EXPIRED_TOKEN: jwt.encode(expired, secret, algorithm="HS256"),
        Who.ALG_NONE: unsigned(claims),
        # The server verifies HS256 with its secret: the confusion names another algorithm in
        # the header over the signature that would pass if the header were believed.
        Who.ALG_CONFUSION: signed_with_header(claims, {"alg": "RS256", "typ": "JWT"}, secret),
    }


# --- The world ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    id: uuid.UUID
    external_id: str
    token: str


# The kind of object behind each path parameter, input field and node, by the name the world
# gives it (`objects`).
PATH_OBJECTS = {
    "key_id": "key",
    "perk_id": "perk",
    "redemption_id": "redemption",
    "drop_id": "drop",
    "rule_id": "rule",
    "campaign_id": "campaign",
    "tier_id": "tier",
    "post_id": "post",
    "comment_id": "comment",
    "group_id": "group",
    "prompt_id": "prompt",
    "challenge_id": "challenge",
    "badge_id": "badge",
    "idea_id": "idea",
    "testimonial_id": "testimonial",
    "experience_id": "experience",
    "session_id": "session",
    "booking_id": "booking",
    "term_id": "term",
    "example_id": "example",
    "exposure_id": "exposure",
    "experiment_id": "experiment",
    "segment_id": "segment",
    "export_id": "export",
    "endpoint_id": "endpoint",
    "message_id": "message",
}
NODE_OBJECTS = {
    "Perk": "perk",
    "Drop": "drop",
    "Tier": "tier",
    "Redemption": "redemption",
    "Experience": "experience",
    "Session": "session",
    "Booking": "booking",
    "Post": "post",
    "Comment": "comment",
    "Group": "group",
    "Prompt": "prompt",
    "Challenge": "challenge",
    "Idea": "idea",
    "Badge": "badge",
    "Member": "me",
    "Me": "me",
}
# GraphQL input fields and arguments naming an object, and its kind.
INPUT_NODES = {
    "postId": "Post",
    "subjectId": "Post",
    "commentId": "Comment",
    "parentId": "Comment",
    "sessionId": "Session",
    "bookingId": "Booking",
    "experienceId": "Experience",
    "redemptionId": "Redemption",
    "perkId": "Perk",
    "itemId": "Perk",
    "dropId": "Drop",
    "groupId": "Group",
    "promptId": "Prompt",
    "challengeId": "Challenge",
    "ideaId": "Idea",
    "memberId": "Member",
    "node.id": "Post",
    "group.id": "Group",
    "member.id": "Member",
}


@dataclass
class World:
    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings
    redis: Redis
    brand_id: uuid.UUID
    other_brand_id: uuid.UUID
    admin: str  # the brand's key with every scope
    foreign_admin: str  # the other brand's
    me: Member  # SELF
    peer: Member
    outsider: Member
    only: dict[Scope, str] = field(default_factory=dict)  # a key with exactly this scope
    lacking: dict[Scope, str] = field(default_factory=dict)  # `lacking_scopes(scope)`
    revoked: str = ""
    forged: dict[Who, str] = field(default_factory=dict)
    objects: dict[str, str] = field(default_factory=dict)  # kind -> id of one of the brand's
    values: dict[str, str] = field(default_factory=dict)  # for paths, queries and bodies
    # Everything of the brand a caller of the other brand must not read, and what of the
    # member's another member must not.
    brand_marks: set[str] = field(default_factory=set)
    private_marks: set[str] = field(default_factory=set)
    connection: AsyncConnection | None = None

    def authorization(self, who: Who, scope: Scope | None) -> dict[str, str]:
        """The headers `who` sends to a route needing `scope` (None: no staff key may use it,
        and STAFF is a key with every scope)."""
        match who:
            case Who.ANONYMOUS:
                return {}
            case Who.SELF:
                return bearer(self.me.token)
            case Who.PEER:
                return bearer(self.peer.token)
            case Who.OUTSIDER:
                return bearer(self.outsider.token)
            case Who.STAFF:
                return bearer(self.admin if scope is None else self.only[scope])
            case Who.STAFF_LACKING:
                assert scope is not None
                return bearer(self.lacking[scope])
            case Who.FOREIGN_STAFF:
                return bearer(self.foreign_admin)
            case Who.REVOKED_KEY:
                return bearer(self.revoked)
            case _:
                return bearer(self.forged[who])

    def global_id(self, kind: str) -> str:
        return str(encode_global_id(kind, self.objects[NODE_OBJECTS[kind]]))

    @contextlib.asynccontextmanager
    async def undone(self) -> AsyncIterator[None]:
        """Whatever the block writes is rolled back after it."""
        assert self.connection is not None
        savepoint = await self.connection.begin_nested()
        try:
            yield
        finally:
            await savepoint.rollback()


class Setup:
    """The calls that build the world: each must succeed."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def __call__(
        self, method: str, path: str, key: str, body: Any = None, **params: Any
    ) -> Any:
        headers = {**bearer(key), "Idempotency-Key": uuid.uuid4().hex}
        response = await self.client.request(
            method, path, json=body, headers=headers, params=params or None
        )
        assert response.is_success, f"{method} {path}: {response.text}"
        return response.json() if response.content else None


async def build_world(
    app: FastAPI,
    client: httpx.AsyncClient,
    settings: Settings,
    database: Database,
    redis: Redis,
    brands: list[uuid.UUID],
) -> World:
    """The world, committed (`database`); its brands are added to `brands` as soon as they are
    made, to be purged whatever happens next."""
    keys: dict[str, tuple[ApiKey, str]] = {}
    async with database.unit_of_work() as session:
        brand, admin = await members_service.create_brand(session, "Matrix A")
        other, foreign_admin = await members_service.create_brand(session, "Matrix B")
        brands += [brand.id, other.id]
        wanted = {f"only {s}": [s.value] for s in Scope}
        wanted |= {f"all but {s}": lacking_scopes(s) for s in Scope}
        wanted |= {"revoked": sorted(ALL_SCOPES), "to revoke": [Scope.ADMIN.value]}
        for name, scopes in wanted.items():
            payload = ApiKeyCreate.model_validate({"name": name, "scopes": scopes})
            keys[name] = await members_service.create_api_key(session, brand.id, payload)
    call = Setup(client)
    codec = MemberTokenCodec(settings)
    # Revoked as staff revoke keys, so every service's cache knows at once.
    await call("DELETE", f"/members/v1/api-keys/{keys['revoked'][0].id}", admin)

    # A webhook endpoint first, so the members' events become messages.
    endpoint = await call(
        "POST",
        "/webhooks/v1/endpoints",
        admin,
        {"url": "http://127.0.0.1:9/crm", "event_types": ["member.*"]},
    )

    async def make_member(key: str, brand_id: uuid.UUID, external_id: str) -> Member:
        body = {"external_id": external_id, "email": f"{external_id}@example.com"}
        member_id = uuid.UUID((await call("POST", "/members/v1/members", key, body))["id"])
        return Member(member_id, external_id, codec.issue(brand_id, member_id, timedelta(hours=2)))

    world = World(
        app=app,
        client=client,
        settings=settings,
        redis=redis,
        brand_id=brand.id,
        other_brand_id=other.id,
        admin=admin,
        foreign_admin=foreign_admin,
        me=await make_member(admin, brand.id, "ada"),
        peer=await make_member(admin, brand.id, "bea"),
        outsider=await make_member(foreign_admin, other.id, "cyd"),
        only={s: keys[f"only {s}"][1] for s in Scope},
        lacking={s: keys[f"all but {s}"][1] for s in Scope},
        revoked=keys["revoked"][1],
    )
    me = world.me
    world.forged = forged_tokens(settings, brand.id, me.id)
    made: dict[str, Any] = {"endpoint": endpoint, "key": {"id": keys["to revoke"][0].id}}
    now = utcnow()

    # First what staff make, then one drain of the events (the services learn the members and
    # the catalog from them), then what the member does.
    # The other brand runs a program too, so its staff meet the first brand's objects as absent
    # rather than as a program to configure first.
    program = {"currency": "EUR", "points_per_unit": 1}
    await call("PUT", "/rewards/v1/program", admin, program)
    await call("PUT", "/rewards/v1/program", foreign_admin, program)
    tier = {"name": "Insider", "rank": 0, "threshold_minor": 0}
    made["tier"] = await call("POST", "/rewards/v1/tiers", admin, tier)
    perk = {"name": "Tote", "category": "gifts", "kind": "free_product", "cost_points": 100}
    made["perk"] = perk = await call("POST", "/rewards/v1/perks", admin, perk)
    # A drop of a perk of its own: a perk in a drop is had only through it.
    scarce = {"name": "Palette", "category": "makeup", "kind": "free_product", "cost_points": 10}
    scarce = await call("POST", "/rewards/v1/perks", admin, scarce)
    drop = {
        "perk_id": scarce["id"],
        "method": "draw",
        "units": 1,
        "opens_at": (now - timedelta(hours=1)).isoformat(),
        "closes_at": (now + timedelta(days=2)).isoformat(),
    }
    made["drop"] = await call("POST", "/rewards/v1/drops", admin, drop)
    rule = {"kind": "category_multiplier", "name": "Skin x2", "category": "skin", "multiplier": 2}
    made["rule"] = await call("POST", "/rewards/v1/rules", admin, rule)
    campaign = {
        "name": "Spring",
        "multiplier": 2,
        "starts_at": (now + timedelta(days=1)).isoformat(),
        "ends_at": (now + timedelta(days=8)).isoformat(),
    }
    made["campaign"] = await call("POST", "/rewards/v1/campaigns", admin, campaign)

    api = "/community/v1"
    made["group"] = await call("POST", f"{api}/groups", admin, {"name": "Skincare fans"})
    made["prompt"] = await call("POST", f"{api}/prompts", admin, {"title": "Your AM routine?"})
    challenge = {
        "title": "Post a week",
        "starts_at": (now - timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(days=7)).isoformat(),
        "steps": [{"action": "post", "target": 2}],
    }
    made["challenge"] = await call("POST", f"{api}/challenges", admin, challenge)
    made["badge"] = await call("POST", f"{api}/badges", admin, {"name": "Glow getter"})
    experience = {"title": "Summer glow masterclass", "kind": "masterclass"}
    made["experience"] = await call("POST", f"{api}/experiences", admin, experience)
    starts = now + timedelta(days=3)
    session_body = {
        "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=2)).isoformat(),
        "time_zone": "Europe/Paris",
        "place": {"kind": "address", "address": "12 rue de Rivoli, Paris"},
        "capacity": 10,
    }
    sessions = f"{api}/experiences/{made['experience']['id']}/sessions"
    made["session"] = await call("POST", sessions, admin, session_body)
    made["term"] = await call("POST", f"{api}/moderation/blocklist", admin, {"term": "zzspam"})
    examples = f"{api}/moderation/classifier/examples"
    example = {"text": "Win a free phone now", "label": "spam"}
    await call("POST", examples, admin, {"examples": [example]})
    made["example"] = (await call("GET", examples, admin))["items"][0]

    arms = [{"name": "popular", "share": 0.1, "policy": "popular"}]
    experiment = {"name": "Popular first", "arms": arms}
    made["experiment"] = await call("POST", "/recommender/v1/experiments", admin, experiment)
    segment = {
        "name": "Everyone",
        "rule": {"field": "member_id", "op": "is_not_null"},
        "purpose": "analytics",
    }
    made["segment"] = segment = await call("POST", "/marketing/v1/segments", admin, segment)

    await drain_events(make_runtime(settings, database, redis), SERVICES, "matrix")

    points = {"points": 1_000, "reason": "Welcome"}
    await call("POST", f"/rewards/v1/members/{me.id}/adjustments", admin, points)
    redemption = {"perk_id": perk["id"]}
    made["redemption"] = await call("POST", "/rewards/v1/me/redemptions", me.token, redemption)
    purchase = {
        "order_id": "MATRIX-1",
        "external_id": me.external_id,
        "amount_minor": 2_500,
        "currency": "EUR",
        "occurred_at": (now - timedelta(minutes=1)).isoformat(),
    }
    await call("POST", "/rewards/v1/purchases", admin, purchase)
    made["post"] = post = await call("POST", f"{api}/posts", me.token, {"body": "Loving it."})
    comment = {"body": "Day 3: glowing."}
    made["comment"] = await call("POST", f"{api}/posts/{post['id']}/comments", me.token, comment)
    idea = {"title": "Refill pouches", "body": "Less plastic.", "category": "product"}
    made["idea"] = await call("POST", f"{api}/ideas", me.token, idea)
    made["testimonial"] = await call("POST", f"{api}/testimonials", admin, {"post_id": post["id"]})
    bookings = f"{api}/sessions/{made['session']['id']}/bookings"
    made["booking"] = await call("POST", bookings, me.token, {})
    # A list shown to the member: an exposure.
    shown = f"/recommender/v1/members/{me.id}/recommendations"
    exposure = (await call("GET", shown, me.token, surface="perks"))["exposure_id"]
    version = await call("POST", f"/marketing/v1/segments/{segment['id']}/versions", admin)
    export = {"segment_id": segment["id"]}
    made["export"] = await call("POST", "/marketing/v1/exports", admin, export)
    messages = (await call("GET", "/webhooks/v1/messages", admin))["items"]
    assert messages, "the members' events became no webhook message"
    made["message"] = messages[0]

    world.objects = {kind: str(found["id"]) for kind, found in made.items()}
    world.objects |= {"exposure": exposure, "me": str(me.id)}
    world.values = {param: world.objects[kind] for param, kind in PATH_OBJECTS.items()}
    world.values |= {
        "member_id": str(me.id),
        "purpose": "email_marketing",
        "order_id": "MATRIX-1",
        "kind": "love",
        "tag": "skincare",
        "item_id": f"perk:{perk['id']}",
        "version": str(version["version"]),
        "schedule_id": str(uuid.uuid4()),
        # For bodies.
        "peer_id": str(world.peer.id),
        "past": (now - timedelta(hours=1)).isoformat(),
        "soon": (now + timedelta(days=4)).isoformat(),
        "later": (now + timedelta(days=4, hours=2)).isoformat(),
    }
    unvalued = sorted(p for p in PARAMETERS if p not in world.values)
    assert not unvalued, f"path parameters without a value: {unvalued}"
    world.brand_marks = {str(world.peer.id), *world.objects.values()}
    world.brand_marks |= {str(key.id) for key, _ in keys.values()}
    world.private_marks = {
        f"{me.external_id}@example.com",
        *(world.objects[k] for k in ("redemption", "booking", "testimonial", "exposure")),
    }
    return world


async def purge_brands(database: Database, brand_ids: list[uuid.UUID]) -> None:
    """Every row of these brands, from every service (`purge_brand` for several at once)."""
    if not brand_ids:
        return
    async with database.engine.begin() as conn:
        for service in reversed(SERVICES):
            for table in reversed(service.metadata.sorted_tables):
                if "brand_id" in table.c:
                    await conn.execute(delete(table).where(table.c.brand_id.in_(brand_ids)))
                elif table.name == "brands" and "id" in table.c:
                    await conn.execute(delete(table).where(table.c.id.in_(brand_ids)))


@pytest.fixture(scope="module")
async def world(
    base_settings: Settings, engine_database: Database, test_infra: WorkerInfrastructure
) -> AsyncIterator[World]:
    settings = without_limits(base_settings)
    redis = Redis.from_url(test_infra.redis_url)
    await redis.flushdb()
    app = build_app(SERVICES, settings, make_runtime(settings, engine_database, redis))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    brands: list[uuid.UUID] = []
    try:
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            built = await build_world(app, client, settings, engine_database, redis, brands)
            async with engine_database.engine.connect() as connection:
                transaction = await connection.begin()
                matrix = make_runtime(settings, Database.bound_to(connection), redis)
                attach_runtime(app, matrix)
                built.connection = connection
                try:
                    yield built
                finally:
                    await transaction.rollback()
    finally:
        await purge_brands(engine_database, brands)
        await redis.flushdb()
        await redis.aclose()


# --- Judging an answer --------------------------------------------------------------------------


@dataclass(frozen=True)
class Observed:
    who: Who
    expected: Answer
    status: int
    code: str
    problem: str  # empty when the answer is as expected and well formed

    def row(self) -> str:
        mark = "!!" if self.problem else "  "
        return (
            f"{mark} {self.who.value:<14} expected {self.expected.value:<8} got {self.status} "
            f"{self.code:<28} {self.problem}"
        )


def report(title: str, observed: list[Observed]) -> str:
    return "\n".join([title, *(o.row() for o in observed)])


def answer_of(status: int) -> Answer | None:
    """The class of a REST answer; None for a server error."""
    if status >= 500:
        return None
    return {401: Answer.UNAUTHENTICATED, 403: Answer.FORBIDDEN, 404: Answer.NOT_FOUND}.get(
        status, Answer.ALLOWED
    )


def leaks(world: World, who: Who, text: str, sent: str) -> list[str]:
    """What `who` must not read in an answer (the request's own `sent` ids may come back)."""
    found = []
    named = sorted(
        m for m in world.brand_marks | world.private_marks if m in text and m not in sent
    )
    if who in OF_OTHER_BRAND and named:
        found.append(f"names the other brand's {named}")
    private = [m for m in named if m in world.private_marks]
    if who is Who.PEER and private:
        found.append(f"shows another member's private {private}")
    return found


def judge(
    world: World, who: Who, expected: Answer, response: httpx.Response, sent: str
) -> Observed:
    status = response.status_code
    body: Any = None
    with contextlib.suppress(ValueError):
        body = response.json()
    code = str(body.get("error")) if status >= 400 and isinstance(body, dict) else ""
    problems = []
    got = answer_of(status)
    if got is None:
        problems.append("a server error")
    elif got is not expected:
        problems.append(f"not {expected.value}")
    if status >= 400 and not (isinstance(body, dict) and set(body) == {"error", "detail"}):
        problems.append(f"not an error body: {response.text[:120]!r}")
    if status == 401 and response.headers.get("www-authenticate") != "Bearer":
        problems.append("a 401 without WWW-Authenticate: Bearer")
    problems += leaks(world, who, response.text, sent)
    return Observed(who, expected, status, code, "; ".join(problems))


# --- REST ---------------------------------------------------------------------------------------


def with_values(world: World, value: Any) -> Any:
    """`value` with each string "{name}" replaced by the world's value of that name."""
    if isinstance(value, Mapping):
        return {k: with_values(world, v) for k, v in value.items()}
    if isinstance(value, list):
        return [with_values(world, v) for v in value]
    if isinstance(value, str) and (name := re.fullmatch(r"\{(\w+)\}", value)):
        return world.values[name.group(1)]
    return value


def fill(world: World, template: str) -> str:
    """The route's path with each parameter filled."""
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: world.values[m.group(1)], template)


async def try_route(world: World, route: str, access: Access, who: Who) -> Observed:
    method, template = route.split(" ", 1)
    expected = access.answer(who, template)
    path = fill(world, template)
    headers = world.authorization(who, access.scope)
    body = None
    if method in ("POST", "PUT", "PATCH"):
        body = with_values(world, access.body if access.body is not None else {})
        # Writes a client may retry take a key; a new one each try, so none is a replay.
        headers = {**headers, "Idempotency-Key": uuid.uuid4().hex}
    query = with_values(world, access.query)
    # A caller refused at the door writes nothing; one let in may, and it must not last.
    may_write = method != "GET" and expected in (Answer.ALLOWED, Answer.NOT_FOUND)
    async with world.undone() if may_write else contextlib.nullcontext():
        response = await world.client.request(
            method, path, json=body, headers=headers, params=query or None
        )
    return judge(world, who, expected, response, f"{path} {json.dumps(body)} {query}")


@pytest.mark.parametrize("route", sorted(REST))
async def test_rest_route(world: World, route: str) -> None:
    access = REST[route]
    observed = [await try_route(world, route, access, who) for who in access.callers()]
    assert not [o for o in observed if o.problem], report(route, observed)


def test_every_route_and_path_parameter_is_classified(app: FastAPI) -> None:
    routes = http_routes(app)
    assert sorted(routes - set(REST)) == [], "classify these routes in authorisation_expectations"
    assert sorted(set(REST) - routes) == [], "these entries name no route: remove them"
    parameters = {p for r in routes for p in path_parameters(r)}
    assert sorted(parameters - set(PARAMETERS)) == [], "say how to fill these path parameters"
    assert sorted(set(PARAMETERS) - parameters) == [], "these parameters are in no path"
    assert set(PATH_OBJECTS) <= set(PARAMETERS)
    # The only websocket is the gateway's: its operations are the Subscription fields below.
    assert websocket_routes(app) == {"/graphql"}


# --- GraphQL ------------------------------------------------------------------------------------


def selection(type_: GraphQLNamedType) -> str:
    """A small selection of a type: its scalars, `userErrors`, and a connection's edges."""
    if isinstance(type_, GraphQLScalarType | GraphQLEnumType):
        return ""
    if isinstance(type_, GraphQLUnionType):
        return "{ __typename }"
    assert isinstance(type_, GraphQLObjectType | GraphQLInterfaceType)
    parts = ["__typename"]
    for name, f in type_.fields.items():
        if any(isinstance(a.type, GraphQLNonNull) for a in f.args.values()):
            continue
        if isinstance(get_named_type(f.type), GraphQLScalarType | GraphQLEnumType):
            parts.append(name)
        elif name == "userErrors":
            parts.append("userErrors { field code message }")
        elif name == "edges":
            parts.append("edges { cursor }")
    return "{ " + " ".join(parts) + " }"


def input_value(world: World, type_: GraphQLInputType, name: str, path: str) -> Any:
    """A value of `type_` for the argument or input field `name` (at `path`)."""
    if isinstance(type_, GraphQLNonNull):
        return input_value(world, type_.of_type, name, path)
    if isinstance(type_, GraphQLList):
        return [input_value(world, type_.of_type, name, path)]
    if isinstance(type_, GraphQLInputObjectType):
        fields = type_.fields
        required = [
            key
            for key, f in fields.items()
            if isinstance(f.type, GraphQLNonNull) and f.default_value is Undefined
        ]
        # An input of alternatives (`@oneOf`: every field optional) takes its first.
        chosen = required or [next(iter(fields))]
        return {key: input_value(world, fields[key].type, key, f"{path}.{key}") for key in chosen}
    if isinstance(type_, GraphQLEnumType):
        return next(iter(type_.values))
    assert isinstance(type_, GraphQLScalarType)
    kind = INPUT_NODES.get(path, INPUT_NODES.get(name))
    if kind is not None:
        return world.global_id(kind)
    match (name, type_.name):
        case ("exposureId", _):
            return world.objects["exposure"]
        case ("idempotencyKey", _):
            return uuid.uuid4().hex
        case ("tag", _):
            return "skincare"
        case ("timeZone", _):
            return "Europe/Paris"
        case (_, "String"):
            return "Matrix text"
        case (_, "Int"):
            return 1
        case (_, "Boolean"):
            return False
        case (_, "DateTime"):
            return (utcnow() + timedelta(days=3)).isoformat()
    raise AssertionError(f"no value for {path} ({type_.name}): add one to INPUT_NODES or here")


def operation(world: World, key: str, f: GraphQLField) -> tuple[str, dict[str, Any]]:
    """A document calling the root field `key` once, and its variables: the required
    arguments, `first: 1` for a connection (which must say how many), and the table's extra
    input fields."""
    kind, name = key.split(".")
    declared: list[str] = []
    passed: list[str] = []
    variables: dict[str, Any] = {}
    for arg_name, arg in f.args.items():
        if arg_name == "first":
            variables[arg_name] = 1
        elif isinstance(arg.type, GraphQLNonNull):
            variables[arg_name] = input_value(world, arg.type, arg_name, f"{name}.{arg_name}")
        else:
            continue
        declared.append(f"${arg_name}: {arg.type}")
        passed.append(f"{arg_name}: ${arg_name}")
    if GRAPHQL[key].inputs:
        variables["input"] = {**variables["input"], **GRAPHQL[key].inputs}
    signature = f"({', '.join(declared)})" if declared else ""
    arguments = f"({', '.join(passed)})" if passed else ""
    verb = {"Query": "query", "Mutation": "mutation", "Subscription": "subscription"}[kind]
    selected = selection(get_named_type(f.type))
    return f"{verb} Matrix{signature} {{ {name}{arguments} {selected} }}", variables


def graphql_answer(body: Any, name: str) -> tuple[Answer | None, str]:
    """The class of a GraphQL answer (None for an unexpected error), and a code to show: from
    its errors' codes, else its userErrors' (by the service's status for each), else null data
    (a lookup that answers null for what is not the caller's to see)."""
    if not isinstance(body, dict):
        return None, "not JSON"
    codes = [str((e.get("extensions") or {}).get("code", "")) for e in body.get("errors") or []]
    for code, answer in (
        ("INTERNAL_SERVER_ERROR", None),
        ("UNAUTHENTICATED", Answer.UNAUTHENTICATED),
        ("FORBIDDEN", Answer.FORBIDDEN),
        ("NOT_FOUND", Answer.NOT_FOUND),
    ):
        if code in codes:
            return answer, code
    data = (body.get("data") or {}).get(name)
    if isinstance(data, dict) and data.get("userErrors"):
        user_codes = [str(e["code"]) for e in data["userErrors"]]
        statuses = {error_statuses().get(c) for c in user_codes}
        shown = ",".join(user_codes)
        for status, answer in (
            (401, Answer.UNAUTHENTICATED),
            (403, Answer.FORBIDDEN),
            (404, Answer.NOT_FOUND),
        ):
            if status in statuses:
                return answer, shown
        return Answer.ALLOWED, shown
    if data is None and not codes:
        return Answer.NOT_FOUND, "null"
    return Answer.ALLOWED, ",".join(codes)


def sent_ids(value: Any) -> set[str]:
    """The raw ids a request's variables name, global ids decoded (an answer may echo them)."""
    if isinstance(value, dict):
        return set().union(*(sent_ids(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(sent_ids(v) for v in value))
    if not isinstance(value, str):
        return set()
    with contextlib.suppress(ValueError):
        return {str(uuid.UUID(value))}
    with contextlib.suppress(BadUserInput):
        return {str(decode_global_id(value)[1])}
    return set()


async def ask(
    world: World, who: Who, access: FieldAccess, name: str, document: str, variables: Any
) -> Observed:
    """Sends one GraphQL operation as `who` and judges the answer to its field `name`."""
    expected = access.answer(who)
    may_write = document.startswith("mutation") and who not in BAD_CREDENTIALS
    async with world.undone() if may_write else contextlib.nullcontext():
        response = await world.client.post(
            "/graphql",
            json={"query": document, "variables": variables},
            headers=world.authorization(who, None),
        )
    body: Any = None
    with contextlib.suppress(ValueError):
        body = response.json()
    got, code = graphql_answer(body, name)
    problems = []
    if response.status_code != 200:
        problems.append(f"HTTP {response.status_code}")
    if got is None:
        problems.append(f"an unexpected error: {response.text[:300]}")
    elif got is not expected:
        problems.append(f"not {expected.value}: {response.text[:300]}")
    problems += leaks(world, who, response.text, " ".join(sent_ids(variables)))
    return Observed(who, expected, response.status_code, code[:28], "; ".join(problems))


@pytest.mark.parametrize("key", sorted(k for k in GRAPHQL if not k.startswith("Subscription.")))
async def test_graphql_field(world: World, key: str) -> None:
    document, variables = operation(world, key, root_fields()[key])
    name = key.split(".")[1]
    observed = [
        await ask(world, who, GRAPHQL[key], name, document, variables) for who in GRAPHQL_CALLERS
    ]
    assert not [o for o in observed if o.problem], report(f"{key}: {document}", observed)


NODE_QUERY = "query Node($id: ID!) { node(id: $id) { __typename id } }"


@pytest.mark.parametrize("kind", sorted(NODES))
async def test_graphql_node_of_each_kind(world: World, kind: str) -> None:
    """`node(id:)` reaches every kind of object: each is shown only to whom it may be."""
    variables = {"id": world.global_id(kind)}
    observed = [
        await ask(world, who, NODES[kind], "node", NODE_QUERY, variables) for who in NODE_CALLERS
    ]
    assert not [o for o in observed if o.problem], report(kind, observed)


def test_every_graphql_field_and_node_kind_is_classified() -> None:
    fields = set(root_fields())
    assert sorted(fields - set(GRAPHQL)) == [], (
        "classify these fields in authorisation_expectations"
    )
    assert sorted(set(GRAPHQL) - fields) == [], "these entries name no field: remove them"
    schema = SCHEMA._schema
    node = schema.get_type("Node")
    assert isinstance(node, GraphQLInterfaceType)
    kinds = {t.name for t in schema.get_possible_types(node)}
    assert sorted(kinds ^ set(NODES)) == [], "classify these kinds of Node in NODES"
    assert set(NODES) <= set(NODE_OBJECTS)


# --- Subscriptions, over a real websocket -------------------------------------------------------

PROTOCOL = Subprotocol("graphql-transport-ws")


async def eventually(condition: Callable[[], Awaitable[bool]]) -> bool:
    """Whether `condition()` came to hold within WAIT seconds (as soon as it does)."""
    for _ in range(int(WAIT / 0.01)):
        if await condition():
            return True
        await asyncio.sleep(0.01)
    return False


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """The app behind uvicorn on a free port, in the test's loop; yields its ws URL."""
    async with served(app) as port:
        yield f"ws://127.0.0.1:{port}/graphql"


async def _send(ws: ClientConnection, message: dict[str, Any]) -> None:
    await ws.send(json.dumps(message))


async def _receive(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(WAIT):
        message: dict[str, Any] = json.loads(await ws.recv())
    return message


async def subscribe_as(world: World, url: str, who: Who, key: str) -> Observed:
    """Subscribes as `who`. Refused, the operation gets an `error` message; let in, the gateway
    process SUBSCRIBEs to the member's channel (and the operation is then completed)."""
    expected = GRAPHQL[key].answer(who)
    document, _ = operation(world, key, root_fields()[key])
    members = {Who.SELF: world.me, Who.PEER: world.peer, Who.OUTSIDER: world.outsider}
    member = members.get(who)
    brand_id = world.other_brand_id if who is Who.OUTSIDER else world.brand_id
    channel = member_channel(brand_id, member.id) if member is not None else None

    async def subscribed(count: int) -> bool:
        return channel is not None and (await world.redis.pubsub_numsub(channel))[0][1] == count

    # A subscription left from an earlier try must not pass for this one.
    assert channel is None or await eventually(lambda: subscribed(0)), f"{channel} is busy"
    async with connect(url, subprotocols=[PROTOCOL]) as ws:
        await _send(ws, {"type": "connection_init", "payload": world.authorization(who, None)})
        assert await _receive(ws) == {"type": "connection_ack"}
        await _send(ws, {"id": "1", "type": "subscribe", "payload": {"query": document}})
        if channel is not None and await eventually(lambda: subscribed(1)):
            await _send(ws, {"id": "1", "type": "complete"})
            problem = "" if expected is Answer.ALLOWED else "let in"
            return Observed(who, expected, 101, "listening", problem)
        message = await _receive(ws)
    code = ""
    if message.get("type") == "error":
        code = str((message["payload"][0].get("extensions") or {}).get("code", ""))
    got = {"UNAUTHENTICATED": Answer.UNAUTHENTICATED, "FORBIDDEN": Answer.FORBIDDEN}.get(code)
    problem = "" if got is expected else f"not {expected.value}: {message}"
    return Observed(who, expected, 101, code or str(message.get("type")), problem)


async def test_graphql_subscriptions(world: World) -> None:
    keys = sorted(k for k in GRAPHQL if k.startswith("Subscription."))
    observed: list[tuple[str, Observed]] = []
    async with serving(world.app) as url:
        for key in keys:
            for who in GRAPHQL_CALLERS:
                observed.append((key, await subscribe_as(world, url, who, key)))
    rows = "\n".join(f"{key:<28} {o.row()}" for key, o in observed)
    assert not [o for _, o in observed if o.problem], rows


# --- An RS256 deployment ------------------------------------------------------------------------


async def test_an_rs256_deployment_refuses_hs256_tokens_signed_with_its_public_key(
    world: World,
) -> None:
    """Where member tokens come from an identity provider (RS256, its public key configured),
    the classic confusion is an HS256 token whose HMAC secret is the public key's text."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    settings = world.settings.model_copy(
        update={"jwt_algorithm": "RS256", "jwt_public_key": public_pem}
    )
    claims = member_claims(settings, world.brand_id, world.me.id)
    tokens = {
        "RS256 from the provider": jwt.encode(claims, private, algorithm="RS256"),
        "HS256 keyed with the public key": signed_with_header(
            claims, {"alg": "HS256", "typ": "JWT"}, public_pem
        ),
        "RS256 header over an HMAC": signed_with_header(
            claims, {"alg": "RS256", "typ": "JWT"}, public_pem
        ),
        "alg none": unsigned(claims),
    }
    serving_runtime = world.app.state.runtime
    attach_runtime(world.app, make_runtime(settings, serving_runtime.database, world.redis))
    try:
        got = {}
        for name, token in tokens.items():
            rest = await world.client.get("/members/v1/me", headers=bearer(token))
            graphql = await world.client.post(
                "/graphql", json={"query": "{ me { id } }"}, headers=bearer(token)
            )
            errors = graphql.json().get("errors") or [{"extensions": {"code": "none"}}]
            got[name] = (rest.status_code, errors[0]["extensions"]["code"])
    finally:
        attach_runtime(world.app, serving_runtime)
    assert got == {
        "RS256 from the provider": (200, "none"),
        "HS256 keyed with the public key": (401, "UNAUTHENTICATED"),
        "RS256 header over an HMAC": (401, "UNAUTHENTICATED"),
        "alg none": (401, "UNAUTHENTICATED"),
    }
