"""The ledger's invariants after concurrent load, on committed data.

Many sessions at once (at most 16 in flight; the pool holds 20) earn, redeem, adjust both ways,
and run the expiry and reminder jobs against the same members. Afterwards, for every member:

- the cached balances equal the sums of the ledger entries (`ledger_matches`);
- no balance went below zero: every `points.*` event reports a balance >= 0 right after its entry,
  and every redemption or negative adjustment that would have overdrawn got `InsufficientPoints`;
- the open lots hold exactly the available balance, and lots account for every point in and out;
- every accepted operation is in the ledger exactly once, every refused one not at all, and each
  lot expired at most once, all due lots fully: concurrent job runs never expire twice;
- nothing failed in any other way (no deadlock, no serialization error).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.db import Database
from services.members import service as members_service
from services.rewards.errors import InsufficientPoints
from services.rewards.expiry.service import ExpiryRun, expire_points, remind_expiring_points
from services.rewards.ledger import service as ledger
from services.rewards.ledger.repository import LedgerRepository
from services.rewards.models import OUTBOX, Account, Bucket, EntryKind, LedgerEntry, Lot
from tests.conftest import purge_brand
from tests.rewards.points_helpers import at, set_program

MEMBERS = 12
OPERATIONS = 600
CONCURRENCY = 16
EXPIRY_DAYS = 30
BASE = at("2024-03-01T00:00:00+00:00")
JOB_NOW = BASE + timedelta(days=45)  # lots earned in the first 15 days are due


@dataclass(frozen=True)
class Op:
    id: str
    kind: EntryKind
    member_id: uuid.UUID
    points: int
    at_offset: timedelta


@pytest.fixture
async def committed_brand(engine_database: Database) -> AsyncIterator[uuid.UUID]:
    async with engine_database.unit_of_work() as session:
        brand, _ = await members_service.create_brand(session, f"Load {uuid.uuid4().hex[:6]}")
    try:
        yield brand.id
    finally:
        await purge_brand(engine_database, brand.id)


def plan(members: list[uuid.UUID], rng: random.Random) -> list[Op]:
    ops = []
    for n in range(OPERATIONS):
        member_id = rng.choice(members)
        roll = rng.random()
        if roll < 0.4:
            kind, points = EntryKind.EARN, rng.randint(1, 200)
        elif roll < 0.8:
            kind, points = EntryKind.REDEEM, -rng.randint(1, 250)
        else:
            kind, points = EntryKind.ADJUST, rng.choice([-1, 1]) * rng.randint(1, 100)
        ops.append(Op(f"op-{n}", kind, member_id, points, timedelta(hours=rng.randint(0, 60 * 24))))
    return ops


async def test_balances_lots_and_entries_stay_consistent_under_concurrent_load(
    committed_brand: uuid.UUID, engine_database: Database
) -> None:
    brand_id = committed_brand
    rng = random.Random(20240301)
    members = [uuid.uuid4() for _ in range(MEMBERS)]
    async with engine_database.unit_of_work() as session:
        await set_program(
            session,
            brand_id,
            expiry_policy="days_after_earning",
            expiry_days=EXPIRY_DAYS,
            expiry_reminder_days=7,
        )
        for n, member_id in enumerate(members):
            await LedgerRepository(session).upsert_account(
                brand_id=brand_id,
                member_id=member_id,
                external_id=f"load-{n}",
                birthday=None,
                member_status="active",
            )

    accepted: set[str] = set()
    refused: set[str] = set()
    job_runs: list[ExpiryRun] = []
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def in_session(work: Callable[[AsyncSession], Awaitable[None]]) -> None:
        async with semaphore, engine_database.unit_of_work() as session:
            await work(session)

    def operation(op: Op) -> Callable[[AsyncSession], Awaitable[None]]:
        async def work(session: AsyncSession) -> None:
            program = await ledger.program_for(session, brand_id)
            try:
                await ledger.post(
                    session,
                    brand_id,
                    program,
                    ledger.Movement(
                        member_id=op.member_id,
                        kind=op.kind,
                        bucket=Bucket.AVAILABLE,
                        points=op.points,
                        reason=f"load {op.kind.value}",
                        source_type="load",
                        source_id=op.id,
                        occurred_at=BASE + op.at_offset,
                    ),
                )
            except InsufficientPoints:
                assert op.points < 0
                refused.add(op.id)
                raise
            accepted.add(op.id)

        return work

    async def expiry_run(session: AsyncSession) -> None:
        job_runs.append(await expire_points(session, now=JOB_NOW, batch_size=5))

    async def reminder_run(session: AsyncSession) -> None:
        await remind_expiring_points(session, now=JOB_NOW - timedelta(days=3), batch_size=5)

    ops = plan(members, rng)
    work: list[Callable[[AsyncSession], Awaitable[None]]] = [operation(op) for op in ops]
    runs = 0
    for position in range(0, len(work), 40):  # job runs every ~40 operations, mid-stream
        work.insert(position, expiry_run)
        work.insert(position + 7, reminder_run)
        runs += 1
    results = await asyncio.gather(*(in_session(w) for w in work), return_exceptions=True)

    failures = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(f, InsufficientPoints) for f in failures), failures[:3]
    assert len(accepted) + len(refused) == len(ops)
    assert len(refused) == len(failures) > 0  # the load did try to overdraw
    assert len(job_runs) == runs
    # One last run after the load: every lot due by JOB_NOW is expired now.
    async with engine_database.unit_of_work() as session:
        job_runs.append(await expire_points(session, now=JOB_NOW))

    async with engine_database.unit_of_work() as session:
        await check_invariants(session, brand_id, members, ops, accepted, job_runs)


async def check_invariants(
    session: AsyncSession,
    brand_id: uuid.UUID,
    members: list[uuid.UUID],
    ops: list[Op],
    accepted: set[str],
    job_runs: list[ExpiryRun],
) -> None:
    entries = (
        await session.scalars(select(LedgerEntry).where(LedgerEntry.brand_id == brand_id))
    ).all()
    lots = (await session.scalars(select(Lot).where(Lot.brand_id == brand_id))).all()

    # Every accepted operation exactly once; refused ones not at all.
    by_op = Counter(e.source_id for e in entries if e.source_type == "load")
    assert by_op == Counter(accepted)
    points_of = {op.id: op.points for op in ops}
    assert all(e.points == points_of[e.source_id] for e in entries if e.source_type == "load")

    # Each lot expired at most once, and every lot due by JOB_NOW is empty.
    expiries = [e for e in entries if e.kind == EntryKind.EXPIRE]
    assert all(count == 1 for count in Counter(e.source_id for e in expiries).values())
    assert all(e.source_type == "lot" for e in expiries)
    due = [lot for lot in lots if lot.expires_at is not None and lot.expires_at <= JOB_NOW]
    assert due
    assert all(lot.remaining == 0 for lot in due)
    assert sum(run.points for run in job_runs) == -sum(e.points for e in expiries) > 0
    assert sum(run.entries for run in job_runs) == len(expiries)

    for member_id in members:
        assert await ledger.ledger_matches(session, member_id)
        account = await session.get(Account, member_id, populate_existing=True)
        assert account is not None
        mine = [e for e in entries if e.member_id == member_id]
        credits = sum(e.points for e in mine if e.points > 0)
        debits = -sum(e.points for e in mine if e.points < 0)
        assert account.available == credits - debits >= 0
        assert account.pending == 0
        assert account.lifetime_earned == sum(e.points for e in mine if e.kind == EntryKind.EARN)
        my_lots = [lot for lot in lots if lot.member_id == member_id]
        # No negative balance was ever used, so every credit is a whole lot, every debit came
        # out of lots, and what is left in open lots is exactly the balance.
        assert sum(lot.points for lot in my_lots) == credits
        assert sum(lot.points - lot.remaining for lot in my_lots) == debits
        assert sum(lot.remaining for lot in my_lots) == max(account.available, 0)

    # Never below zero, at any moment: each event carries the balance right after its entry.
    table = OUTBOX.table
    payloads = (
        await session.scalars(
            select(table.c.payload).where(
                table.c.brand_id == brand_id, table.c.type.in_(POINT_EVENTS)
            )
        )
    ).all()
    assert len(payloads) == len(entries)
    assert min(p["data"]["available"] for p in payloads) >= 0
    reminders = await session.scalar(
        select(func.count())
        .select_from(table)
        .where(table.c.brand_id == brand_id, table.c.type == "points.expiring_soon")
    )
    reminded = sum(1 for lot in lots if lot.reminded_at is not None)
    assert reminders == reminded


POINT_EVENTS = ("points.earned", "points.redeemed", "points.adjusted", "points.expired")
