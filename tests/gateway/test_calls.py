"""How a service's refusal reads in GraphQL: the input field a mutation's userError points at,
and the code of a query's typed error. The areas' tests cover these end to end; the cases here
are the ones no service answers on demand (a body field named `body`, a 401, a 409)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

from services.gateway.calls import query_error, refused
from services.gateway.errors import UpstreamUnavailable
from services.gateway.upstream import UpstreamPool, UpstreamRefusal
from services.kernel.clients import Peers
from services.kernel.settings import Settings


def validation(*location: str | int) -> UpstreamRefusal:
    detail = [{"loc": list(location), "msg": "Field required", "type": "missing"}]
    return UpstreamRefusal("community", 422, "ValidationError", detail)


@pytest.mark.parametrize(
    ("refusal", "options", "field"),
    [
        # Only the leading location goes: a body field called `body` is still a field.
        (validation("body", "body"), {"fields": {"body": "text"}}, ["input", "text"]),
        (validation("body", "body"), {}, ["input", "body"]),
        (validation("body", "media", 0, "alt_text"), {}, ["input", "media", "0", "altText"]),
        (validation("body"), {}, ["input"]),
        (validation("header", "Idempotency-Key"), {}, ["input", "idempotencyKey"]),
        (
            UpstreamRefusal("community", 409, "NotTheAuthor", "Not yours."),
            {"codes": {"NotTheAuthor": "postId"}, "subject": "postId"},
            ["input", "postId"],
        ),
        (
            UpstreamRefusal("rewards", 404, "PerkNotFound", "No such perk."),
            {"subject": "perkId"},
            ["input", "perkId"],
        ),
        (UpstreamRefusal("rewards", 409, "OutOfStock", "Gone."), {"subject": "perkId"}, None),
    ],
)
def test_a_refusal_points_at_the_input_field_at_fault(
    refusal: UpstreamRefusal, options: dict[str, Any], field: list[str] | None
) -> None:
    assert refused(refusal, **options).field == field


def test_a_refusal_says_the_services_message() -> None:
    window = {"message": "This prompt closed at 2026-01-01T00:00:00+00:00.", "ends_at": "..."}
    refusal = UpstreamRefusal("community", 409, "PromptClosed", window)
    error = refused(refusal)
    assert (error.code, error.message) == ("PromptClosed", window["message"])
    assert validation("body", "seats").message == "Field required"


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "BAD_USER_INPUT"),
        (401, "UNAUTHENTICATED"),
        (403, "FORBIDDEN"),
        (404, "NOT_FOUND"),
        (409, "CONFLICT"),
        (422, "BAD_USER_INPUT"),
    ],
)
def test_a_refused_read_is_a_typed_error_with_the_services_code(status: int, code: str) -> None:
    error = query_error(UpstreamRefusal("community", status, "Whatever", "Said so."))
    assert (error.message, error.extensions) == (
        "Said so.",
        {"code": code, "serviceCode": "Whatever"},
    )


async def test_a_service_neither_hosted_nor_configured_answers_unavailable_when_called() -> None:
    pool = UpstreamPool(Peers(Settings(), FastAPI(), hosted=frozenset({"members"})))
    upstreams = pool.for_member("Bearer token")
    with pytest.raises(UpstreamUnavailable, match="KINFOLK_REWARDS_URL is not set") as raised:
        await upstreams.rewards.get("/rewards/v1/me/summary")
    assert raised.value.extensions == {"code": "SERVICE_UNAVAILABLE"}
    assert upstreams.calls == 1
    await pool.aclose()
