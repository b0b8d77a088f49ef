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
    count: int
    after: str | None = None
    # Set when walking backwards (`last`, `before`).
    backwards: bool = False
    before: str | None = None

    def params(self) -> dict[str, Any]:
        if self.backwards:
            if self.before is None:
                return {"limit": self.count, "from_end": True}
            return {"limit": self.count, "before": self.before}
        return {"limit": self.count, "after": self.after}


def page_args(
    first: int | None, after: str | None, last: int | None = None, before: str | None = None
) -> PageArgs:
    """Checks Relay's arguments: `first` (with `after`) or `last` (with `before`), at most 100."""
    if first is not None and last is not None:
        raise BadUserInput(
            "Ask for `first` items (walking forwards) or `last` items (backwards), not both.",
            code="PAGINATION_DIRECTION",
        )
    count = first if first is not None else last
    if count is None:
        raise BadUserInput(
            f"Say how many items you want with `first` or `last` (1 to {MAX_LIMIT}).",
            code="PAGINATION_REQUIRED",
        )
    if not 1 <= count <= MAX_LIMIT:
        name = "first" if first is not None else "last"
        raise BadUserInput(
            f"`{name}` must be between 1 and {MAX_LIMIT}; ask for more with a cursor.",
            code="PAGINATION_LIMIT",
        )
    if (first is not None and before is not None) or (last is not None and after is not None):
        raise BadUserInput(
            "`after` goes with `first`, `before` with `last`.", code="PAGINATION_DIRECTION"
        )
    for cursor in (after, before):
        if cursor is not None and len(cursor) > 64:
            raise BadUserInput("The cursor is not one this API returned.", code="INVALID_CURSOR")
    if last is not None:
        return PageArgs(count, backwards=True, before=before)
    return PageArgs(count, after=after)


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
    if args.backwards:
        # A page read before an item ends where that item's page starts: there is a next.
        has_next, has_previous = args.before is not None, page.get("previous") is not None
    else:
        has_next, has_previous = next_cursor is not None, args.after is not None
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=has_next,
            has_previous_page=has_previous,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=next_cursor or (edges[-1].cursor if edges else None),
        ),
    )
