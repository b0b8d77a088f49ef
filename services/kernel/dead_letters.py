"""Deleting the dead letters that name erased members.

A dead letter (`<stream>:dead`, parked by `consumer.py`) keeps its event whole, personal data
included, until a person deletes it. Erasure must not leave those copies behind, yet an event
about a member can be parked after the member was erased (its retries outlive the erasure), so
one pass at erasure time is not enough: `forget_dead_letters` runs on a schedule and deletes
every letter that names an id the caller says is an erased member's.

A letter names a member when their id appears anywhere in it: the event's subject or payload,
the error, the traceback. Ids are UUIDs, so a match is never a coincidence.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Set
from typing import Any

from redis.asyncio import Redis

from services.kernel.consumer import DEAD_LETTER_SUFFIX, STREAM_PREFIX

_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Letters read per XRANGE: dead-letter streams are small, but not bounded.
PAGE = 500

# Which of these ids are erased members'.
ErasedAmong = Callable[[Set[uuid.UUID]], Awaitable[Set[uuid.UUID]]]


async def dead_letter_streams(redis: Redis) -> list[bytes]:
    """Every dead-letter stream in Redis, whichever service parked it."""
    found = [
        key
        async for key in redis.scan_iter(
            match=f"{STREAM_PREFIX}*{DEAD_LETTER_SUFFIX}", count=1_000, _type="stream"
        )
    ]
    return sorted(key if isinstance(key, bytes) else key.encode() for key in found)


async def forget_dead_letters(redis: Redis, erased_among: ErasedAmong) -> int:
    """Deletes the dead letters that name an erased member; returns how many."""
    deleted = 0
    for stream in await dead_letter_streams(redis):
        start = b"-"
        while True:
            page = await redis.xrange(stream, min=start, max=b"+", count=PAGE)
            if not page:
                break
            named = {entry_id: _ids_in(fields) for entry_id, fields in page}
            erased = await erased_among(set().union(*named.values()))
            doomed = [entry_id for entry_id, ids in named.items() if ids & erased]
            if doomed:
                deleted += await redis.xdel(stream, *doomed)
            if len(page) < PAGE:
                break
            start = b"(" + _as_bytes(page[-1][0])
    return deleted


def _ids_in(fields: dict[Any, Any]) -> set[uuid.UUID]:
    return {
        uuid.UUID(match.decode())
        for value in fields.values()
        for match in _UUID.findall(_as_bytes(value).lower())
    }


def _as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()
