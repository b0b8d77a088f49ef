"""schemathesis against every service's committed OpenAPI document, on the in-process app.

Each operation of `schemas/openapi/<service>.json` gets generated requests that fit its schema
(positive) and that do not (negative); see conftest.py for how many and why they are sent through
the test's client. Staff routes are called with the brand's admin key (every scope), member
routes (those depending on `require_member`) with a member token. Every other positive case has
its path parameters pointed at the fuzz world's resources (`perk_id`, `post_id`, a member, ...),
so it gets past the lookups to the code behind them, and a PUT is sent twice, as a client may.
Every answer must not be a 5xx, must have a documented status, content type and headers, and a
body that matches the documented schema; a negative request must be refused with a 4xx.

For a longer run: KINFOLK_FUZZ_EXAMPLES=10 pytest --timeout 0 tests/security (a few minutes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from schemathesis import GenerationMode, checks
from schemathesis.checks import CheckFunction
from schemathesis.core.failures import FailureGroup
from schemathesis.core.parameters import ParameterLocation
from schemathesis.schemas import BaseSchema

from services.kernel.auth import require_member
from tests.security.conftest import (
    FuzzCase,
    FuzzWorld,
    Operation,
    counts,
    generate,
    operations_of,
    send,
)

DOCUMENTS = Path(__file__).resolve().parents[2] / "schemas" / "openapi"
SERVICES = sorted(p.stem for p in DOCUMENTS.glob("*.json"))

# Operations (schemathesis labels) with a known failure, each with the reason: left out of the
# sweep and expected to fail in test_known_gap, so fixing one makes that test say so.
KNOWN_GAPS: dict[str, str] = {}

CHECKS: dict[GenerationMode, list[CheckFunction]] = {
    GenerationMode.POSITIVE: [
        checks.not_a_server_error,
        checks.status_code_conformance,
        checks.content_type_conformance,
        checks.response_headers_conformance,
        checks.response_schema_conformance,
    ],
}
CHECKS[GenerationMode.NEGATIVE] = [*CHECKS[GenerationMode.POSITIVE], checks.negative_data_rejection]

# Bodies that are text on the wire (the members import's CSV and NDJSON).
TEXT_BODIES = ("text/", "application/x-ndjson")


def _checks(case: FuzzCase, mode: GenerationMode) -> list[CheckFunction]:
    """The checks of `mode`, except for a negative case whose only broken part is a text body:
    schemathesis breaks it by making it another type (an object, a list), which is text again
    once sent as a file, so there is nothing to refuse (the import reports each line it cannot
    read). Its answer must still be documented and not a 5xx."""
    meta = case.meta
    if (
        mode is GenerationMode.NEGATIVE
        and meta is not None
        and (case.media_type or "").startswith(TEXT_BODIES)
        and {place for place, info in meta.components.items() if info.mode.is_negative}
        == {ParameterLocation.BODY}
    ):
        return CHECKS[GenerationMode.POSITIVE]
    return CHECKS[mode]


@cache
def _schema(service: str) -> BaseSchema:
    return schemathesis.openapi.from_path(DOCUMENTS / f"{service}.json")


def _operations(service: str) -> list[Operation]:
    return operations_of(_schema(service))


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _calls(dependency)


def member_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(METHOD, path) of every route that admits only a member token: those whose dependencies
    include `require_member`, however deep. FastAPI keeps included routers as branches of
    `app.routes`; `iter_route_contexts` (what its OpenAPI generator walks) flattens them."""
    found: set[tuple[str, str]] = set()
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and require_member in set(_calls(route.dependant)):
            found.update((method, str(context.path_format)) for method in route.methods or ())
    return found


def _last_if_destructive(operation: Operation) -> bool:
    # Deleting, erasing or suspending the world's resources is fuzzed too, after the rest.
    return operation.method.upper() == "DELETE" or operation.path.endswith(("/erase", "/suspend"))


async def _fuzz(
    client: httpx.AsyncClient,
    operations: list[Operation],
    world: FuzzWorld,
    members_only: set[tuple[str, str]],
) -> list[str]:
    """Every failure, with schemathesis's report (the case as a curl command) for each."""
    failures: list[str] = []
    for operation in sorted(operations, key=_last_if_destructive):
        is_member_route = (operation.method.upper(), operation.path) in members_only
        headers = world.member_headers if is_member_route else world.staff
        # A member acts on another member; staff act on the world's member.
        known = {**world.ids, "member_id": str(world.other if is_member_route else world.member)}
        for mode, count in counts(operation).items():
            for index, case in enumerate(generate(operation, mode, count)):
                # Every other positive case names existing resources, to get past the lookups;
                # negative cases are left as generated (the broken part may be that id).
                parameters = case.path_parameters or {}
                if mode is GenerationMode.POSITIVE and index % 2 == 0:
                    case.path_parameters = {
                        name: known.get(name, value) for name, value in parameters.items()
                    }
                # A PUT is sent twice: a repeat must answer as documented too (200, not 201).
                repeats = 2 if operation.method.upper() == "PUT" else 1
                for _ in range(repeats):
                    response = await send(client, case, headers)
                    try:
                        case.validate_response(response, checks=_checks(case, mode))
                    except FailureGroup as group:
                        failures.append(f"{operation.label} [{mode.value}]: {group}")
    return failures


@pytest.mark.parametrize("service", SERVICES)
async def test_every_operation_answers_as_documented(
    service: str, app: FastAPI, client: httpx.AsyncClient, fuzz_world: FuzzWorld
) -> None:
    operations = [op for op in _operations(service) if op.label not in KNOWN_GAPS]
    assert operations, f"no operations in schemas/openapi/{service}.json"
    failures = await _fuzz(client, operations, fuzz_world, member_routes(app))
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
        label: str, app: FastAPI, client: httpx.AsyncClient, fuzz_world: FuzzWorld
    ) -> None:
        service = label.split(" ", 1)[1].split("/")[1]
        operations = [op for op in _operations(service) if op.label == label]
        assert len(operations) == 1, label
        failures = await _fuzz(client, operations, fuzz_world, member_routes(app))
        assert failures == [], "\n\n".join(failures)


def test_every_service_has_a_document_and_member_routes_are_found(app: FastAPI) -> None:
    assert SERVICES == ["community", "marketing", "members", "recommender", "rewards", "webhooks"]
    found = member_routes(app)
    # A few routes known to be members' own, so the auth split cannot silently find none.
    assert {
        ("GET", "/members/v1/me"),
        ("GET", "/rewards/v1/me/ledger"),
        ("POST", "/community/v1/posts"),
    } <= found
    assert ("GET", "/members/v1/members") not in found


def test_the_checks_catch_a_server_error_and_an_undocumented_answer() -> None:
    """The sweep's checks are not vacuous: a 500, an undocumented status and a body that breaks
    the documented schema each fail."""
    operation = _schema("members")["/members/v1/members/{member_id}"]["GET"]
    case = operation.Case(path_parameters={"member_id": "01a204bd-e234-735f-b56b-96e544f98ec6"})
    request = httpx.Request("GET", "http://kinfolk.test/members/v1/members/x")
    answers = [
        httpx.Response(500, json={"error": "InternalError", "detail": "x"}, request=request),
        httpx.Response(418, json={"error": "Teapot", "detail": "x"}, request=request),
        httpx.Response(200, json={"id": 5}, request=request),
        httpx.Response(404, json={"message": "not our error shape"}, request=request),
    ]
    for answer in answers:
        answer.elapsed = timedelta(0)  # what httpx's client sets on the answers it returns
        with pytest.raises(FailureGroup):
            case.validate_response(answer, checks=CHECKS[GenerationMode.POSITIVE])
