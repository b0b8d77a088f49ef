"""How resolvers call the services, and say the services' refusals in GraphQL terms.

Reads go through the request's DataLoaders. A refusal met while reading (a 4xx) is the caller's to
act on, so it is not masked as an unexpected error: it becomes a typed error whose code follows
the HTTP status, with the service's own code in `extensions.serviceCode`.

A mutation checks its global ids before it calls anything (`input_id`), then `send`s; either
raises `Rejected` with the `userErrors` to answer, pointing at the input field at fault. The
services refuse before they write, so a mutation that answers userErrors has changed nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from strawberry.utils.str_converters import to_camel_case

from services.gateway.connections import Connection, PageArgs, connection_from_page
from services.gateway.context import GatewayContext
from services.gateway.errors import BadUserInput, GatewayError, UserError
from services.gateway.ids import decode_global_id
from services.gateway.upstream import Upstream, UpstreamRefusal

T = TypeVar("T")

# --- Reads ------------------------------------------------------------------------------------

_QUERY_CODES = {
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    409: "CONFLICT",
}


def query_error(refusal: UpstreamRefusal) -> GatewayError:
    """A refusal met while reading, as a typed error."""
    code = _QUERY_CODES.get(refusal.status, "BAD_USER_INPUT")
    return GatewayError(refusal.message, code=code, serviceCode=refusal.code)


async def read(
    context: GatewayContext, service: str, path: str, params: Mapping[str, Any] | None = None
) -> Any:
    """A GET through the request's loader (identical GETs share a call)."""
    try:
        return await context.loaders.fetch(service, path, dict(params or {}))
    except UpstreamRefusal as refusal:
        raise query_error(refusal) from refusal


async def read_or_none(
    context: GatewayContext, service: str, path: str, params: Mapping[str, Any] | None = None
) -> Any:
    """`read`, or None when the service answers 404 (absent, or not the caller's to see)."""
    try:
        return await context.loaders.fetch(service, path, dict(params or {}))
    except UpstreamRefusal as refusal:
        if refusal.status == 404:
            return None
        raise query_error(refusal) from refusal


async def load(context: GatewayContext, kind: str, raw_id: uuid.UUID) -> dict[str, Any] | None:
    """One object through its kind's batch read; None when the caller may not see it."""
    try:
        return await context.loaders.by_id(kind).load(raw_id)
    except UpstreamRefusal as refusal:
        raise query_error(refusal) from refusal


async def read_connection(
    context: GatewayContext,
    service: str,
    path: str,
    args: PageArgs,
    to_node: Callable[[dict[str, Any]], T],
    *,
    params: Mapping[str, Any] | None = None,
    cursor: Callable[[dict[str, Any]], str] | None = None,
    prime: str | None = None,
) -> Connection[T]:
    """A connection over one of the service's pages. `prime` names the by-id loader the page's
    items also fill, when they are what that kind's batch read answers: an object of the page
    that another field names again then costs no second call."""
    page = await read(context, service, path, {**args.params(), **(params or {})})
    if prime is not None:
        for item in page.get("items", []):
            context.loaders.prime(prime, item)
    return connection_from_page(page, to_node, args, cursor=cursor)


# --- Mutations --------------------------------------------------------------------------------


class Rejected(Exception):
    """A mutation's input was refused, before calling or by the service: its `userErrors`."""

    def __init__(self, *errors: UserError) -> None:
        super().__init__(errors[0].message if errors else "rejected")
        self.errors = list(errors)


def _invalid_id(field: str, message: str) -> Rejected:
    return Rejected(UserError(field=["input", field], code="INVALID_ID", message=message))


def input_id(value: str, field: str, *expected: str) -> tuple[str, uuid.UUID]:
    """(type, uuid) of the global id given in `input.<field>`, which must name one of
    `expected`; a forged or mistyped id is `Rejected` (INVALID_ID) and nothing is sent."""
    try:
        type_name, raw = decode_global_id(value)
    except BadUserInput as error:
        raise _invalid_id(field, error.message) from None
    if type_name not in expected:
        wanted = " or ".join(expected)
        raise _invalid_id(field, f"{value!r} is the id of a {type_name}, not of a {wanted}.")
    return type_name, raw


def input_uuid(value: str, field: str, expected: str) -> uuid.UUID:
    return input_id(value, field, expected)[1]


def refused(
    refusal: UpstreamRefusal,
    *,
    fields: Mapping[str, str] | None = None,
    codes: Mapping[str, str] | None = None,
    subject: str | None = None,
) -> UserError:
    """A service's refusal of a mutation's call as a userError, pointing at the input field at
    fault: for a validation error, the field it names (camel-cased, or renamed by `fields`);
    otherwise the field `codes` gives for the refusal's code, or for a 404 the input field that
    named what was not found (`subject`); else no one field."""
    return UserError(
        field=_input_path(refusal, fields or {}, codes or {}, subject),
        code=refusal.code,
        message=refusal.message,
    )


def _input_path(
    refusal: UpstreamRefusal,
    fields: Mapping[str, str],
    codes: Mapping[str, str],
    subject: str | None,
) -> list[str] | None:
    location = refusal.location
    if location is not None:
        if location[:1] == ["header"]:
            # The only header a mutation's input carries is the idempotency key.
            return ["input", "idempotencyKey"]
        return ["input", *(fields.get(part) or to_camel_case(part) for part in refusal.field or ())]
    if refusal.code in codes:
        return ["input", codes[refusal.code]]
    if refusal.status == 404 and subject is not None:
        return ["input", subject]
    return None


async def send(
    context: GatewayContext,
    service: str,
    method: str,
    path: str,
    *,
    json: Any = None,
    idempotency_key: str | None = None,
    fields: Mapping[str, str] | None = None,
    codes: Mapping[str, str] | None = None,
    subject: str | None = None,
) -> Any:
    """A write on the member's behalf; a refusal raises `Rejected` (see `refused`)."""
    if idempotency_key is not None and not _is_header_value(idempotency_key):
        # The key travels to the service as the Idempotency-Key header, which holds printable
        # ASCII only (and at most 255 characters, as the services' own REST APIs ask).
        raise Rejected(
            UserError(
                field=["input", "idempotencyKey"],
                code="ValidationError",
                message="An idempotency key is 1 to 255 printable ASCII characters.",
            )
        )
    upstream: Upstream = getattr(context.upstreams, service)
    try:
        return await upstream.request(method, path, json=json, idempotency_key=idempotency_key)
    except UpstreamRefusal as refusal:
        raise Rejected(refused(refusal, fields=fields, codes=codes, subject=subject)) from None


def _is_header_value(value: str) -> bool:
    return 1 <= len(value) <= 255 and value.isascii() and value.isprintable()
