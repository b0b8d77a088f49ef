"""What must hold of a brand after any run, however it went: each member's balance is the sum of
their ledger entries, each purchase is in the ledger and in the outbox once, and every event of
the brand's outboxes has reached every consumer group that wants it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Table, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.consumer import consumer_specs
from services.kernel.relay import outbox_of
from services.registry import SERVICES
from services.rewards.ledger.repository import LedgerRepository
from services.rewards.models import Account, LedgerEntry, Purchase


@dataclass(frozen=True)
class Pending:
    """One event that a consumer group wants and has not handled yet."""

    group: str
    event_id: uuid.UUID


async def unhandled(session: AsyncSession, brand_id: uuid.UUID) -> set[Pending]:
    """Every (consumer group, event) of the brand's outboxes that the group's inbox lacks."""
    missing: set[Pending] = set()
    outboxes = {s.name: table for s in SERVICES if (table := outbox_of(s)) is not None}
    for spec in consumer_specs(SERVICES):
        handled = set(
            await session.scalars(
                select(spec.inbox.c.event_id).where(spec.inbox.c.consumer == spec.name)
            )
        )
        for name in spec.services:
            table = outboxes[name]
            rows = await session.execute(
                select(table.c.id, table.c.type).where(table.c.brand_id == brand_id)
            )
            missing |= {
                Pending(spec.name, event_id)
                for event_id, event_type in rows
                if spec.wants(event_type) and event_id not in handled
            }
    return missing


async def outbox_events(
    session: AsyncSession,
    brand_id: uuid.UUID,
    where: Callable[[Table], ColumnElement[bool]] | None = None,
) -> set[uuid.UUID]:
    """The ids of the brand's outbox rows, in every service, that `where(outbox)` holds for."""
    found: set[uuid.UUID] = set()
    for service in SERVICES:
        if (table := outbox_of(service)) is not None:
            condition = where(table) if where is not None else true()
            found |= set(
                await session.scalars(
                    select(table.c.id).where(table.c.brand_id == brand_id, condition)
                )
            )
    return found


async def published_events(session: AsyncSession, brand_id: uuid.UUID) -> set[uuid.UUID]:
    """The ids of the brand's outbox rows the relay has marked published."""
    return await outbox_events(session, brand_id, lambda t: t.c.published_at.is_not(None))


async def check_ledger(session: AsyncSession, brand_id: uuid.UUID) -> None:
    """Balance = sum of entries for every member; every purchase once in the ledger and once
    in the outbox (its change, its entry and its event committed together, so a snapshot has
    all three or none)."""
    assert await session.scalar(select(Account.member_id).where(Account.brand_id == brand_id))
    assert await LedgerRepository(session).drifted_accounts(brand_id) == []
    orders = list(
        await session.scalars(select(Purchase.order_id).where(Purchase.brand_id == brand_id))
    )
    entries = list(
        await session.scalars(
            select(LedgerEntry.source_id).where(
                LedgerEntry.brand_id == brand_id, LedgerEntry.source_type == "purchase"
            )
        )
    )
    assert sorted(str(e) for e in entries) == sorted(orders)
    rewards_outbox = next(outbox_of(s) for s in SERVICES if s.name == "rewards")
    assert rewards_outbox is not None
    recorded = list(
        await session.scalars(
            select(rewards_outbox.c.payload["data"]["order_id"].astext).where(
                rewards_outbox.c.brand_id == brand_id,
                rewards_outbox.c.type == "purchase.recorded",
            )
        )
    )
    assert sorted(recorded) == sorted(orders)
