"""Opaque global ids (Relay): base64url of "<Type>:<uuid>", and the `Node` interface.

The apps treat ids as opaque strings; `node(id:)` turns one back into its object. Each type that
implements `Node` registers how to fetch it by uuid (`register_node`), through its DataLoader, so
`node` costs the same as any other field and is checked by the owning service like any read.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import strawberry
from strawberry.types import Info

from services.gateway.errors import BadUserInput

if TYPE_CHECKING:
    from services.gateway.context import GatewayContext


def encode_global_id(type_name: str, raw_id: uuid.UUID | str) -> strawberry.ID:
    text = f"{type_name}:{raw_id}".encode()
    return strawberry.ID(base64.urlsafe_b64encode(text).rstrip(b"=").decode())


def decode_global_id(global_id: str, *, expected: str | None = None) -> tuple[str, uuid.UUID]:
    """(type name, uuid) of an id this API issued; `BadUserInput` (INVALID_ID) otherwise."""
    try:
        raw = base64.urlsafe_b64decode(global_id + "=" * (-len(global_id) % 4)).decode()
        type_name, _, value = raw.partition(":")
        parsed = uuid.UUID(value)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise BadUserInput(
            f"{global_id!r} is not an id this API issued; use the `id` of an object it returned.",
            code="INVALID_ID",
        ) from exc
    if type_name not in _RESOLVERS:
        raise BadUserInput(
            f"{global_id!r} is not an id this API issued; use the `id` of an object it returned.",
            code="INVALID_ID",
        )
    if expected is not None and type_name != expected:
        raise BadUserInput(
            f"{global_id!r} is the id of a {type_name}, not of a {expected}.", code="INVALID_ID"
        )
    return type_name, parsed


NodeResolver = Callable[["GatewayContext", uuid.UUID], Awaitable[Any]]
_RESOLVERS: dict[str, NodeResolver] = {}


def register_node(type_name: str, resolver: NodeResolver) -> None:
    """How `node(id:)` fetches a `type_name`: returns the object, or None when not visible."""
    _RESOLVERS[type_name] = resolver


@strawberry.interface(description="An object with an opaque global id, fetchable with `node`.")
class Node:
    id: strawberry.ID


async def resolve_node(info: Info[Any, Any], global_id: str) -> Any:
    type_name, raw = decode_global_id(global_id)
    return await _RESOLVERS[type_name](info.context, raw)


def node_field() -> Any:
    async def node(info: Info[Any, Any], id: strawberry.ID) -> Node | None:
        return await resolve_node(info, id)  # type: ignore[no-any-return]

    return strawberry.field(
        resolver=node,
        description="The object with this global id, or null if it does not exist or is not "
        "yours to see.",
    )
