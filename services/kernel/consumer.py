"""Event consumers: Redis Streams consumer groups with an inbox, retries and a dead-letter stream.

A message takes effect exactly once per consumer group, although Redis delivers it at least once:

1. the handler runs in one `database.unit_of_work()` together with an insert of the event id into
   the consuming service's inbox (`ON CONFLICT DO NOTHING`); a redelivered or duplicated event
   finds its id there, skips the handler, and is simply acknowledged;
2. the message is XACKed only after that transaction commits. A crash in between leaves it
   pending; it is redelivered and deduplicated by step 1.

A handler that raises rolls back (inbox row included) and leaves the message pending. After
`consumer_retry_after_seconds` of idleness any consumer of the group claims it (XPENDING + XCLAIM,
which also counts deliveries) and tries again. On the `consumer_max_deliveries`-th failed delivery
the message is parked in `<stream>:dead` with the error and acknowledged, so one poison message
never blocks the group. Messages that cannot be parsed, or whose event type this process does not
know, are parked at once: retrying cannot fix them, but a deploy that knows the type can retry
them (`kinfolk dead-letters retry`, `dead_letters.py`).

First deliveries are taken a read at a time (up to `consumer_batch_size` messages) as a set: one
transaction inserts every event id into the inbox at once and hands only the new events to the
spec's `handle_many`, or, without one, to `handler` one event after the other in that same
transaction. A commit per read instead of per event is what lets consumers keep up with a bulk
load or a backlog; projections that turn thousands of events into one upsert give `handle_many`.
If that transaction fails, the same messages go one by one through `handler` as above, each in
its own transaction, so a poison message still fails alone, is retried and parked, and the rest
land.
"""

from __future__ import annotations

import asyncio
import enum
import traceback
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from sqlalchemy import Table, cast, func, select, true
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.caches import MISSING, BoundedCache
from services.kernel.clock import utcnow
from services.kernel.db import Database, unnest_rows
from services.kernel.events import Event, parse_event
from services.kernel.loops import Backoff, sleep_or_stop
from services.kernel.module import ServiceModule
from services.kernel.settings import Settings

log = structlog.get_logger(__name__)

EventHandler = Callable[[AsyncSession, Event], Awaitable[None]]
# Gets the events of a batch in stream order, only those the inbox had not seen; it must leave
# the same state as `handler` called on each of them in that order.
BatchHandler = Callable[[AsyncSession, Sequence[Event]], Awaitable[None]]

Message = tuple[bytes | str, Mapping[Any, Any] | None]

# Same naming as `ServiceModule.stream`; a spec names services, not streams, so a consumer does
# not import the producing service's module.
STREAM_PREFIX = "kinfolk:events:"
DEAD_LETTER_SUFFIX = ":dead"

# How long `run` blocks in XREADGROUP waiting for new messages: also the longest a stop waits.
# The Redis client's reply timeout adds this on (`runtime.redis_options`); a runner given a
# longer `block_ms` needs a client with a longer timeout.
BLOCK_MILLISECONDS = 1_000

_WANTED_TYPES = 1_024

# Keep the dead-letter text readable; the tail of a traceback is where the cause is.
MAX_TRACEBACK_CHARS = 8_000

MESSAGES = Counter(
    "kinfolk_consumer_messages_total",
    "Stream messages a consumer group dealt with, by outcome.",
    ["group", "outcome"],
)
CONSUMER_ERRORS = Counter(
    "kinfolk_consumer_errors_total",
    "Consumer passes that failed on a database or Redis error and were retried after a backoff.",
    ["group"],
)


def stream_for(service_name: str) -> str:
    return f"{STREAM_PREFIX}{service_name}"


def dead_letter_stream(stream: str) -> str:
    return f"{stream}{DEAD_LETTER_SUFFIX}"


def type_matches(pattern: str, event_type: str) -> bool:
    """`member.created` matches itself; `member.*` matches every `member.` type; `*` matches all."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


def check_pattern(pattern: str) -> None:
    body = pattern[:-2] if pattern.endswith(".*") else pattern
    if pattern != "*" and (not body or "*" in body):
        raise ValueError(f"event type pattern {pattern!r}: use an exact type, 'prefix.*' or '*'")


@dataclass(frozen=True)
class ConsumerSpec:
    """One consumer group: which services' streams it reads, what it wants and what it does."""

    name: str  # the consumer group, e.g. "rewards.member-events"; also the inbox's `consumer`
    services: Sequence[str]  # names of the services whose streams it reads
    handler: EventHandler  # runs inside the transaction that records the event in `inbox`
    inbox: Table  # the consuming service's inbox table
    event_types: frozenset[str] | None = None  # exact types or `prefix.*`; None wants everything
    handle_many: BatchHandler | None = None  # set-based `handler` for new messages, if any
    # The handler keeps each subject's latest state (a projection each event rewrites whole):
    # an older event applied after a newer one would undo it. The inbox then keeps each
    # event's subject and time, and a dead-letter retry of an event some later one about the
    # same subject has superseded is skipped (`dead_letters.retry_dead_letters`).
    latest_wins: bool = False
    # For a `latest_wins` group that keeps more than one state per subject, each rewritten
    # whole by its own kinds of event (a member's profile, and apart from it their tier): the
    # name of the state an event rewrites. Only events that rewrite the same state supersede
    # each other. None: one state per subject.
    state_of: Callable[[Event], str] | None = None
    # What `wants` answered for each type seen (it runs for every message of every group); the
    # types are the registry's few dozen, and anything past _WANTED_TYPES is not remembered.
    _wanted: dict[str, bool] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.services:
            raise ValueError(f"consumer {self.name!r} reads no service's stream")
        if self.state_of is not None and not self.latest_wins:
            raise ValueError(f"consumer {self.name!r}: state_of is for latest_wins groups")
        for pattern in self.event_types or ():
            check_pattern(pattern)

    @property
    def streams(self) -> list[str]:
        return [stream_for(name) for name in self.services]

    def wants(self, event_type: str) -> bool:
        wanted = self._wanted.get(event_type)
        if wanted is None:
            wanted = self.event_types is None or any(
                type_matches(p, event_type) for p in self.event_types
            )
            if len(self._wanted) < _WANTED_TYPES:
                self._wanted[event_type] = wanted
        return wanted

    async def handle_batch(self, session: AsyncSession, events: Sequence[Event]) -> None:
        """The new events of one read, in stream order, in one transaction."""
        if self.handle_many is not None:
            await self.handle_many(session, events)
            return
        for event in events:
            await self.handler(session, event)


def consumer_specs(services: Iterable[ServiceModule]) -> list[ConsumerSpec]:
    """Every consumer the given services declare."""
    return [spec for service in services for spec in service.consumers]


async def apply_new_events(
    database: Database, spec: ConsumerSpec, events: Sequence[Event]
) -> set[uuid.UUID]:
    """Record the events' ids in the group's inbox and hand the new ones to `handle_batch`, in one
    transaction; returns the ids that were new.

    An id seen twice is new once: the first event takes effect, the second is a duplicate, as
    when handled one by one. Ids are inserted in sorted order so two consumers inserting
    overlapping batches cannot deadlock.
    """
    inbox = spec.inbox
    by_id = {event.id: event for event in reversed(events)}  # the first of each id
    ids = sorted(by_id)
    async with database.unit_of_work() as session:
        columns = [inbox.c.consumer, inbox.c.event_id, inbox.c.subject_id, inbox.c.occurred_at]
        rows = [(spec.name, i, *_ordering(spec, by_id[i])) for i in ids]
        inserted = await session.scalars(
            insert(inbox)
            .from_select(columns, unnest_rows(columns, rows))
            .on_conflict_do_nothing()
            .returning(inbox.c.event_id)
        )
        new = set(inserted)
        first: dict[uuid.UUID, Event] = {}
        for event in events:
            if event.id in new:
                first.setdefault(event.id, event)
        stale = await _superseded_ids(session, spec, list(first.values()))
        if fresh := [event for event in first.values() if event.id not in stale]:
            await spec.handle_batch(session, fresh)
    return new


def _ordering(spec: ConsumerSpec, event: Event) -> tuple[uuid.UUID | None, datetime | None]:
    """What the inbox keeps of the event's place among its subject's events: the state it
    rewrites (the subject, or one of its states: `ConsumerSpec.state_of`) and when it happened."""
    if not spec.latest_wins or event.subject_id is None:
        return None, None
    if spec.state_of is None:
        return event.subject_id, event.occurred_at
    return uuid.uuid5(event.subject_id, spec.state_of(event)), event.occurred_at


async def _superseded_ids(
    session: AsyncSession, spec: ConsumerSpec, events: Sequence[Event]
) -> set[uuid.UUID]:
    """Of these events (just recorded in the inbox), those a later event about the same
    subject (the same state of it: `_ordering`), recorded before them, supersedes: an event
    redelivered after a newer one took effect (a retry of a failed message, a dead letter).
    Only for `latest_wins` groups, whose handler would otherwise put the older state back."""
    ordered = [(event, *_ordering(spec, event)) for event in events]
    subjects = sorted({subject for _, subject, _ in ordered if subject is not None})
    if not subjects:
        return set()
    inbox = spec.inbox
    # One index lookup per subject (ix_inbox_subject), whatever the planner's statistics say
    # of the inbox (a bulk load leaves them stale): each finds the subject's few rows.
    asked = select(func.unnest(cast(subjects, ARRAY(PG_UUID(as_uuid=True)))).label("id")).subquery()
    handled = (
        select(inbox.c.subject_id, inbox.c.event_id, inbox.c.occurred_at)
        .where(inbox.c.consumer == spec.name, inbox.c.subject_id == asked.c.id)
        .lateral()
    )
    rows = await session.execute(
        select(handled.c.subject_id, handled.c.event_id, handled.c.occurred_at).select_from(
            asked.join(handled, true())
        )
    )
    these = {event.id for event in events}
    latest: dict[uuid.UUID, datetime] = {}
    for subject, event_id, occurred_at in rows:
        if event_id not in these and occurred_at is not None:
            latest[subject] = max(occurred_at, latest.get(subject, occurred_at))
    return {
        event.id
        for event, subject, at in ordered
        if subject is not None and at is not None and subject in latest and at < latest[subject]
    }


class Applied(enum.Enum):
    """What `apply_event` did with an event."""

    NOW = "now"  # the handler ran and committed
    ALREADY = "already"  # the inbox held the id: the effect happened before
    # Recorded, not run: a later event about the same subject took effect, and the group keeps
    # only the latest state (`ConsumerSpec.latest_wins`).
    SUPERSEDED = "superseded"


async def apply_event(database: Database, spec: ConsumerSpec, event: Event) -> Applied:
    """Record the event in the group's inbox and run its handler, in one transaction.

    A concurrent delivery of the same event waits on the inbox row's unique index until the
    first commits, then sees the conflict, so the handler never runs twice even in parallel.
    """
    inbox = spec.inbox
    subject_id, occurred_at = _ordering(spec, event)
    async with database.unit_of_work() as session:
        inserted = (
            await session.execute(
                insert(inbox)
                .values(
                    consumer=spec.name,
                    event_id=event.id,
                    subject_id=subject_id,
                    occurred_at=occurred_at,
                )
                .on_conflict_do_nothing()
                .returning(inbox.c.event_id)
            )
        ).first()
        if inserted is None:
            return Applied.ALREADY
        if await _superseded_ids(session, spec, [event]):
            return Applied.SUPERSEDED
        await spec.handler(session, event)
    return Applied.NOW


class Outcome(enum.Enum):
    HANDLED = "handled"  # the handler ran and committed
    DUPLICATE = "duplicate"  # the inbox already had the event id: acknowledged, nothing run
    SKIPPED = "skipped"  # a type this group does not want: acknowledged, nothing run
    FAILED = "failed"  # the handler raised: left pending for a retry
    DEAD = "dead"  # parked in the dead-letter stream and acknowledged


def as_text(value: bytes | str) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


def as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def decoded_fields(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {as_text(key): as_text(value) for key, value in raw.items()}


def describe_error(exc: BaseException) -> tuple[str, str]:
    """The one-line error and the (truncated) traceback recorded with a dead letter."""
    summary = f"{type(exc).__name__}: {exc}"
    trace = "".join(traceback.format_exception(exc))
    return summary, trace[-MAX_TRACEBACK_CHARS:]


# How many parsed events a runner keeps for its other groups (their payloads are the keys).
PARSED_EVENTS_KEPT = 10_000


class ParsedEvents:
    """Events parsed from stream payloads, the `size` most recently used, by payload.

    Every group of a runner reads the same messages of a stream, at about the same time, and
    parsing (JSON and the event's model) is most of what a skipped or cheap handler costs: kept
    here, a message is parsed once for all its groups. Events are immutable, so sharing one is
    safe; the payload itself is the key, so a message id reused after a stream was recreated
    cannot return another event. A payload that does not parse raises every time.
    """

    def __init__(self, size: int = PARSED_EVENTS_KEPT) -> None:
        self._events: BoundedCache[str, Event] = BoundedCache(size)

    def parse(self, payload: str) -> Event:
        event = self._events.get(payload)
        if event is MISSING:
            event = parse_event(payload)
            self._events.put(payload, event)
        return event


class ConsumerRunner:
    """Runs consumer groups as one named consumer (unique per process, e.g. host and pid)."""

    def __init__(
        self,
        database: Database,
        redis: Redis,
        specs: Sequence[ConsumerSpec],
        settings: Settings,
        consumer_name: str,
        *,
        block_ms: int = BLOCK_MILLISECONDS,
    ) -> None:
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"consumer group names must be unique: {names}")
        self.database = database
        self.redis = redis
        self.specs = list(specs)
        self.settings = settings
        self.consumer_name = consumer_name
        self.block_ms = block_ms
        self._groups_ready: set[str] = set()
        self._parsed = ParsedEvents()

    @property
    def _retry_after_ms(self) -> int:
        return int(self.settings.consumer_retry_after_seconds * 1000)

    async def process_once(self) -> int:
        """One non-blocking pass over every group: retries first, then new messages.

        Returns how many messages were dealt with (handled, skipped, deduplicated, failed, parked).
        """
        total = 0
        for spec in self.specs:
            total += await self._process(spec, block_ms=None)
        return total

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set: a task per group, so a slow group never holds up another."""
        log.info(
            "consumer.started", consumer=self.consumer_name, groups=[s.name for s in self.specs]
        )
        if not self.specs:
            await stop.wait()
        await asyncio.gather(*(self._run_group(spec, stop) for spec in self.specs))
        log.info("consumer.stopped", consumer=self.consumer_name)

    async def _run_group(self, spec: ConsumerSpec, stop: asyncio.Event) -> None:
        backoff = Backoff()
        while not stop.is_set():
            try:
                await self._process(spec, block_ms=self.block_ms)
            except Exception:
                # Database or Redis trouble: whatever was not acknowledged stays pending and is
                # retried, so waiting and trying again loses nothing.
                CONSUMER_ERRORS.labels(group=spec.name).inc()
                self._groups_ready.discard(spec.name)
                delay = backoff.next_delay()
                log.exception("consumer.pass_failed", group=spec.name, retry_in_seconds=delay)
                await sleep_or_stop(stop, delay)
            else:
                backoff.reset()

    async def _process(self, spec: ConsumerSpec, block_ms: int | None) -> int:
        await self._ensure_groups(spec)
        count = 0
        try:
            count += await self._retry_pending(spec)
            entries = await self._read_new(spec, None if count else block_ms)
            for stream, messages in entries:
                count += await self._handle_batch(spec, as_text(stream), messages, {})
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # The stream and its groups were deleted under us: recreate them on the next pass.
            self._groups_ready.discard(spec.name)
        return count

    async def _ensure_groups(self, spec: ConsumerSpec) -> None:
        """Create the group on each stream (and the stream itself) if missing.

        Starting at "0" rather than "$" makes a new group see the events already in the stream,
        so a consumer deployed after its producer misses nothing that Redis still keeps.
        """
        if spec.name in self._groups_ready:
            return
        for stream in spec.streams:
            try:
                await self.redis.xgroup_create(stream, spec.name, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        self._groups_ready.add(spec.name)

    async def _read_new(self, spec: ConsumerSpec, block_ms: int | None) -> list[Any]:
        entries = await self.redis.xreadgroup(
            spec.name,
            self.consumer_name,
            dict.fromkeys(spec.streams, ">"),
            count=self.settings.consumer_batch_size,
            block=block_ms,
        )
        return list(entries or [])

    async def _retry_pending(self, spec: ConsumerSpec) -> int:
        """Claim messages idle past the retry delay (failed, or their consumer died) and retry them.

        XCLAIM with the same minimum idle time is atomic, so when several consumers race for a
        message exactly one gets it; it also counts the delivery, which XPENDING reported before.
        """
        count = 0
        for stream in spec.streams:
            pending = await self.redis.xpending_range(
                stream,
                spec.name,
                min="-",
                max="+",
                count=self.settings.consumer_batch_size,
                idle=self._retry_after_ms,
            )
            if not pending:
                continue
            deliveries = {p["message_id"]: int(p["times_delivered"]) + 1 for p in pending}
            claimed = await self.redis.xclaim(
                stream,
                spec.name,
                self.consumer_name,
                min_idle_time=self._retry_after_ms,
                message_ids=list(deliveries),
            )
            # Entries whose message was trimmed away come back empty (Redis 6.2): nothing to retry.
            messages = [(mid, fields) for mid, fields in claimed if mid is not None]
            count += await self._handle_batch(spec, stream, messages, deliveries)
        return count

    async def _handle_batch(
        self,
        spec: ConsumerSpec,
        stream: str,
        messages: Sequence[Message],
        deliveries: Mapping[bytes | str, int],
    ) -> int:
        """Handle one stream's messages in stream order, then acknowledge those that are done.

        One XACK for the batch: if the process dies before it, the committed messages come back
        and the inbox turns them into no-ops. Retries (`deliveries`) always go one by one: they
        are few, and each needs its own delivery count and dead letter.
        """
        done: list[bytes | str] = []
        one_by_one = messages
        if not deliveries:
            one_by_one = await self._handle_many(spec, stream, messages, done)
        for message_id, raw in one_by_one:
            if raw is None:  # deleted from the stream while pending: nothing left to do
                done.append(message_id)
                continue
            delivery = deliveries.get(message_id, 1)
            outcome = await self._handle(spec, stream, message_id, decoded_fields(raw), delivery)
            MESSAGES.labels(group=spec.name, outcome=outcome.value).inc()
            if outcome in (Outcome.HANDLED, Outcome.DUPLICATE, Outcome.SKIPPED):
                done.append(message_id)
        if done:
            await self.redis.xack(stream, spec.name, *done)
        return len(messages)

    async def _handle_many(
        self,
        spec: ConsumerSpec,
        stream: str,
        messages: Sequence[Message],
        done: list[bytes | str],
    ) -> list[Message]:
        """First deliveries as one transaction; returns the messages left for one-by-one handling.

        What needs no handler (gone, unwanted) is added to `done`. Messages that do not parse stay
        for `_handle`, which parks them. If the set-based transaction fails, every event of the
        batch stays: handled singly, the failing one fails alone and the others commit.
        """
        settled: set[bytes | str] = set()  # acknowledged here, whatever the transaction does
        batch: list[tuple[bytes | str, Event]] = []
        for message_id, raw in messages:
            fields = decoded_fields(raw) if raw is not None else {}
            declared_type = fields.get("type")
            if raw is None:  # deleted from the stream while pending
                settled.add(message_id)
                continue
            if declared_type is not None and not spec.wants(declared_type):
                MESSAGES.labels(group=spec.name, outcome=Outcome.SKIPPED.value).inc()
                settled.add(message_id)
                continue
            try:
                event: Event | None = self._parsed.parse(fields["payload"])
            except Exception:
                event = None  # left to `_handle`, which parks it with the error
            if event is None:
                continue
            if spec.wants(event.type):
                batch.append((message_id, event))
            else:
                MESSAGES.labels(group=spec.name, outcome=Outcome.SKIPPED.value).inc()
                settled.add(message_id)
        try:
            new = (
                await apply_new_events(self.database, spec, [event for _, event in batch])
                if batch
                else set()
            )
        except Exception as exc:
            log.warning(
                "consumer.batch_failed",
                group=spec.name,
                stream=stream,
                messages=len(batch),
                error=describe_error(exc)[0],
            )
        else:
            for message_id, event in batch:
                outcome = Outcome.HANDLED if event.id in new else Outcome.DUPLICATE
                new.discard(event.id)  # a second message of the same event is a duplicate
                MESSAGES.labels(group=spec.name, outcome=outcome.value).inc()
                settled.add(message_id)
        done.extend(mid for mid, _ in messages if mid in settled)
        return [message for message in messages if message[0] not in settled]

    async def _handle(
        self,
        spec: ConsumerSpec,
        stream: str,
        message_id: bytes | str,
        fields: dict[str, str],
        delivery: int,
    ) -> Outcome:
        # Filter on the envelope field first: a type this group ignores is never parsed, so an
        # unknown version of an unwanted type is not a dead letter here.
        declared_type = fields.get("type")
        if declared_type is not None and not spec.wants(declared_type):
            return Outcome.SKIPPED
        if delivery > self.settings.consumer_max_deliveries:
            # Delivered the maximum number of times without a recorded outcome: its consumer
            # stopped while handling it (killed, out of memory), perhaps because of it.
            error = f"delivered {delivery - 1} times without completing (consumer stopped?)"
            await self._dead_letter(spec, stream, message_id, fields, delivery - 1, error, "")
            return Outcome.DEAD
        try:
            event = self._parsed.parse(fields["payload"])
        except Exception as exc:
            # Not JSON, not a known type/version, or not valid for its model: a retry cannot help.
            error, trace = describe_error(exc)
            await self._dead_letter(spec, stream, message_id, fields, delivery, error, trace)
            return Outcome.DEAD
        if declared_type is None and not spec.wants(event.type):
            return Outcome.SKIPPED
        try:
            applied = await apply_event(self.database, spec, event)
        except Exception as exc:
            error, trace = describe_error(exc)
            if delivery >= self.settings.consumer_max_deliveries:
                await self._dead_letter(spec, stream, message_id, fields, delivery, error, trace)
                return Outcome.DEAD
            log.warning(
                "consumer.handler_failed",
                group=spec.name,
                stream=stream,
                message_id=as_text(message_id),
                event_id=str(event.id),
                event_type=event.type,
                delivery=delivery,
                error=error,
            )
            return Outcome.FAILED
        return Outcome.HANDLED if applied is Applied.NOW else Outcome.DUPLICATE

    async def _dead_letter(
        self,
        spec: ConsumerSpec,
        stream: str,
        message_id: bytes | str,
        fields: dict[str, str],
        deliveries: int,
        error: str,
        trace: str,
    ) -> None:
        """Park the message in `<stream>:dead` and acknowledge it, atomically (MULTI/EXEC).

        The dead letter keeps the original fields and names the group, so a retry
        (`dead_letters.retry_dead_letters`) hands the event to this group alone. The dead-letter
        stream is not capped: parked messages wait for a person.
        """
        letter = {
            **fields,
            "group": spec.name,
            "stream": stream,
            "original_id": as_text(message_id),
            "error": error,
            "traceback": trace,
            "deliveries": str(deliveries),
            "consumer": self.consumer_name,
            "dead_at": utcnow().isoformat(),
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(dead_letter_stream(stream), letter)  # type: ignore[arg-type]
            pipe.xack(stream, spec.name, message_id)
            await pipe.execute()
        log.error(
            "consumer.dead_lettered",
            group=spec.name,
            stream=stream,
            message_id=as_text(message_id),
            event_id=fields.get("event_id"),
            event_type=fields.get("type"),
            deliveries=deliveries,
            error=error,
        )
