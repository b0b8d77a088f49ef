"""Relay connections over the services' keyset pages.

The services page lists by a time-ordered id with an opaque `after` cursor (see
`services.kernel.pagination`); a connection passes `first`/`after` straight through, so a page
costs the same wherever it is and nothing shifts while a member scrolls. An edge's cursor is the
service's cursor for that item, so any edge can be resumed from.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import strawberry

from services.gateway.errors import BadUserInput
from services.kernel.pagination import MAX_LIMIT, encode_cursor

T = TypeVar("T")


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo

    @strawberry.field(description="The nodes of `edges`, for clients that need no cursors.")
    def nodes(self) -> list[T]:
        return [edge.node for edge in self.edges]


@dataclass(frozen=True, slots=True)
class PageArgs:
    first: int
    after: str | None

    def params(self) -> dict[str, Any]:
        return {"limit": self.first, "after": self.after}


def page_args(first: int | None, after: str | None, last: int | None = None) -> PageArgs:
    """Checks Relay's arguments: `first` is required and at most 100."""
    if last is not None:
        raise BadUserInput(
            "Lists here are walked forwards: use `first` (and `after`), not `last`.",
            code="PAGINATION_DIRECTION",
        )
    if first is None:
        raise BadUserInput(
            f"Say how many items you want with `first` (1 to {MAX_LIMIT}).",
            code="PAGINATION_REQUIRED",
        )
    if not 1 <= first <= MAX_LIMIT:
        raise BadUserInput(
            f"`first` must be between 1 and {MAX_LIMIT}; ask for the next page with `after`.",
            code="PAGINATION_LIMIT",
        )
    if after is not None and len(after) > 64:
        raise BadUserInput("`after` is not a cursor this API returned.", code="INVALID_CURSOR")
    return PageArgs(first, after)


def keyed_by(field: str) -> Callable[[dict[str, Any]], str]:
    """Edge cursors of a list the service pages by another of the item's ids (`relation_id`)."""
    return lambda item: encode_cursor(uuid.UUID(str(item[field])))


def connection_from_page(
    page: dict[str, Any],
    to_node: Callable[[dict[str, Any]], T],
    args: PageArgs,
    *,
    cursor: Callable[[dict[str, Any]], str] | None = None,
) -> Connection[T]:
    """A connection from a service's `{"items", "next"}` page. An edge's cursor is the keyset
    cursor of its item's `id`, unless the service pages the list by something else: then
    `cursor` makes the service's cursor for an item."""
    cursor_of = cursor or keyed_by("id")
    items: list[dict[str, Any]] = page.get("items", [])
    edges = [Edge(cursor=cursor_of(item), node=to_node(item)) for item in items]
    next_cursor: str | None = page.get("next")
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=next_cursor is not None,
            has_previous_page=args.after is not None,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=next_cursor or (edges[-1].cursor if edges else None),
        ),
    )
