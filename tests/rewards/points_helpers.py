"""Small helpers for ledger-level tests: post points at chosen times and read what happened."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.rewards.ledger import service as ledger
from services.rewards.ledger.schemas import ProgramSettings
from services.rewards.models import Account, Bucket, EntryKind, LedgerEntry, Lot, Program
from tests.rewards.conftest import DEFAULT_PROGRAM


def at(text: str) -> datetime:
    """An aware datetime from ISO text, e.g. `at("2024-01-01T12:00:00+00:00")`."""
    moment = datetime.fromisoformat(text)
    assert moment.tzinfo is not None
    return moment


async def set_program(session: AsyncSession, brand_id: uuid.UUID, **changes: Any) -> Program:
    settings = ProgramSettings(**{**DEFAULT_PROGRAM.model_dump(), **changes})
    return await ledger.configure_program(session, brand_id, settings)


async def move(
    session: AsyncSession,
    program: Program,
    member_id: uuid.UUID,
    points: int,
    when: datetime,
    *,
    kind: EntryKind = EntryKind.EARN,
    bucket: Bucket = Bucket.AVAILABLE,
    source_id: str | None = None,
    allow_negative: bool = False,
) -> ledger.Posted:
    return await ledger.post(
        session,
        program.brand_id,
        program,
        ledger.Movement(
            member_id=member_id,
            kind=kind,
            bucket=bucket,
            points=points,
            reason=f"{kind.value} {points}",
            source_type="test",
            source_id=source_id,
            occurred_at=when,
        ),
        allow_negative=allow_negative,
    )


async def account_of(session: AsyncSession, member_id: uuid.UUID) -> Account:
    account = await session.get(Account, member_id, populate_existing=True)
    assert account is not None
    return account


async def lots_of(
    session: AsyncSession, member_id: uuid.UUID
) -> list[tuple[int, int, datetime | None]]:
    """(points, remaining, expires_at) of every lot, oldest first."""
    rows = await session.execute(
        select(Lot.points, Lot.remaining, Lot.expires_at)
        .where(Lot.member_id == member_id)
        .order_by(Lot.earned_at, Lot.id)
    )
    return [(r.points, r.remaining, r.expires_at) for r in rows]


async def entries_of(session: AsyncSession, member_id: uuid.UUID) -> list[LedgerEntry]:
    result = await session.scalars(
        select(LedgerEntry)
        .where(LedgerEntry.member_id == member_id)
        .order_by(LedgerEntry.id)
        .execution_options(populate_existing=True)
    )
    return list(result.all())
