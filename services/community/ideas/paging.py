"""Keyset pages of the ideas board, in either of its orders.

The kernel's cursor names one id, which is enough for "newest" (ids are uuid7). "Most voted" orders
by (vote_count DESC, id DESC), so its cursor carries both: the next page starts strictly after that
pair, whatever was inserted meanwhile. Votes move ideas between pages while someone scrolls (as on
any ranked board); an idea can then be seen twice or be skipped, never break the walk.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query

from services.kernel.pagination import DEFAULT_LIMIT, MAX_LIMIT, InvalidCursor

_VOTES_BYTES = 8


@dataclass(frozen=True, slots=True)
class BoardPosition:
    """Where the previous page ended: its last idea's votes and id."""

    vote_count: int
    idea_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class BoardPage:
    limit: int
    after: BoardPosition | None


def encode_position(position: BoardPosition) -> str:
    raw = position.vote_count.to_bytes(_VOTES_BYTES, "big", signed=True) + position.idea_id.bytes
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_position(cursor: str) -> BoardPosition:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidCursor("The `after` cursor is not one this API returned.") from exc
    if len(raw) != _VOTES_BYTES + 16:
        raise InvalidCursor("The `after` cursor is not one this API returned.")
    votes = int.from_bytes(raw[:_VOTES_BYTES], "big", signed=True)
    return BoardPosition(votes, uuid.UUID(bytes=raw[_VOTES_BYTES:]))


async def board_page(
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description="How many ideas to return.")
    ] = DEFAULT_LIMIT,
    after: Annotated[
        str | None,
        Query(max_length=64, description="The `next` cursor of the previous page (same sort)."),
    ] = None,
    before: Annotated[
        str | None,
        Query(max_length=64, description="Not offered: the board pages forwards only."),
    ] = None,
    from_end: Annotated[bool, Query(description="Not offered, as `before`.")] = False,
) -> BoardPage:
    if before is not None or from_end:
        # Other lists walk back with `before`; saying no beats silently serving the first page.
        raise InvalidCursor("The ideas board pages forwards only: use `after`, not `before`.")
    return BoardPage(limit=limit, after=decode_position(after) if after is not None else None)


BoardPageDep = Annotated[BoardPage, Depends(board_page)]
