"""Operations' rules: filters that make sense, resending one delivery and recovering an
endpoint's failures (each a fresh retry schedule, never under a worker's feet), and dropping
messages past their retention. Never commits."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.kernel.pagination import InvalidCursor, PageRequest
from services.webhooks import catalog
from services.webhooks.endpoints import service as endpoints
from services.webhooks.endpoints.errors import EndpointDisabled, UnknownEventType
from services.webhooks.models import Attempt, Delivery, DeliveryStatus, Endpoint, Message
from services.webhooks.operations.errors import (
    DeliveryInFlight,
    DeliveryNotFound,
    InvalidTimeRange,
    MessageNotFound,
    RecoverFromFuture,
    RecoverTooFarBack,
)
from services.webhooks.operations.repository import (
    AttemptFilters,
    MessageFilters,
    OperationsRepository,
)

# A recovery reaches back at most this far (as Svix allows): older failures are for a resend.
RECOVER_LIMIT = timedelta(days=14)
# The caller's clock and ours differ, and a request takes time: "exactly 14 days ago" computed
# by a client must not be refused as a few milliseconds too far back.
CLOCK_SLACK = timedelta(minutes=1)

# Messages dropped per statement by the retention job: small enough that one statement's locks
# and work stay modest, large enough that a day's messages take a few statements.
PURGE_BATCH = 10_000

# Attempt ids are bigints; their cursors carry them in a UUID's integer.
_MAX_ATTEMPT_ID = 2**63 - 1


# --- Messages --------------------------------------------------------------------------------


def check_event_type(pattern: str) -> str:
    if not catalog.known_pattern(pattern):
        raise UnknownEventType(
            "event_type",
            f"No service publishes {pattern!r}: name a type such as `points.earned` or a "
            "family such as `points.*`.",
        )
    return pattern


def check_filters(filters: MessageFilters) -> MessageFilters:
    if filters.event_type is not None:
        check_event_type(filters.event_type)
    if filters.since is not None and filters.until is not None and filters.until <= filters.since:
        raise InvalidTimeRange(
            "until",
            f"`until` ({filters.until.isoformat()}) must be after `since` "
            f"({filters.since.isoformat()}).",
        )
    return filters


async def list_messages(
    session: AsyncSession, brand_id: uuid.UUID, filters: MessageFilters, page: PageRequest
) -> list[Message]:
    """Newest first; the extra row past `page.limit` tells `Page.of` another page follows."""
    check_filters(filters)
    repository = OperationsRepository(session)
    page.forwards_only()  # ordered by time, resumed from a message id
    after = None
    if page.after is not None:
        after = await repository.message_position(brand_id, page.after)
        if after is None:
            raise InvalidCursor(
                "The message this cursor continues from is gone (past its retention or "
                "erased): start again from the first page."
            )
    return await repository.messages(brand_id, filters, after, page.limit + 1)


async def get_message(
    session: AsyncSession, brand_id: uuid.UUID, message_id: uuid.UUID
) -> tuple[Message, list[Delivery]]:
    repository = OperationsRepository(session)
    message = await repository.message(brand_id, message_id)
    if message is None:
        raise MessageNotFound(message_id)
    return message, await repository.deliveries_of(brand_id, message_id)


# --- Attempts --------------------------------------------------------------------------------


def attempt_cursor_key(attempt: Attempt) -> uuid.UUID:
    """The `next` cursor of a page of attempts: the pagination kernel's cursors are UUIDs."""
    return uuid.UUID(int=attempt.id)


async def _attempts(
    session: AsyncSession, brand_id: uuid.UUID, filters: AttemptFilters, page: PageRequest
) -> list[Attempt]:
    repository = OperationsRepository(session)
    page.forwards_only()  # ordered by time, resumed from an attempt id
    after = None
    if page.after is not None:
        attempt_id = page.after.int
        position = (
            await repository.attempt_position(brand_id, attempt_id)
            if attempt_id <= _MAX_ATTEMPT_ID
            else None
        )
        if position is None:
            raise InvalidCursor(
                "The cursor is not one this list returned, or its attempt is gone (past its "
                "retention): start again from the first page."
            )
        after = position
    return await repository.attempts(brand_id, filters, after, page.limit + 1)


async def message_attempts(
    session: AsyncSession,
    brand_id: uuid.UUID,
    message_id: uuid.UUID,
    endpoint_id: uuid.UUID | None,
    page: PageRequest,
) -> list[Attempt]:
    if await OperationsRepository(session).message_position(brand_id, message_id) is None:
        raise MessageNotFound(message_id)
    filters = AttemptFilters(message_id=message_id, endpoint_id=endpoint_id)
    return await _attempts(session, brand_id, filters, page)


async def endpoint_attempts(
    session: AsyncSession,
    brand_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    filters: AttemptFilters,
    page: PageRequest,
) -> list[Attempt]:
    await endpoints.get_endpoint(session, brand_id, endpoint_id)
    return await _attempts(
        session,
        brand_id,
        AttemptFilters(endpoint_id=endpoint_id, since=filters.since, outcome=filters.outcome),
        page,
    )


# --- Resend and recover ----------------------------------------------------------------------


async def _enabled_endpoint(
    session: AsyncSession, brand_id: uuid.UUID, endpoint_id: uuid.UUID, then: str
) -> Endpoint:
    endpoint = await endpoints.get_endpoint(session, brand_id, endpoint_id)
    if not endpoint.enabled:
        reason = f" ({endpoint.disabled_reason})" if endpoint.disabled_reason else ""
        raise EndpointDisabled(
            f"Endpoint {endpoint_id} is disabled{reason}, so nothing is sent to it: enable it "
            f"first (PATCH enabled: true), then {then}."
        )
    return endpoint


async def resend(
    session: AsyncSession, brand_id: uuid.UUID, message_id: uuid.UUID, endpoint_id: uuid.UUID
) -> Delivery:
    """The delivery starts a fresh schedule, due now, whatever its status: a succeeded one is
    sent again (same `webhook-id`, so a receiver that keeps ids drops it)."""
    repository = OperationsRepository(session)
    delivery = await repository.delivery_for_update(brand_id, message_id, endpoint_id)
    if delivery is None:
        raise DeliveryNotFound(message_id, endpoint_id)
    await _enabled_endpoint(session, brand_id, endpoint_id, "resend")
    now = utcnow()
    leased_until = delivery.leased_until
    if (
        delivery.status is DeliveryStatus.PENDING
        and leased_until is not None
        and leased_until > now
    ):
        # Resetting it now would let a second worker send it while the first still is.
        raise DeliveryInFlight(
            f"Message {message_id} is being sent to endpoint {endpoint_id} right now (until "
            f"{leased_until.isoformat()} at the latest): try again in a few seconds."
        )
    delivery.status = DeliveryStatus.PENDING
    delivery.next_attempt_at = now
    delivery.attempts = 0
    # An expired lease's worker is gone; clearing it also fences off any late result it sends.
    delivery.leased_until = None
    await repository.flush()
    return delivery


def check_recover_since(since: datetime, now: datetime) -> datetime:
    if since > now + CLOCK_SLACK:
        raise RecoverFromFuture(
            "since",
            f"{since.isoformat()} is in the future: recover from a past time, at most "
            f"{RECOVER_LIMIT.days} days back.",
        )
    if since < now - RECOVER_LIMIT - CLOCK_SLACK:
        raise RecoverTooFarBack(
            "since",
            f"A recovery reaches back at most {RECOVER_LIMIT.days} days (to "
            f"{(now - RECOVER_LIMIT).isoformat()}); resend older messages one by one.",
        )
    return since


async def recover(
    session: AsyncSession, brand_id: uuid.UUID, endpoint_id: uuid.UUID, since: datetime
) -> int:
    """Every delivery to the endpoint created since `since` that failed is pending again, due
    now, with a fresh schedule; how many. Pending and succeeded ones are left as they are."""
    now = utcnow()
    check_recover_since(since, now)
    await _enabled_endpoint(session, brand_id, endpoint_id, "recover")
    return await OperationsRepository(session).recover_failed(brand_id, endpoint_id, since, now)


# --- Retention -------------------------------------------------------------------------------


async def purge_messages(
    session: AsyncSession, retention: timedelta, *, batch: int = PURGE_BATCH
) -> int:
    """Drop messages created more than `retention` ago, with their deliveries and attempts,
    brand by brand, oldest first, a batch per statement until none is left; how many went."""
    created_before = utcnow() - retention
    repository = OperationsRepository(session)
    total = 0
    for brand_id in await repository.brands_with_messages():
        created_from: datetime | None = None
        while True:
            gone, newest = await repository.purge_batch(
                brand_id, created_before, created_from, batch
            )
            total += gone
            if gone < batch:
                # The batch took every old message left: new ones are created "now", never
                # before the cutoff.
                break
            created_from = newest
    return total
