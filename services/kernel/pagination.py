"""Keyset pagination on a time-ordered UUID column.

Pages are walked in ascending id order (ids are UUIDv7, so that is creation order) with an opaque
`after` cursor naming the last id of the previous page, or backwards with `before` naming the
first id of the page after (a page's `previous`). Unlike offsets, a page costs the same wherever
it is and rows inserted meanwhile never shift or repeat items.

An endpoint takes `PageDep`, the repository passes its query through `keyset()`, and the endpoint
answers with `Page.of(rows, page, ...)`.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Generic, TypeVar, TypeVarTuple

from fastapi import Depends, Query
from pydantic import BaseModel
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute

from services.kernel.errors import BadRequest

DEFAULT_LIMIT = 50
MAX_LIMIT = 100

T = TypeVar("T")
R = TypeVar("R")
Ts = TypeVarTuple("Ts")


class InvalidCursor(BadRequest):
    """The `after` cursor is not one this API returned."""

    code = "InvalidCursor"


def encode_cursor(last_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(last_id.bytes).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> uuid.UUID:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return uuid.UUID(bytes=raw)
    except (binascii.Error, ValueError) as exc:
        raise InvalidCursor("The cursor is not one this API returned.") from exc


@dataclass(frozen=True, slots=True)
class PageRequest:
    limit: int
    after: uuid.UUID | None
    # Walking backwards: the items just before this one, in the list's order...
    before: uuid.UUID | None = None
    # ... or, with no `before`, the list's last items.
    from_end: bool = False

    @property
    def backwards(self) -> bool:
        return self.before is not None or self.from_end

    def forwards_only(self) -> PageRequest:
        """For lists ordered by something other than their id: they cannot walk back by it."""
        if self.backwards:
            raise InvalidCursor("This list pages forwards only: use `after`, not `before`.")
        return self


async def page_request(
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description="How many items to return.")
    ] = DEFAULT_LIMIT,
    after: Annotated[
        str | None,
        Query(max_length=64, description="The `next` cursor of the previous page."),
    ] = None,
    before: Annotated[
        str | None,
        Query(
            max_length=64,
            description="The `previous` cursor of the page after: walks the list backwards.",
        ),
    ] = None,
    from_end: Annotated[
        bool, Query(description="With no `before`: the last `limit` items of the list.")
    ] = False,
) -> PageRequest:
    if after is not None and (before is not None or from_end):
        raise InvalidCursor("Walk forwards (`after`) or backwards (`before`, `from_end`).")
    return PageRequest(
        limit=limit,
        after=decode_cursor(after) if after is not None else None,
        before=decode_cursor(before) if before is not None else None,
        from_end=from_end and before is None,
    )


PageDep = Annotated[PageRequest, Depends(page_request)]


def keyset(
    statement: Select[*Ts],
    column: InstrumentedAttribute[uuid.UUID],
    page: PageRequest,
    *,
    newest_first: bool = False,
) -> Select[*Ts]:
    """The page's slice of `statement`, plus one row to tell whether another page follows.

    Ids are UUIDv7, so ordering by id is ordering by creation; `newest_first` walks it backwards.
    A `before` page is read in the opposite order (nearest first) and put back by `Page.of`.
    """
    descending = newest_first != page.backwards
    if page.after is not None:
        statement = statement.where(column < page.after if newest_first else column > page.after)
    if page.before is not None:
        statement = statement.where(column > page.before if newest_first else column < page.before)
    order = column.desc() if descending else column
    return statement.order_by(order).limit(page.limit + 1)


class Page(BaseModel, Generic[T]):
    items: list[T]
    next: str | None = None
    # Set on a page read with `before` when more items come before it.
    previous: str | None = None

    @classmethod
    def of(
        cls,
        rows: Sequence[R],
        page: PageRequest,
        *,
        key: Callable[[R], uuid.UUID],
        item: Callable[[R], T],
    ) -> Page[T]:
        """Builds the page from `keyset()`'s rows: the extra row, if any, means there is a next
        (or, walking backwards, a previous) page."""
        shown = list(rows[: page.limit])
        more = len(rows) > page.limit
        if page.backwards:
            shown.reverse()
            return cls(
                items=[item(row) for row in shown],
                # A page ending just before `before` has a next page: the one `before` starts.
                next=encode_cursor(key(shown[-1])) if shown and page.before is not None else None,
                previous=encode_cursor(key(shown[0])) if more else None,
            )
        return cls(
            items=[item(row) for row in shown],
            next=encode_cursor(key(shown[-1])) if more else None,
        )


# --- Batch reads by id ------------------------------------------------------------------------
# The gateway's DataLoaders read every object of a kind that one GraphQL answer needs in one call
# (`GET ...?ids=a&ids=b`); the cap keeps one call's query bounded (more is a 422).

MAX_IDS = 100

Ids = Annotated[
    list[uuid.UUID],
    Query(
        min_length=1,
        max_length=MAX_IDS,
        description=f"The ids to read, 1 to {MAX_IDS} (repeat the parameter: `ids=a&ids=b`). "
        "Ids that do not exist or that the caller may not see are left out.",
    ),
]

# On a list route that also reads by id: absent, the route lists as usual.
OptionalIds = Annotated[
    list[uuid.UUID] | None,
    Query(
        max_length=MAX_IDS,
        description=f"Read exactly these instead of listing (at most {MAX_IDS}; repeat the "
        "parameter), in one page with no `next`; paging and filters do not apply. Ids that do "
        "not exist or that the caller may not see are left out.",
    ),
]
