"""schemathesis against the committed GraphQL schema, on the in-process gateway.

Every root field of `schemas/graphql/schema.graphql` (queries and mutations; subscriptions run
over websockets, not this POST) gets generated documents that fit the schema (positive) and
that break it (negative), sent as the fuzz world's member (see conftest.py; committed on a
real connection pool, for the reason `committed_fuzz_world` gives). A GraphQL server answers 200
whatever happened, so the rules are the gateway's own promises rather than schemathesis's (which
counts every resolver error, NOT_FOUND included, as a server error):

- no 5xx, and the answer is a JSON object with `data` or `errors`;
- every error carries `extensions.code`, and none is INTERNAL_SERVER_ERROR (a masked bug);
- no field the schema declares non-null comes back null (schemathesis's schema-violation test);
- a positive document is never refused as invalid or unparsable (the committed schema is the one
  served), and a negative one is always refused.

Random ids and page arguments stop nearly every document at the gateway's own checks (INVALID_ID,
PAGINATION_DIRECTION, ...), so every other positive document is first made to get past them:
ids of the world's objects in place of random ones, one `first` of 1 to 10 as the only page
argument, and one field of a @oneOf input (hypothesis-graphql does not know @oneOf) - leaving the
rest of the document as generated.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from graphql import (
    ArgumentNode,
    FieldNode,
    GraphQLInputObjectType,
    GraphQLSchema,
    IntValueNode,
    NameNode,
    NullValueNode,
    ObjectFieldNode,
    ObjectValueNode,
    StringValueNode,
    TypeInfo,
    TypeInfoVisitor,
    ValueNode,
    Visitor,
    build_schema,
    get_named_type,
    parse,
    print_ast,
    visit,
)
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.schemas import BaseSchema
from schemathesis.specs.graphql import nodes
from schemathesis.specs.graphql.validation import is_schema_violation

from services.gateway.ids import encode_global_id
from tests.security.conftest import (
    BASE_URL,
    EXAMPLES,
    FuzzCase,
    FuzzWorld,
    Operation,
    generate,
    operations_of,
    send,
)

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "graphql" / "schema.graphql"
ENDPOINT = f"{BASE_URL}/graphql"
DOCUMENT_ERRORS = frozenset({"GRAPHQL_VALIDATION_FAILED", "GRAPHQL_PARSE_FAILED"})

# Operations (schemathesis labels, e.g. "Mutation.createPost") with a known failure, each with
# the reason: left out of the sweep and expected to fail in test_known_gap.
KNOWN_GAPS: dict[str, str] = {}


@cache
def _schema() -> BaseSchema:
    # The `JSON` scalar (a brand's traits) has no strategy of schemathesis's own: small strings,
    # numbers and booleans, the values traits hold.
    schemathesis.graphql.scalar(
        "JSON",
        st.one_of(
            st.text(max_size=20).map(nodes.String),
            st.integers(-1000, 1000).map(nodes.Int),
            st.booleans().map(nodes.Boolean),
        ),
    )
    return schemathesis.graphql.from_path(SCHEMA)


@cache
def _graphql_schema() -> GraphQLSchema:
    return build_schema(SCHEMA.read_text())


# Input fields and arguments naming an object by global id: the type, and the world's id for it.
ID_FIELDS = {
    "postId": ("Post", "post_id"),
    "perkId": ("Perk", "perk_id"),
    "sessionId": ("Session", "session_id"),
    "experienceId": ("Experience", "experience_id"),
    "ideaId": ("Idea", "idea_id"),
    "groupId": ("Group", "group_id"),
    "promptId": ("Prompt", "prompt_id"),
    "memberId": ("Member", "other"),
}
PAGE_ARGUMENTS = frozenset({"first", "last", "after", "before"})


class _Rewrite(Visitor):
    """Rewrites a generated document as the module docstring says: its @oneOf inputs always,
    its ids and page arguments when given the world's ids."""

    def __init__(self, type_info: TypeInfo, ids: dict[str, str] | None) -> None:
        super().__init__()
        self.type_info = type_info
        self.ids = ids

    def enter_object_value(self, node: ObjectValueNode, *_: Any) -> ObjectValueNode | None:
        input_type = get_named_type(self.type_info.get_input_type())
        if not (isinstance(input_type, GraphQLInputObjectType) and input_type.is_one_of):
            return None
        given = [f for f in node.fields if not isinstance(f.value, NullValueNode)]
        if given:
            return ObjectValueNode(fields=(given[0],))
        # Every field null: one of its string fields, set (SessionPlaceInput's are all strings).
        name = next(
            n for n, f in input_type.fields.items() if get_named_type(f.type).name == "String"
        )
        chosen = ObjectFieldNode(name=NameNode(value=name), value=StringValueNode(value="fuzz"))
        return ObjectValueNode(fields=(chosen,))

    def enter_field(self, node: FieldNode, *_: Any) -> FieldNode | None:
        definition = self.type_info.get_field_def()
        if self.ids is None or definition is None or "first" not in definition.args:
            return None
        first = next((a for a in node.arguments or () if a.name.value == "first"), None)
        size = int(first.value.value) if first and isinstance(first.value, IntValueNode) else 0
        kept = [a for a in node.arguments or () if a.name.value not in PAGE_ARGUMENTS]
        page = ArgumentNode(
            name=NameNode(value="first"), value=IntValueNode(value=str(1 + abs(size) % 10))
        )
        return replace(node, arguments=(*kept, page))

    def enter_argument(self, node: ArgumentNode, *_: Any) -> ArgumentNode | None:
        value = self._id_for(node.name.value, node.value)
        return None if value is None else replace(node, value=value)

    def enter_object_field(self, node: ObjectFieldNode, *_: Any) -> ObjectFieldNode | None:
        value = self._id_for(node.name.value, node.value)
        return None if value is None else replace(node, value=value)

    def _id_for(self, name: str, given: ValueNode) -> StringValueNode | None:
        """The world's global id for an id argument or input field given a literal, else None."""
        if self.ids is None or not isinstance(given, StringValueNode | IntValueNode):
            return None
        if name in ID_FIELDS:
            kind, key = ID_FIELDS[name]
        else:
            definition = self.type_info.get_field_def()
            if name != "id" or definition is None:
                return None
            # `node(id:)`, `group(id:)`, `member(id:)`: an object of the type the field returns.
            type_name = get_named_type(definition.type).name
            kind = "Post" if type_name == "Node" else type_name
            found = [k for t, k in ID_FIELDS.values() if t == kind]
            if not found:
                return None
            key = found[0]
        return StringValueNode(value=encode_global_id(kind, uuid.UUID(self.ids[key])))


def rewrite(document: str, world: FuzzWorld | None) -> str:
    """`document` with its @oneOf inputs fixed, and given `world`, past the gateway's checks."""
    ids = None if world is None else {**world.ids, "other": str(world.other)}
    type_info = TypeInfo(_graphql_schema())
    rewritten = visit(parse(document), TypeInfoVisitor(type_info, _Rewrite(type_info, ids)))
    return print_ast(rewritten)


def _operations(root: str) -> list[Operation]:
    return [op for op in operations_of(_schema()) if op.label.startswith(f"{root}.")]


def _problems(mode: GenerationMode, status: int, answer: Any) -> list[str]:
    """What is wrong with one answer, by the rules in the module docstring."""
    if status >= 500:
        return [f"status {status}"]
    if not isinstance(answer, dict) or not ({"data", "errors"} & answer.keys()):
        return [f"not a GraphQL answer: {answer!r}"]
    errors: list[dict[str, Any]] = answer.get("errors") or []
    problems: list[str] = []
    for error in errors:
        code = (error.get("extensions") or {}).get("code")
        if not code:
            problems.append(f"an error without extensions.code: {error}")
        elif code == "INTERNAL_SERVER_ERROR":
            problems.append(f"a masked bug: {error}")
        elif code in DOCUMENT_ERRORS and mode is GenerationMode.POSITIVE:
            problems.append(f"a valid document refused: {error}")
    if errors and is_schema_violation(errors):  # type: ignore[arg-type]
        problems.append(f"null in a non-null field: {errors}")
    if mode is GenerationMode.NEGATIVE and not errors:
        problems.append("an invalid document was accepted")
    return problems


async def _fuzz(
    client: httpx.AsyncClient, operations: list[Operation], world: FuzzWorld
) -> list[str]:
    failures: list[str] = []
    counts = {GenerationMode.POSITIVE: EXAMPLES, GenerationMode.NEGATIVE: max(1, EXAMPLES // 2)}
    for operation in operations:
        for mode, count in counts.items():
            for index, case in enumerate(generate(operation, mode, count)):
                if mode is GenerationMode.POSITIVE:
                    assert isinstance(case.body, str), case.body  # the document; no variables
                    case.body = rewrite(case.body, world if index % 2 == 0 else None)
                response = await send(client, case, world.member_headers, base_url=ENDPOINT)
                try:
                    answer = response.json()
                except ValueError:
                    answer = response.text
                for problem in _problems(mode, response.status_code, answer):
                    failures.append(
                        f"{operation.label} [{mode.value}]: {problem}\n{_document(case)}"
                    )
    return failures


def _document(case: FuzzCase) -> str:
    return case.body if isinstance(case.body, str) else repr(case.body)


@pytest.mark.parametrize("root", ["Query", "Mutation"])
async def test_every_root_field_answers_as_the_schema_says(
    root: str, client: httpx.AsyncClient, committed_fuzz_world: FuzzWorld
) -> None:
    operations = [op for op in _operations(root) if op.label not in KNOWN_GAPS]
    assert operations, f"no {root} fields in {SCHEMA.name}"
    failures = await _fuzz(client, operations, committed_fuzz_world)
    assert failures == [], "\n\n".join(failures)


# Only while there are known gaps: an empty parametrization would show as a skipped test.
if KNOWN_GAPS:

    @pytest.mark.parametrize(
        "label",
        [
            pytest.param(label, marks=pytest.mark.xfail(strict=True, reason=reason))
            for label, reason in KNOWN_GAPS.items()
        ],
    )
    async def test_known_gap(
        label: str, client: httpx.AsyncClient, committed_fuzz_world: FuzzWorld
    ) -> None:
        root = label.split(".", 1)[0]
        operations = [op for op in _operations(root) if op.label == label]
        assert len(operations) == 1, label
        failures = await _fuzz(client, operations, committed_fuzz_world)
        assert failures == [], "\n\n".join(failures)


def test_the_rules_catch_what_they_are_for() -> None:
    """The sweep's rules are not vacuous."""
    coded = {"message": "No such post", "path": ["post"], "extensions": {"code": "NOT_FOUND"}}
    masked = {"message": "Unexpected error", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}
    invalid = {"message": "Unknown field", "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}
    null = {"message": "Cannot return null for non-nullable field Query.me.", "path": ["me"]}
    positive, negative = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
    assert _problems(positive, 200, {"data": {"me": None}, "errors": [coded]}) == []
    assert _problems(negative, 200, {"errors": [invalid]}) == []
    assert len(_problems(positive, 500, {"errors": [coded]})) == 1
    assert len(_problems(positive, 200, "Internal Server Error")) == 1
    assert len(_problems(positive, 200, {"errors": [masked]})) == 1
    assert len(_problems(positive, 200, {"errors": [invalid]})) == 1
    assert len(_problems(positive, 200, {"errors": [{"message": "no code"}]})) == 1
    assert "null in a non-null field" in " ".join(_problems(positive, 200, {"errors": [null]}))
    assert _problems(negative, 200, {"data": {"me": {"id": "x"}}}) == [
        "an invalid document was accepted"
    ]


CREATE_POST = """
mutation ($input: CreatePostInput!) {
  createPost(input: $input) { post { id } userErrors { field code } }
}
"""


async def test_an_idempotency_key_that_cannot_be_a_header_is_a_user_error(
    client: httpx.AsyncClient, fuzz_world: FuzzWorld
) -> None:
    """Found by this fuzzing: a key with a non-ASCII character was passed on as the
    Idempotency-Key header, which httpx cannot encode, and the mutation failed unexpectedly."""

    async def posts() -> int:
        mine = await client.get("/community/v1/me/posts", headers=fuzz_world.member_headers)
        assert mine.status_code == 200, mine.text
        return len(mine.json()["items"])

    before = await posts()
    for key in ("clé-1", "tab\there", "x" * 256):
        variables = {"input": {"body": "Hello again", "idempotencyKey": key}}
        response = await client.post(
            "/graphql",
            json={"query": CREATE_POST, "variables": variables},
            headers=fuzz_world.member_headers,
        )
        assert response.json()["data"] == {
            "createPost": {
                "post": None,
                "userErrors": [{"field": ["input", "idempotencyKey"], "code": "ValidationError"}],
            }
        }
    assert await posts() == before
    accepted = {"input": {"body": "Hello again", "idempotencyKey": "post-1 (retry-safe)"}}
    response = await client.post(
        "/graphql",
        json={"query": CREATE_POST, "variables": accepted},
        headers=fuzz_world.member_headers,
    )
    assert response.json()["data"]["createPost"]["userErrors"] == []
    assert await posts() == before + 1
