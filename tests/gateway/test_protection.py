"""What keeps the API safe for mobile: limits, cost, persisted documents, masked errors, GraphiQL
in development only, and the committed schema's breaking-change check."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from redis.asyncio import Redis

from services.gateway.contract import breaking_changes
from services.kernel.auth import MemberTokenCodec
from services.kernel.db import Database
from services.kernel.settings import Settings
from services.registry import SERVICES
from tests.conftest import BrandFixture, MemberFixture, app_for, bearer, make_runtime
from tests.gateway.conftest import GraphQL, MakeGatewayMember


def codes(answer: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in answer.get("errors", [])]


async def test_bad_documents_get_a_code_and_run_nothing(
    graphql: GraphQL, make_gateway_member: MakeGatewayMember, redis: Redis
) -> None:
    member = await make_gateway_member()
    aliases = " ".join(f"a{i}: me {{ id }}" for i in range(16))
    cases = {
        "{ me { ": "GRAPHQL_PARSE_FAILED",
        "{ me { password } }": "GRAPHQL_VALIDATION_FAILED",
        "{ " + aliases + " }": "TOO_MANY_ALIASES",
        "{ me { id " + "id " * 2_000 + "} }": "TOO_MANY_TOKENS",
    }
    for document, code in cases.items():
        answer = await graphql(document, member=member)
        assert answer["data"] is None
        assert codes(answer) == [code], document[:40]
    # Refused before execution: nothing was charged to the member's cost budget.
    assert await redis.keys("kinfolk:gateway:cost:*") == []


@pytest.mark.parametrize(
    ("content", "content_type", "message"),
    [
        (b"{}", "application/json", "No GraphQL query found in the request"),
        (b"{ me {", "application/json", "Unable to parse request body as JSON"),
        (
            b'{"query": 5}',
            "application/json",
            "The GraphQL operation's `query` must be a string or null, if provided.",
        ),
        (
            b'{"query": "{ __typename }", "variables": 3}',
            "application/json",
            "The GraphQL operation's `variables` must be an object or null, if provided.",
        ),
        (b"{ __typename }", "text/plain", "Unsupported content type"),
    ],
)
async def test_a_request_that_is_not_graphql_gets_a_json_error_with_a_code(
    client: httpx.AsyncClient, content: bytes, content_type: str, message: str
) -> None:
    """strawberry answers these in plain text; apps parse JSON, so the gateway answers a GraphQL
    response with the reason and a code."""
    response = await client.post(
        "/graphql", content=content, headers={"content-type": content_type}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "data": None,
        "errors": [{"message": message, "extensions": {"code": "BAD_REQUEST"}}],
    }


async def test_a_query_nested_past_the_depth_limit_is_refused(
    graphql: GraphQL, make_gateway_member: MakeGatewayMember
) -> None:
    member = await make_gateway_member()
    nested = "id"
    for _ in range(3):
        nested = "posts(first: 1) { edges { node { author { " + nested + " } } } }"
    answer = await graphql("{ me { " + nested + " } }", member=member)
    assert answer["data"] is None
    assert codes(answer) == ["QUERY_TOO_DEEP"]
    # Introspection is as deep as clients need it to be: tools and GraphiQL depend on it.
    introspection = await graphql(
        "{ __schema { types { fields { type { ofType { ofType { ofType { name } } } } } } } }",
        member=member,
    )
    assert "errors" not in introspection


async def test_an_expired_or_foreign_token_is_unauthenticated(
    graphql: GraphQL, make_gateway_member: MakeGatewayMember, base_settings: Settings
) -> None:
    member = await make_gateway_member()
    codec = MemberTokenCodec(base_settings)
    expired = codec.issue(member.brand_id, member.id, timedelta(seconds=-60))
    answer = await graphql("{ me { displayName } }", token=expired)
    assert codes(answer) == ["UNAUTHENTICATED"]
    assert "expired" in answer["errors"][0]["message"]
    forged = jwt.encode(
        {
            "sub": str(member.id),
            "brand": str(member.brand_id),
            "iss": "kinfolk",
            "aud": "kinfolk",
            "exp": 4_102_444_800,
        },
        "a secret that is not the one the brand signs with",
        algorithm="HS256",
    )
    assert codes(await graphql("{ me { displayName } }", token=forged)) == ["UNAUTHENTICATED"]


async def test_a_token_that_cannot_be_checked_now_is_unavailable_not_unauthenticated(
    member_app: Any, base_settings: Settings, database: Database, brand: BrandFixture
) -> None:
    """With RS256 keys from a JWKS that is out of reach, the app is told to retry
    (SERVICE_UNAVAILABLE), not that its member's token is bad, which would sign them out."""
    settings = base_settings.model_copy(
        update={"jwt_algorithm": "RS256", "jwt_jwks_url": "http://127.0.0.1:9/jwks.json"}
    )
    signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(
        {"sub": str(uuid.uuid4()), "brand": str(brand.id), "iss": "kinfolk", "aud": "kinfolk",
         "exp": 4_102_444_800},
        signing_key,
        algorithm="RS256",
        headers={"kid": "key-1"},
    )  # fmt: skip
    transport = httpx.ASGITransport(app=member_app(settings, database), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://kinfolk.test") as client:
        response = await client.post(
            "/graphql", json={"query": "{ me { displayName } }"}, headers=bearer(token)
        )
    assert response.status_code == 200, response.text
    assert codes(response.json()) == ["SERVICE_UNAVAILABLE"]
    assert "retry" in response.json()["errors"][0]["message"]


async def test_a_missing_argument_is_a_validation_error(
    graphql: GraphQL, make_gateway_member: MakeGatewayMember
) -> None:
    member = await make_gateway_member()
    answer = await graphql("{ node { id } }", member=member)
    assert codes(answer) == ["GRAPHQL_VALIDATION_FAILED"]
    assert "Query.node(id:)" in answer["errors"][0]["message"]


@pytest.fixture
def member_app(redis: Redis) -> Any:
    """Builds an app on `settings` over the test's database (for limits set per test)."""

    def make(settings: Settings, database: Database) -> FastAPI:
        return app_for(SERVICES, settings, make_runtime(settings, database, redis))

    return make


async def _post(app: FastAPI, body: dict[str, Any], member: MemberFixture) -> dict[str, Any]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://kinfolk.test") as client:
        response = await client.post("/graphql", json=body, headers=bearer(member.token))
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_a_costly_query_is_refused_and_the_cost_is_reported(
    base_settings: Settings,
    database: Database,
    member_app: Any,
    make_gateway_member: MakeGatewayMember,
    redis: Redis,
) -> None:
    member = await make_gateway_member(display_name="Ada")
    settings = base_settings.model_copy(update={"graphql_cost_per_minute": 3})
    app = member_app(settings, database)

    answer = await _post(app, {"query": "{ a: me { displayName } b: me { displayName } }"}, member)
    assert answer["data"] == {"a": {"displayName": "Ada"}, "b": {"displayName": "Ada"}}
    assert answer["extensions"]["cost"]["requested"] == 2
    assert answer["extensions"]["cost"]["budget"]["remaining"] == 1

    answer = await _post(app, {"query": "{ a: me { displayName } b: me { displayName } }"}, member)
    assert answer["data"] is None
    assert codes(answer) == ["COST_BUDGET_EXCEEDED"]
    assert 1 <= answer["errors"][0]["extensions"]["retryAfterSeconds"] <= 60


async def test_the_cost_of_a_list_counts_every_item_asked_for() -> None:
    from graphql import FragmentDefinitionNode, OperationDefinitionNode, parse

    from services.gateway.limits import operation_cost

    document = parse(
        "query Q($n: Int) { me { id posts(first: $n) { edges { node { id author { id } } } } } "
        "...F } fragment F on Query { perks(first: 5) { nodes { id } } }"
    )
    operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    # me 1 + posts (1 + 10 x (edges 1 + node 1 + author 1)) + perks (1 + 5 x nodes 1)
    assert operation_cost(operation, fragments, {"n": 10}) == 1 + 1 + 10 * 3 + 1 + 5 * 1
    assert operation_cost(operation, fragments, {}) == 1 + 1 + 3 + 1 + 5


async def test_automatic_persisted_queries(
    graphql: GraphQL, client: httpx.AsyncClient, make_gateway_member: MakeGatewayMember
) -> None:
    member = await make_gateway_member(display_name="Ada")
    query = "{ me { displayName } }"
    digest = hashlib.sha256(query.encode()).hexdigest()
    persisted = {"persistedQuery": {"version": 1, "sha256Hash": digest}}

    async def send(body: dict[str, Any]) -> dict[str, Any]:
        response = await client.post("/graphql", json=body, headers=bearer(member.token))
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    assert codes(await send({"extensions": persisted})) == ["PERSISTED_QUERY_NOT_FOUND"]
    wrong = {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}
    assert codes(await send({"query": query, "extensions": wrong})) == [
        "PERSISTED_QUERY_HASH_MISMATCH"
    ]
    first = await send({"query": query, "extensions": persisted})
    assert first["data"] == {"me": {"displayName": "Ada"}}
    by_hash = await send({"extensions": persisted})
    assert by_hash["data"] == {"me": {"displayName": "Ada"}}


async def test_a_member_may_persist_only_so_many_new_documents_a_day(
    base_settings: Settings,
    database: Database,
    member_app: Any,
    make_gateway_member: MakeGatewayMember,
) -> None:
    member = await make_gateway_member(display_name="Ada")
    app = member_app(
        base_settings.model_copy(update={"graphql_persisted_queries_per_day": 2}), database
    )

    def persisted(query: str, *, with_text: bool = True) -> dict[str, Any]:
        digest = hashlib.sha256(query.encode()).hexdigest()
        body: dict[str, Any] = {
            "extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}}
        }
        if with_text:
            body["query"] = query
        return body

    documents = [f"query Q{n} {{ me {{ displayName }} }}" for n in range(3)]
    for document in documents[:2]:
        assert (await _post(app, persisted(document), member))["data"] == {
            "me": {"displayName": "Ada"}
        }
    # Sending a document already kept again costs nothing of the allowance.
    assert (await _post(app, persisted(documents[0]), member))["data"]
    refused = await _post(app, persisted(documents[2]), member)
    assert codes(refused) == ["PERSISTED_QUERY_LIMIT"]
    # Refused means not kept: its hash alone is unknown.
    unknown = await _post(app, persisted(documents[2], with_text=False), member)
    assert codes(unknown) == ["PERSISTED_QUERY_NOT_FOUND"]
    # The query text alone still runs.
    assert (await _post(app, {"query": documents[2]}, member))["data"]


async def test_a_brand_can_run_only_its_registered_operations_in_production(
    base_settings: Settings,
    database: Database,
    member_app: Any,
    make_gateway_member: MakeGatewayMember,
    tmp_path: Path,
) -> None:
    member = await make_gateway_member(display_name="Ada")
    registered = "query Home { me { displayName } }"
    digest = hashlib.sha256(registered.encode()).hexdigest()
    manifest = {"enforce": True, "operations": {digest: registered}}
    (tmp_path / f"{member.brand_id}.json").write_text(json.dumps(manifest))
    settings = base_settings.model_copy(
        update={"graphql_operations_dir": tmp_path, "environment": "production"}
    )
    app = member_app(settings, database)

    by_hash = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}}}
    assert (await _post(app, by_hash, member))["data"] == {"me": {"displayName": "Ada"}}
    # The registered text itself is accepted too: it hashes to a registered operation.
    assert (await _post(app, {"query": registered}, member))["data"] == {
        "me": {"displayName": "Ada"}
    }
    answer = await _post(app, {"query": "{ me { email } }"}, member)
    assert answer["data"] is None
    assert codes(answer) == ["OPERATION_NOT_REGISTERED"]

    # In development the same brand may run anything (the apps are being written).
    development = member_app(settings.model_copy(update={"environment": "development"}), database)
    assert (await _post(development, {"query": "{ me { displayName } }"}, member))["data"]


async def test_an_unexpected_error_is_masked_with_an_id(
    graphql: GraphQL, make_gateway_member: MakeGatewayMember, monkeypatch: pytest.MonkeyPatch
) -> None:
    member = await make_gateway_member()

    async def broken(_: Any) -> dict[str, Any]:
        raise RuntimeError("connection string postgresql://secret@db leaked")

    monkeypatch.setattr("services.gateway.schema.me.profile", broken)
    answer = await graphql("{ me { displayName } }", member=member)
    error = answer["errors"][0]
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert error["message"] == (
        f"Unexpected error; it has been logged as {error['extensions']['errorId']}."
    )
    assert "secret" not in json.dumps(answer)


async def test_graphiql_is_served_in_development_only(
    client: httpx.AsyncClient, base_settings: Settings, database: Database, member_app: Any
) -> None:
    page = await client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()

    production = member_app(
        base_settings.model_copy(update={"environment": "production"}), database
    )
    transport = httpx.ASGITransport(app=production, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://kinfolk.test") as other:
        page = await other.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 404
    assert page.json()["error"] == "NotFound"


def test_removing_a_field_is_reported_as_breaking() -> None:
    before = "type Query { me: Me }\ntype Me { id: ID! name: String email: String }"
    after = "type Query { me: Me }\ntype Me { id: ID! name: String! }"
    assert breaking_changes(before, after) == ["FIELD_REMOVED: Field Me.email was removed."]
    # Adding a field breaks no one.
    assert (
        breaking_changes(after, after.replace("name: String!", "name: String! bio: String")) == []
    )
