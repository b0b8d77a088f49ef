"""What must be true of a brand once a faulted run has settled: each accepted write's effect there
exactly once, the ledger invariants, every event at every consumer group and at the webhook
endpoint, and nothing left where no job will move it on."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.experiences.models import Booking, BookingStatus
from services.community.models import Post
from services.kernel.consumer import STREAM_PREFIX, consumer_specs, dead_letter_stream
from services.kernel.db import Database
from services.registry import SERVICES
from services.rewards.models import LedgerEntry, Purchase, Redemption
from services.webhooks.models import Delivery, DeliveryStatus
from tests.faults.workload import WEBHOOK_EVENT_TYPES, Load
from tests.invariants import check_ledger, outbox_events, unhandled
from tests.webhooks.receiver import Receiver

SETTLE_SECONDS = 120.0


async def unpublished(session: AsyncSession, brand_id: uuid.UUID) -> int:
    """How many of the brand's outbox rows the relay has not published yet."""
    return len(await outbox_events(session, brand_id, lambda t: t.c.published_at.is_(None)))


async def webhook_events(session: AsyncSession, brand_id: uuid.UUID) -> set[uuid.UUID]:
    """The ids of the brand's events that its webhook endpoint wants."""
    return await outbox_events(session, brand_id, lambda t: t.c.type.in_(WEBHOOK_EVENT_TYPES))


async def delivered(session: AsyncSession, load: Load) -> set[uuid.UUID]:
    """The messages whose delivery to the load's endpoint succeeded."""
    return set(
        await session.scalars(
            select(Delivery.message_id).where(
                Delivery.endpoint_id == uuid.UUID(load.endpoint_id),
                Delivery.status == DeliveryStatus.SUCCEEDED,
            )
        )
    )


async def behind(database: Database, load: Load, receiver: Receiver) -> dict[str, int]:
    """What has yet to happen for the brand, by kind; empty once everything has."""
    async with database.unit_of_work() as session:
        events = await webhook_events(session, load.brand_id)
        found = {
            "unpublished events": await unpublished(session, load.brand_id),
            "events a consumer group has not handled": len(await unhandled(session, load.brand_id)),
            "webhooks not delivered": len(events - await delivered(session, load)),
            "webhooks not received": len(
                {str(e) for e in events} - {a.webhook_id for a in receiver.arrivals}
            ),
        }
    return {what: count for what, count in found.items() if count}


async def settle(database: Database, load: Load, receiver: Receiver) -> None:
    """Waits until every event has gone everywhere; fails with what is still behind."""
    deadline = time.monotonic() + SETTLE_SECONDS
    left = await behind(database, load, receiver)
    while left and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        left = await behind(database, load, receiver)
    assert left == {}, f"still behind after {SETTLE_SECONDS:.0f} s: {left}"


async def check_everything(
    database: Database, redis: Redis, load: Load, receiver: Receiver
) -> None:
    answers, accepted, brand_id = load.answers, load.accepted, load.brand_id
    # Every write got an answer, none of them a 500, and none was refused.
    assert answers.server_errors == []
    assert answers.unanswered == []
    assert answers.refused == []
    assert all((accepted.order_ids, accepted.redemption_ids, accepted.post_ids))

    async with database.unit_of_work() as session:
        # Each accepted write's effect exactly once, and nothing that was not accepted.
        orders = Counter(
            await session.scalars(select(Purchase.order_id).where(Purchase.brand_id == brand_id))
        )
        assert set(orders) == accepted.order_ids
        redemptions = set(
            map(
                str,
                await session.scalars(select(Redemption.id).where(Redemption.brand_id == brand_id)),
            )
        )
        assert redemptions == accepted.redemption_ids
        paid = Counter(
            await session.scalars(
                select(LedgerEntry.source_id).where(
                    LedgerEntry.brand_id == brand_id, LedgerEntry.source_type == "redemption"
                )
            )
        )
        assert paid == Counter(accepted.redemption_ids)
        posts = set(
            map(str, await session.scalars(select(Post.id).where(Post.brand_id == brand_id)))
        )
        assert posts == accepted.post_ids
        bookings = {
            str(booking_id): status
            for booking_id, status in await session.execute(
                select(Booking.id, Booking.status).where(Booking.brand_id == brand_id)
            )
        }
        assert set(bookings) == accepted.booking_ids
        assert {b for b, s in bookings.items() if s == BookingStatus.CANCELLED} == (
            accepted.cancelled_booking_ids
        )
        # Balances are the sums of their entries; each purchase once in the ledger and outbox.
        await check_ledger(session, brand_id)

        # Every event published and handled by every group that wants it; every webhook
        # delivered (settle() waited for that), and none left pending or failed.
        assert await unpublished(session, brand_id) == 0
        assert await unhandled(session, brand_id) == set()
        stuck = await session.scalar(
            select(func.count())
            .select_from(Delivery)
            .where(Delivery.brand_id == brand_id, Delivery.status != DeliveryStatus.SUCCEEDED)
        )
        assert stuck == 0

    # No consumer group holds a message it read and never acknowledged; nothing was parked
    # as a dead letter.
    for spec in consumer_specs(SERVICES):
        for stream in spec.streams:
            if await redis.exists(stream):
                pending = await redis.xpending(stream, spec.name)
                assert pending["pending"] == 0, (stream, spec.name, pending)
    dead = [key async for key in redis.scan_iter(match=f"{STREAM_PREFIX}*")]
    dead = [key for key in dead if key.decode().endswith(dead_letter_stream(""))]
    assert [(key, await redis.xlen(key)) for key in dead] == []
