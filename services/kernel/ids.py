"""Identifiers: time-ordered UUIDs (version 7), so primary keys sort by creation."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta

import uuid_utils

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_TAIL_BITS = (1 << 62) - 1


# `uuid.UUID`'s slots, set through their descriptors: `UUID.__setattr__` refuses, and going
# around it by name (`object.__setattr__`) cost twice as much.
_new_uuid = object.__new__
_UUID = uuid.UUID
_set_int = uuid.UUID.__dict__["int"].__set__
_set_is_safe = uuid.UUID.__dict__["is_safe"].__set__
_UNKNOWN = uuid.SafeUUID.unknown
_uuid7 = uuid_utils.uuid7


def _uuid(value: int) -> uuid.UUID:
    """`uuid.UUID(int=value)` without its argument checks (a 128-bit value made here): ids are
    made for every row and event of a bulk load, and the checks were most of their cost."""
    made = _new_uuid(_UUID)
    _set_int(made, value)
    _set_is_safe(made, _UNKNOWN)
    return made


def new_id() -> uuid.UUID:
    return _uuid(_uuid7().int)


def id_at(moment: datetime, entropy: bytes | None = None) -> uuid.UUID:
    """A UUIDv7 for something that happened at `moment` (history loaded in bulk), so it sorts
    among the ids made live at that time: keyset pages and feeds ordered by id stay in time
    order. The 12 bits after the milliseconds hold the fraction of the millisecond (RFC 9562,
    method 3), so microseconds apart still sort. The last 62 bits are random, or taken from
    `entropy` (8 bytes or more: a hash of a producer's key) for an id a reload finds again."""
    micros = (moment - _EPOCH) // _MICROSECOND
    millis, fraction = divmod(micros, 1000)
    tail = entropy[:8] if entropy is not None else os.urandom(8)
    if len(tail) < 8:
        raise ValueError("entropy must have at least 8 bytes")
    value = (
        (millis << 80)
        | (0x7 << 76)  # version 7
        | ((fraction * 4096 // 1000) << 64)
        | (0b10 << 62)  # the RFC 4122 variant
        | (int.from_bytes(tail, "big") & _TAIL_BITS)
    )
    return _uuid(value)
