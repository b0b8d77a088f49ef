"""Dead letters: reading them, retrying them once their cause is fixed, and deleting those that
name erased members.

A dead letter (`<stream>:dead`, parked by `consumer.py`) is an event one consumer group failed
on: it keeps the event whole, the group, the error and the traceback. Other groups of the same
stream handled the event as usual, so a retry is not a replay: `retry_dead_letters` hands the
event to the one group that failed on it, through the same inbox transaction as the consumer
(`consumer.apply_event`), so it takes effect once however often it is retried. A letter whose
event now takes effect (or had already) is deleted; one that fails again stays as it was.

A dead letter also keeps personal data until a person deletes it. Erasure must not leave those
copies behind, yet an event about a member can be parked after the member was erased (its
retries outlive the erasure), so one pass at erasure time is not enough: `forget_dead_letters`
runs on a schedule and deletes every letter that names an id the caller says is an erased
member's. A letter names a member when their id appears anywhere in it: the event's subject or
payload, the error, the traceback. Ids are UUIDs, so a match is never a coincidence.
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence, Set
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from services.kernel.consumer import (
    DEAD_LETTER_SUFFIX,
    STREAM_PREFIX,
    Applied,
    ConsumerSpec,
    apply_event,
    as_bytes,
    as_text,
    decoded_fields,
    describe_error,
)
from services.kernel.db import Database
from services.kernel.events import parse_event

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
    return sorted(as_bytes(key) for key in found)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One parked event, as a person reads it."""

    ref: str  # "<service>:<entry id>": names the letter on the command line
    stream: str  # the dead-letter stream
    letter_id: str  # the entry's id in that stream
    group: str  # the consumer group that failed on the event
    event_id: str
    event_type: str
    deliveries: int
    dead_at: str
    error: str
    payload: str  # the event as published


def letter_ref(stream: str, letter_id: str) -> str:
    service = stream.removeprefix(STREAM_PREFIX).removesuffix(DEAD_LETTER_SUFFIX)
    return f"{service}:{letter_id}"


def parse_letter_ref(ref: str) -> tuple[str, str]:
    """The dead-letter stream and entry id a reference names; ValueError if it names none."""
    service, _, letter_id = ref.rpartition(":")
    if not service or not re.fullmatch(r"\d+-\d+", letter_id):
        raise ValueError(
            f"{ref!r} is not a dead letter: write <service>:<entry id>, as "
            "`kinfolk dead-letters list` prints them (e.g. rewards:1763900000000-0)"
        )
    return f"{STREAM_PREFIX}{service}{DEAD_LETTER_SUFFIX}", letter_id


def _letter(stream: bytes | str, entry_id: bytes | str, raw: dict[Any, Any]) -> DeadLetter:
    fields = decoded_fields(raw)
    stream_name, letter_id = as_text(stream), as_text(entry_id)
    try:
        deliveries = int(fields.get("deliveries", "0"))
    except ValueError:
        deliveries = 0
    return DeadLetter(
        ref=letter_ref(stream_name, letter_id),
        stream=stream_name,
        letter_id=letter_id,
        group=fields.get("group", ""),
        event_id=fields.get("event_id", ""),
        event_type=fields.get("type", ""),
        deliveries=deliveries,
        dead_at=fields.get("dead_at", ""),
        error=fields.get("error", ""),
        payload=fields.get("payload", ""),
    )


async def _pages(redis: Redis, stream: bytes | str) -> AsyncIterator[list[Any]]:
    start = b"-"
    while True:
        page = await redis.xrange(stream, min=start, max=b"+", count=PAGE)
        if not page:
            return
        yield page
        if len(page) < PAGE:
            return
        start = b"(" + as_bytes(page[-1][0])


async def dead_letters(redis: Redis, *, group: str | None = None) -> list[DeadLetter]:
    """Every parked event (of one group when given), stream by stream, oldest first."""
    found: list[DeadLetter] = []
    for stream in await dead_letter_streams(redis):
        async for page in _pages(redis, stream):
            for entry_id, raw in page:
                letter = _letter(stream, entry_id, raw)
                if group is None or letter.group == group:
                    found.append(letter)
    return found


async def dead_letters_named(redis: Redis, refs: Sequence[str]) -> list[DeadLetter]:
    """The letters `refs` name, in that order; LookupError naming those that do not exist (and
    ValueError for a reference that is not one), before anything is retried."""
    named = [(ref, *parse_letter_ref(ref)) for ref in refs]
    found: list[DeadLetter] = []
    missing: list[str] = []
    for ref, stream, letter_id in named:
        page = await redis.xrange(stream, min=letter_id, max=letter_id)
        if page:
            found.append(_letter(stream, *page[0]))
        else:
            missing.append(ref)
    if missing:
        raise LookupError(
            f"no dead letter {', '.join(missing)}: it was retried or deleted already, or the "
            "reference is mistyped (`kinfolk dead-letters list` prints them)"
        )
    return found


class Retried(enum.Enum):
    HANDLED = "handled"  # the event took effect now; the letter is deleted
    ALREADY = "already handled"  # the group's inbox had it (an earlier retry); letter deleted
    # A later event about the same subject took effect, and the group keeps only the latest
    # state (`ConsumerSpec.latest_wins`): applied now it would undo that one; letter deleted.
    SUPERSEDED = "superseded by a later event"
    FAILED = "failed again"  # the handler (or parsing) failed; the letter stays
    NO_GROUP = "no such group"  # no service here declares the letter's group; the letter stays
    ERASED = "about an erased member: deleted"  # never retried (see retry_dead_letters)


@dataclass(frozen=True, slots=True)
class RetryResult:
    letter: DeadLetter
    outcome: Retried
    error: str = ""  # why it failed again


_RETRIED = {
    Applied.NOW: Retried.HANDLED,
    Applied.ALREADY: Retried.ALREADY,
    Applied.SUPERSEDED: Retried.SUPERSEDED,
}


async def retry_dead_letters(
    database: Database,
    redis: Redis,
    specs: Sequence[ConsumerSpec],
    letters: Sequence[DeadLetter],
    erased_among: ErasedAmong,
) -> list[RetryResult]:
    """Hands each letter's event to the group that failed on it, in order, one transaction each
    (the consumer's inbox transaction); deletes the letters whose event took effect.

    A letter whose event names an erased member is deleted, not retried: its event was written
    before the erasure, and applied now it would put the member's data back into a projection
    the erasure emptied (an old `member.updated`, say). `forget_dead_letters` would delete it
    within the hour anyway.
    """
    by_name = {spec.name: spec for spec in specs}
    named = {letter.ref: _ids_in({"payload": letter.payload}) for letter in letters}
    erased = await erased_among(set().union(*named.values())) if letters else set()
    results: list[RetryResult] = []
    for letter in letters:
        if named[letter.ref] & erased:
            await redis.xdel(letter.stream, letter.letter_id)
            results.append(RetryResult(letter, Retried.ERASED))
            continue
        spec = by_name.get(letter.group)
        if spec is None:
            results.append(RetryResult(letter, Retried.NO_GROUP))
            continue
        try:
            applied = await apply_event(database, spec, parse_event(letter.payload))
        except Exception as exc:
            results.append(RetryResult(letter, Retried.FAILED, describe_error(exc)[0]))
            continue
        await redis.xdel(letter.stream, letter.letter_id)
        results.append(RetryResult(letter, _RETRIED[applied]))
    return results


async def forget_dead_letters(redis: Redis, erased_among: ErasedAmong) -> int:
    """Deletes the dead letters that name an erased member; returns how many."""
    deleted = 0
    for stream in await dead_letter_streams(redis):
        async for page in _pages(redis, stream):
            named = {entry_id: _ids_in(fields) for entry_id, fields in page}
            erased = await erased_among(set().union(*named.values()))
            doomed = [entry_id for entry_id, ids in named.items() if ids & erased]
            if doomed:
                deleted += await redis.xdel(stream, *doomed)
    return deleted


def _ids_in(fields: dict[Any, Any]) -> set[uuid.UUID]:
    return {
        uuid.UUID(match.decode())
        for value in fields.values()
        for match in _UUID.findall(as_bytes(value).lower())
    }
