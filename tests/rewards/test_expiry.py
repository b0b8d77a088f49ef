"""Points expiry: lot by lot, after inactivity, never under `none`; reminders; the daily jobs.

Every job here runs at a chosen `now` inside the test's rolled-back transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from redis.asyncio import Redis
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.db import Database
from services.kernel.jobs import collect_jobs, enqueue
from services.kernel.settings import Settings
from services.members import service as members_service
from services.rewards import job_runs
from services.rewards.expiry.service import (
    ExpiryRun,
    add_months,
    expire_points,
    remind_expiring_points,
)
from services.rewards.expiry.tasks import EXPIRE_POINTS, REMIND_EXPIRING_POINTS
from services.rewards.job_runs import Resume, RunLimit
from services.rewards.ledger import service as ledger
from services.rewards.ledger.repository import LedgerRepository
from services.rewards.models import Account, Bucket, EntryKind, ExpiryPolicy
from services.rewards.module import REWARDS
from tests.conftest import BrandFixture, MemberFixture, purge_brand, run_burst
from tests.rewards.conftest import MakeMember, rewards_events, sync_members
from tests.rewards.points_helpers import (
    account_of,
    at,
    entries_of,
    lots_of,
    move,
    set_program,
)

if TYPE_CHECKING:
    import httpx

    from tests.conftest import WorkerInfrastructure

T0 = at("2024-01-01T12:00:00+00:00")
NOTHING = ExpiryRun()


def _expired(events: list[tuple[str, dict[str, object]]]) -> list[tuple[object, object]]:
    return [(d["points"], d["available"]) for t, d in events if t == "points.expired"]


def _soon(events: list[tuple[str, dict[str, object]]]) -> list[tuple[object, object]]:
    return [(d["points"], d["expires_at"]) for t, d in events if t == "points.expiring_soon"]


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# --- Lot by lot ---------------------------------------------------------------------------------


async def test_lots_expire_one_by_one_after_the_oldest_were_spent_first(
    session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    program = await set_program(
        session, brand.id, expiry_policy="days_after_earning", expiry_days=100
    )
    lot_a_expires = at("2024-04-10T12:00:00+00:00")
    lot_b_expires = at("2024-04-20T12:00:00+00:00")
    await move(session, program, member.id, 100, T0)
    await move(session, program, member.id, 50, T0 + timedelta(days=10))
    await move(
        session, program, member.id, -30, at("2024-02-01T00:00:00+00:00"), kind=EntryKind.REDEEM
    )
    assert await lots_of(session, member.id) == [(100, 70, lot_a_expires), (50, 50, lot_b_expires)]

    assert await expire_points(session, now=lot_a_expires - timedelta(microseconds=1)) == NOTHING
    # Only what is left of the oldest lot expires: 70, not 100.
    assert await expire_points(session, now=lot_a_expires) == ExpiryRun(1, 1, 70)
    assert await lots_of(session, member.id) == [(100, 0, lot_a_expires), (50, 50, lot_b_expires)]
    assert (await account_of(session, member.id)).available == 50
    # The same run again, or a later one before the next lot is due, expires nothing twice.
    assert await expire_points(session, now=lot_a_expires) == NOTHING
    assert await expire_points(session, now=lot_b_expires - timedelta(seconds=1)) == NOTHING

    await move(
        session, program, member.id, -20, at("2024-04-15T00:00:00+00:00"), kind=EntryKind.REDEEM
    )
    assert await expire_points(session, now=at("2024-05-01T00:00:00+00:00")) == ExpiryRun(1, 1, 30)
    assert await lots_of(session, member.id) == [(100, 0, lot_a_expires), (50, 0, lot_b_expires)]
    account = await account_of(session, member.id)
    assert (account.available, account.pending, account.lifetime_earned) == (0, 0, 150)

    expiries = [e for e in await entries_of(session, member.id) if e.kind == EntryKind.EXPIRE]
    assert [(e.points, e.occurred_at, e.source_type, e.bucket) for e in expiries] == [
        (-70, lot_a_expires, "lot", Bucket.AVAILABLE),
        (-30, lot_b_expires, "lot", Bucket.AVAILABLE),
    ]
    assert [e.reason for e in expiries] == [
        "Expired: points earned on 2024-01-01",
        "Expired: points earned on 2024-01-11",
    ]
    assert _expired(await rewards_events(session)) == [(-70, 50), (-30, 0)]
    assert await ledger.ledger_matches(session, member.id)


async def test_a_due_lot_expires_even_when_an_older_lot_never_expires(
    session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    program = await set_program(session, brand.id)  # none: this lot has no expiry date
    await move(session, program, member.id, 100, T0)
    program = await set_program(
        session, brand.id, expiry_policy="days_after_earning", expiry_days=30
    )
    due = at("2024-03-02T12:00:00+00:00")
    await move(session, program, member.id, 40, at("2024-02-01T12:00:00+00:00"))

    assert await expire_points(session, now=due) == ExpiryRun(1, 1, 40)
    # The due lot is emptied, not the older one (which spending would take first).
    assert await lots_of(session, member.id) == [(100, 100, None), (40, 0, due)]
    assert await expire_points(session, now=due + timedelta(days=365)) == NOTHING
    assert (await account_of(session, member.id)).available == 100
    assert await ledger.ledger_matches(session, member.id)


async def test_a_zero_or_negative_balance_expires_nothing(
    session: AsyncSession, brand: BrandFixture, member: MemberFixture, make_member: MakeMember
) -> None:
    program = await set_program(
        session, brand.id, expiry_policy="days_after_earning", expiry_days=30
    )
    spent = member
    returned = await make_member("crm-2")
    await move(session, program, spent.id, 50, T0)
    await move(session, program, spent.id, -50, T0 + timedelta(days=1), kind=EntryKind.REDEEM)
    await move(session, program, returned.id, 100, T0)
    # A return after the points were spent: only a return may take the balance below zero.
    await move(
        session,
        program,
        returned.id,
        -150,
        T0 + timedelta(days=1),
        kind=EntryKind.REVERSE,
        allow_negative=True,
    )
    before = {m.id: len(await entries_of(session, m.id)) for m in (spent, returned)}

    assert await expire_points(session, now=T0 + timedelta(days=60)) == NOTHING
    assert (await account_of(session, spent.id)).available == 0
    assert (await account_of(session, returned.id)).available == -50
    assert {m.id: len(await entries_of(session, m.id)) for m in (spent, returned)} == before
    assert _expired(await rewards_events(session)) == []


async def test_nothing_expires_under_the_none_policy(
    session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    program = await set_program(
        session, brand.id, expiry_policy="days_after_earning", expiry_days=30
    )
    await move(session, program, member.id, 10, T0)  # carries a date from that policy
    program = await set_program(session, brand.id)
    assert program.expiry_policy == ExpiryPolicy.NONE
    await move(session, program, member.id, 100, T0)

    assert await expire_points(session, now=T0 + timedelta(days=20 * 365)) == NOTHING
    assert await remind_expiring_points(session, now=T0 + timedelta(days=25)) == 0
    assert (await account_of(session, member.id)).available == 110
    assert [lot[2] for lot in await lots_of(session, member.id)] == [
        T0 + timedelta(days=30),
        None,
    ]


# --- Inactivity -------------------------------------------------------------------------------


async def test_inactivity_expires_the_whole_balance_and_a_purchase_resets_the_clock(
    session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    program = await set_program(session, brand.id, expiry_policy="inactivity", inactivity_months=12)
    await move(session, program, member.id, 100, at("2024-01-31T10:00:00+00:00"))
    # A purchase whose points are still pending is activity all the same.
    purchase = at("2024-06-15T08:00:00+00:00")
    await move(session, program, member.id, 20, purchase, bucket=Bucket.PENDING)
    # A staff adjustment is not activity.
    await move(
        session, program, member.id, 10, at("2024-09-01T00:00:00+00:00"), kind=EntryKind.ADJUST
    )
    assert (await account_of(session, member.id)).last_activity_at == purchase

    assert await expire_points(session, now=at("2025-01-31T10:00:00+00:00")) == NOTHING
    deadline = at("2025-06-15T08:00:00+00:00")
    assert await expire_points(session, now=deadline - timedelta(microseconds=1)) == NOTHING
    assert await expire_points(session, now=deadline) == ExpiryRun(1, 1, 110)
    assert await expire_points(session, now=deadline + timedelta(days=1)) == NOTHING

    account = await account_of(session, member.id)
    assert (account.available, account.pending) == (0, 20)  # pending points are not spendable
    assert await lots_of(session, member.id) == [(100, 0, None), (10, 0, None)]
    expiry = (await entries_of(session, member.id))[-1]
    assert (expiry.kind, expiry.points, expiry.occurred_at, expiry.source_type) == (
        EntryKind.EXPIRE,
        -110,
        deadline,
        "inactivity",
    )
    assert expiry.reason == "Expired after 12 months without activity"
    assert _expired(await rewards_events(session)) == [(-110, 0)]
    assert await ledger.ledger_matches(session, member.id)


async def test_inactivity_counts_calendar_months_clamped_to_the_month_end(
    session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    program = await set_program(session, brand.id, expiry_policy="inactivity", inactivity_months=11)
    await move(session, program, member.id, 100, at("2024-03-31T10:00:00+00:00"))
    deadline = at("2025-02-28T10:00:00+00:00")
    assert await expire_points(session, now=deadline - timedelta(seconds=1)) == NOTHING
    assert await expire_points(session, now=deadline) == ExpiryRun(1, 1, 100)


async def test_a_member_never_active_counts_from_when_rewards_first_knew_them(
    session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    program = await set_program(session, brand.id, expiry_policy="inactivity", inactivity_months=12)
    await move(session, program, member.id, 50, T0, kind=EntryKind.ADJUST)
    await session.execute(
        update(Account)
        .where(Account.member_id == member.id)
        .values(created_at=at("2023-01-10T00:00:00+00:00"))
    )
    assert (await account_of(session, member.id)).last_activity_at is None
    assert await expire_points(session, now=at("2024-01-09T23:59:59+00:00")) == NOTHING
    assert await expire_points(session, now=at("2024-01-10T00:00:00+00:00")) == ExpiryRun(1, 1, 50)


async def test_inactivity_takes_nothing_from_a_negative_balance(
    session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    program = await set_program(session, brand.id, expiry_policy="inactivity", inactivity_months=1)
    await move(session, program, member.id, 100, T0)
    await move(session, program, member.id, -150, T0, kind=EntryKind.REVERSE, allow_negative=True)
    assert await expire_points(session, now=T0 + timedelta(days=400)) == NOTHING
    assert (await account_of(session, member.id)).available == -50


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        ("2024-01-31T10:00:00+00:00", 1, "2024-02-29T10:00:00+00:00"),
        ("2023-01-31T10:00:00+00:00", 1, "2023-02-28T10:00:00+00:00"),
        ("2024-02-29T00:00:00+00:00", 12, "2025-02-28T00:00:00+00:00"),
        ("2024-11-30T23:59:59+00:00", 3, "2025-02-28T23:59:59+00:00"),
        ("2024-05-15T06:00:00+00:00", 18, "2025-11-15T06:00:00+00:00"),
        # Other zones are read in UTC: 00:30 on 1 March in Paris is 29 February in UTC.
        ("2024-03-01T00:30:00+01:00", 1, "2024-03-29T23:30:00+00:00"),
    ],
)
def test_add_months(start: str, months: int, expected: str) -> None:
    result = add_months(at(start), months)
    assert result == at(expected)
    assert result.tzinfo == UTC


async def test_the_jobs_refuse_a_naive_now(session: AsyncSession) -> None:
    naive = datetime(2024, 1, 1, 12, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        await expire_points(session, now=naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        await remind_expiring_points(session, now=naive)


# --- Reminders --------------------------------------------------------------------------------


async def test_each_lot_is_announced_once_inside_the_reminder_window(
    session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    program = await set_program(
        session,
        brand.id,
        expiry_policy="days_after_earning",
        expiry_days=100,
        expiry_reminder_days=10,
    )
    lot_a_expires = at("2024-04-10T12:00:00+00:00")
    lot_b_expires = at("2024-04-15T12:00:00+00:00")
    await move(session, program, member.id, 100, T0)
    await move(session, program, member.id, 50, at("2024-01-06T12:00:00+00:00"))
    await move(
        session, program, member.id, -30, at("2024-02-01T00:00:00+00:00"), kind=EntryKind.REDEEM
    )

    window_a = lot_a_expires - timedelta(days=10)
    assert await remind_expiring_points(session, now=window_a - timedelta(seconds=1)) == 0
    assert await remind_expiring_points(session, now=window_a) == 1
    assert await remind_expiring_points(session, now=window_a + timedelta(days=1)) == 0
    assert await remind_expiring_points(session, now=lot_b_expires - timedelta(days=10)) == 1
    assert await remind_expiring_points(session, now=lot_b_expires - timedelta(days=1)) == 0
    # What is left of a lot is announced: 70 of the first, after 30 were spent.
    assert _soon(await rewards_events(session)) == [
        (70, _iso(lot_a_expires)),
        (50, _iso(lot_b_expires)),
    ]
    # Reminders move no points.
    assert (await account_of(session, member.id)).available == 120


async def test_a_lot_already_due_is_expired_not_announced(
    session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    program = await set_program(
        session,
        brand.id,
        expiry_policy="days_after_earning",
        expiry_days=30,
        expiry_reminder_days=10,
    )
    await move(session, program, member.id, 100, T0)
    assert await remind_expiring_points(session, now=T0 + timedelta(days=30)) == 0
    assert _soon(await rewards_events(session)) == []


async def test_no_reminders_for_erased_members_or_with_zero_reminder_days(
    session: AsyncSession,
    client: httpx.AsyncClient,
    brand: BrandFixture,
    member: MemberFixture,
    make_member: MakeMember,
) -> None:
    program = await set_program(
        session,
        brand.id,
        expiry_policy="days_after_earning",
        expiry_days=30,
        expiry_reminder_days=0,
    )
    kept = await make_member("crm-2")
    for someone in (member, kept):
        await move(session, program, someone.id, 100, T0)
    assert await remind_expiring_points(session, now=T0 + timedelta(days=29)) == 0

    await set_program(
        session,
        brand.id,
        expiry_policy="days_after_earning",
        expiry_days=30,
        expiry_reminder_days=10,
    )
    erased = await client.post(f"/members/v1/members/{member.id}/erase", headers=brand.headers)
    assert erased.status_code == 200
    await sync_members(session)
    assert await remind_expiring_points(session, now=T0 + timedelta(days=29)) == 1
    assert [d["member_id"] for t, d in await rewards_events(session) if t.endswith("soon")] == [
        str(kept.id)
    ]


async def test_inactivity_is_announced_once_per_deadline(
    session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    program = await set_program(
        session,
        brand.id,
        expiry_policy="inactivity",
        inactivity_months=12,
        expiry_reminder_days=30,
    )
    await move(session, program, member.id, 100, at("2024-01-31T10:00:00+00:00"))
    first = at("2025-01-31T10:00:00+00:00")
    assert await remind_expiring_points(session, now=at("2025-01-01T09:59:59+00:00")) == 0
    assert await remind_expiring_points(session, now=at("2025-01-01T10:00:00+00:00")) == 1
    assert await remind_expiring_points(session, now=at("2025-01-02T10:00:00+00:00")) == 0

    # Activity moves the deadline; the new one is announced in its own window.
    await move(session, program, member.id, 10, at("2025-01-10T10:00:00+00:00"))
    second = at("2026-01-10T10:00:00+00:00")
    assert await remind_expiring_points(session, now=at("2025-01-20T00:00:00+00:00")) == 0
    assert await remind_expiring_points(session, now=at("2025-12-11T10:00:00+00:00")) == 1
    assert await remind_expiring_points(session, now=at("2025-12-20T10:00:00+00:00")) == 0
    assert _soon(await rewards_events(session)) == [(100, _iso(first)), (110, _iso(second))]
    assert (await account_of(session, member.id)).inactivity_reminded_for == second


# --- The jobs ---------------------------------------------------------------------------------


def test_the_expiry_jobs_are_scheduled_daily_on_the_rewards_service() -> None:
    names = {spec.name: spec for spec in collect_jobs([REWARDS])}
    for spec in (EXPIRE_POINTS, REMIND_EXPIRING_POINTS):
        assert names[spec.name] is spec
        assert spec.cron is not None
        assert (spec.cron.day, spec.cron.weekday, spec.cron.month) == (None, None, None)
        assert isinstance(spec.cron.hour, int)
        assert isinstance(spec.cron.minute, int)
    # Expiry runs before the reminders, so nothing already due is announced.
    assert (EXPIRE_POINTS.cron.hour, EXPIRE_POINTS.cron.minute) < (  # type: ignore[union-attr]
        REMIND_EXPIRING_POINTS.cron.hour,  # type: ignore[union-attr]
        REMIND_EXPIRING_POINTS.cron.minute,  # type: ignore[union-attr]
    )


@pytest.fixture
async def committed_brand(engine_database: Database) -> AsyncIterator[uuid.UUID]:
    async with engine_database.unit_of_work() as session:
        brand, _ = await members_service.create_brand(session, f"Expiry {uuid.uuid4().hex[:6]}")
    try:
        yield brand.id
    finally:
        await purge_brand(engine_database, brand.id)


# arq 0.28 closes its pool with redis-py's deprecated `close()`; nothing for us to change.
@pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")
async def test_the_expiry_job_runs_on_the_worker_at_a_chosen_time(
    committed_brand: uuid.UUID,
    engine_database: Database,
    redis: Redis,
    test_infra: WorkerInfrastructure,
    base_settings: Settings,
) -> None:
    member_id = uuid.uuid4()
    async with engine_database.unit_of_work() as session:
        program = await set_program(
            session, committed_brand, expiry_policy="days_after_earning", expiry_days=30
        )
        await LedgerRepository(session).upsert_account(
            brand_id=committed_brand,
            member_id=member_id,
            external_id="job-1",
            birthday=None,
            member_status="active",
        )
        await move(session, program, member_id, 100, T0)

    await enqueue(test_infra.redis_url, EXPIRE_POINTS.name, now=T0 + timedelta(days=31))
    assert await run_burst(engine_database, test_infra, [REWARDS], base_settings) == 1

    async with engine_database.unit_of_work() as session:
        assert (await account_of(session, member_id)).available == 0
        assert await ledger.ledger_matches(session, member_id)


# --- Runs that stop at their limit --------------------------------------------------------------


async def _members_with_points(
    session: AsyncSession, brand_id: uuid.UUID, count: int, *, earned: datetime = T0
) -> list[uuid.UUID]:
    program = await set_program(
        session,
        brand_id,
        expiry_policy="days_after_earning",
        expiry_days=30,
        expiry_reminder_days=7,
    )
    ids = sorted(uuid.uuid4() for _ in range(count))
    repository = LedgerRepository(session)
    for n, member_id in enumerate(ids):
        await repository.upsert_account(
            brand_id=brand_id,
            member_id=member_id,
            external_id=f"slice-{n}",
            birthday=None,
            member_status="active",
        )
        await move(session, program, member_id, 10 + n, earned)
    return ids


async def test_a_limited_run_stops_where_it_says_and_the_next_goes_on_from_there(
    session: AsyncSession, brand: BrandFixture, other_brand: BrandFixture
) -> None:
    first, second = sorted((brand.id, other_brand.id))
    ours = await _members_with_points(session, first, 5)
    theirs = await _members_with_points(session, second, 2)
    due = T0 + timedelta(days=31)
    runs: list[tuple[ExpiryRun, Resume | None]] = []
    resume: Resume | None = None
    while True:
        limit = RunLimit(members=2, start=resume)
        runs.append(
            (await expire_points(session, now=due, batch_size=2, limit=limit), limit.resume)
        )
        resume = limit.resume
        if resume is None:
            break
    # Two members a run (a run finishes the batch it is in), in brand then member id order;
    # each run says where the next starts, and the one that finds nothing left ends the chain.
    assert [(run.members, stop) for run, stop in runs] == [
        (2, Resume(first, ours[1])),
        (2, Resume(first, ours[3])),
        (3, Resume(second, theirs[1])),
        (0, None),
    ]
    for member_id in ours + theirs:
        assert (await account_of(session, member_id)).available == 0
        assert await ledger.ledger_matches(session, member_id)
    # Dated as one run would have dated them, whichever run wrote them.
    entries = await entries_of(session, ours[4])
    assert [(e.kind, e.points, e.occurred_at) for e in entries if e.kind == EntryKind.EXPIRE] == [
        (EntryKind.EXPIRE, -14, T0 + timedelta(days=30))
    ]
    assert Resume.from_json(Resume(first, ours[1]).to_json()) == Resume(first, ours[1])
    assert Resume.from_json(Resume(second, None).to_json()) == Resume(second, None)


@pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")
async def test_the_jobs_queue_their_next_run_until_every_member_is_done(
    committed_brand: uuid.UUID,
    engine_database: Database,
    redis: Redis,
    test_infra: WorkerInfrastructure,
    base_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each run commits on its own (no run holds every member locked), and the next is queued
    with the same `now`: five members at two a run are at least three runs of each job (more
    if brands other tests committed have work too)."""
    monkeypatch.setattr(job_runs, "MEMBERS_PER_RUN", 2)
    async with engine_database.unit_of_work() as session:
        ids = await _members_with_points(session, committed_brand, 5)
    remind_at = T0 + timedelta(days=25)
    await enqueue(test_infra.redis_url, REMIND_EXPIRING_POINTS.name, now=remind_at)
    assert await run_burst(engine_database, test_infra, [REWARDS], base_settings) >= 3
    await enqueue(test_infra.redis_url, EXPIRE_POINTS.name, now=T0 + timedelta(days=31))
    assert await run_burst(engine_database, test_infra, [REWARDS], base_settings) >= 3
    async with engine_database.unit_of_work() as session:
        for member_id in ids:
            assert (await account_of(session, member_id)).available == 0
            assert await ledger.ledger_matches(session, member_id)
        reminders = [
            data for kind, data in await rewards_events(session) if kind == "points.expiring_soon"
        ]
    assert sorted(r["member_id"] for r in reminders) == sorted(str(m) for m in ids)
