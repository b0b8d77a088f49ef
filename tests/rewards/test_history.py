"""The bulk history loader: the same purchases, once through `POST /rewards/v1/purchases` with the
clock at each purchase's time and the scheduled jobs run at their times in between, and once
through `load_history`, leave the same accounts, tiers, ledger, lots, purchases and events."""

from __future__ import annotations

import gc
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.kernel.collector import collector_paused
from services.rewards.errors import (
    CurrencyMismatch,
    HistoryNotEmpty,
    LinesDoNotAddUp,
    MemberNotFound,
    OrderIdReused,
    PurchaseInFuture,
)
from services.rewards.history.schemas import HistoricLine, HistoricPurchase
from services.rewards.history.service import _Lot, _Replay, load_history
from services.rewards.ledger.service import ledger_matches
from services.rewards.models import (
    OUTBOX,
    Account,
    Lot,
    Purchase,
    TierChange,
)
from services.rewards.purchases.service import release_due
from tests.conftest import BrandFixture, MemberFixture
from tests.rewards.conftest import MakeMember
from tests.rewards.history_helpers import ceil_to_5_minutes, member_state, run_with_daily_jobs
from tests.rewards.points_helpers import set_program
from tests.rewards.purchase_helpers import (
    buy,
    counts,
    make_campaign,
    make_rule,
    make_tier,
    purchase,
)

MEMBERS = 5
SPAN_DAYS = 400  # always crosses a new year


@dataclass(frozen=True)
class Planned:
    member: int
    order_id: str
    occurred_at: datetime
    amount_minor: int
    lines: tuple[tuple[str, str | None, int, int], ...]  # sku, category, quantity, amount


def _lines(rng: random.Random, amount: int) -> tuple[tuple[str, str | None, int, int], ...]:
    shape = rng.randrange(4)
    if shape == 0:
        return ()
    if shape == 1:
        return (("SERUM-1", "skincare", 1, amount),)
    first = amount // 3
    return (("LIP-2", "makeup", 2, first), ("CREAM-3", "skincare", 1, amount - first))


def _plan(now: datetime) -> list[Planned]:
    """~50 purchases of 5 members over 400 days: a big spender who stops, a steady one, one
    who bought long ago only, one who buys lately (points still pending), one in the campaigns."""
    rng = random.Random(20240601)
    shapes = [
        (0, 12, 400, 250, 8_000, 16_000),
        (1, 15, 395, 5, 2_000, 6_000),
        (2, 3, 380, 300, 7_000, 11_000),
        (3, 10, 60, 0.2, 1_500, 12_000),
        (4, 10, 230, 40, 2_500, 20_000),
    ]
    planned: list[Planned] = []
    for member, count, oldest, newest, low, high in shapes:
        for index in range(count):
            days = rng.uniform(newest, oldest)
            at = now - timedelta(days=days, seconds=rng.randrange(1, 59))
            amount = rng.randrange(low, high)
            planned.append(Planned(member, f"M{member}-{index}", at, amount, _lines(rng, amount)))
    return sorted(planned, key=lambda p: p.occurred_at)


PROGRAMS: dict[str, dict[str, Any]] = {
    "pending-lots-calendar": {
        "pending_days": 14,
        "expiry_policy": "days_after_earning",
        "expiry_days": 120,
        "expiry_reminder_days": 30,
        "qualification_window": "calendar_year",
    },
    "inactivity-rolling": {
        "points_per_unit": 2,
        "expiry_policy": "inactivity",
        "inactivity_months": 2,
        "expiry_reminder_days": 20,
        "qualification_window": "rolling_12_months",
    },
    "none-rolling-pending": {
        "pending_days": 7,
        "qualification_window": "rolling_12_months",
    },
}


async def _configure(
    session: AsyncSession,
    client: httpx.AsyncClient,
    brand: BrandFixture,
    settings: dict[str, Any],
    now: datetime,
) -> None:
    await set_program(session, brand.id, **settings)
    await make_tier(client, brand, "Bronze", 0, 0)
    silver = await make_tier(
        client,
        brand,
        "Silver",
        1,
        20_000,
        multiplier=1.25,
        downgrade_rule="spend_drops",
        grace_days=10,
    )
    gold = await make_tier(
        client,
        brand,
        "Gold",
        2,
        60_000,
        multiplier=1.5,
        downgrade_rule="end_of_window",
        grace_days=20,
    )
    await make_rule(
        client, brand, kind="category_multiplier", name="Skin", category="skincare", multiplier=2
    )
    await make_rule(client, brand, kind="sku_multiplier", name="Serum", sku="SERUM-1", multiplier=3)
    await make_campaign(
        client,
        brand,
        name="Spring double",
        starts_at=(now - timedelta(days=220)).isoformat(),
        ends_at=(now - timedelta(days=160)).isoformat(),
        multiplier=2,
        bonus_points=25,
    )
    await make_campaign(
        client,
        brand,
        name="Members' skincare",
        starts_at=(now - timedelta(days=120)).isoformat(),
        ends_at=(now - timedelta(days=30)).isoformat(),
        audience="tiers",
        tier_ids=[silver["id"], gold["id"]],
        categories=["skincare"],
        bonus_points=40,
    )


async def _through_the_api(
    session: AsyncSession,
    client: httpx.AsyncClient,
    brand: BrandFixture,
    members: list[MemberFixture],
    plan: list[Planned],
    now: datetime,
    settings: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each purchase posted with the clock at its time; the jobs run at every scheduled time in
    between (releases at the 5-minute tick after each window, the daily jobs every day)."""
    clock = [now]
    monkeypatch.setattr("services.rewards.purchases.service.utcnow", lambda: clock[0])
    timeline: list[tuple[datetime, int, Callable[[], Any]]] = []
    pending = timedelta(days=settings.get("pending_days", 0))
    for planned in plan:
        body = purchase(
            members[planned.member],
            planned.order_id,
            planned.amount_minor,
            lines=[
                {"sku": sku, "category": category, "quantity": quantity, "amount_minor": amount}
                for sku, category, quantity, amount in planned.lines
            ],
            occurred_at=planned.occurred_at,
        )

        async def post(body: dict[str, Any] = body, at: datetime = planned.occurred_at) -> None:
            clock[0] = at
            await buy(client, brand, body)

        timeline.append((planned.occurred_at, 4, post))
        if pending:
            tick = ceil_to_5_minutes(planned.occurred_at + pending)
            timeline.append((tick, 0, lambda tick=tick: release_due(session, now=tick)))
    await run_with_daily_jobs(session, timeline, plan[0].occurred_at, now)


def _historic(plan: list[Planned], members: list[MemberFixture]) -> list[HistoricPurchase]:
    return [
        HistoricPurchase(
            member_id=members[p.member].id,
            order_id=p.order_id,
            occurred_at=p.occurred_at,
            currency="EUR",
            amount_minor=p.amount_minor,
            lines=tuple(HistoricLine(*line) for line in p.lines),
        )
        for p in plan
    ]


@pytest.mark.parametrize("variant", sorted(PROGRAMS))
async def test_a_bulk_load_leaves_what_the_api_and_its_jobs_leave(
    variant: str,
    session: AsyncSession,
    client: httpx.AsyncClient,
    brand: BrandFixture,
    other_brand: BrandFixture,
    make_member: MakeMember,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = utcnow()
    settings = PROGRAMS[variant]
    plan = _plan(now)
    assert len(plan) == 50
    online, bulk = brand, other_brand
    for target in (online, bulk):
        await _configure(session, client, target, settings, now)
    online_members = [await make_member(f"m{i}", brand_fixture=online) for i in range(MEMBERS)]
    bulk_members = [await make_member(f"m{i}", brand_fixture=bulk) for i in range(MEMBERS)]

    await _through_the_api(
        session, client, online, online_members, plan, now, settings, monkeypatch
    )
    report = await load_history(session, bulk.id, _historic(plan, bulk_members), now=now)

    assert report.purchases == 50
    assert report.members == MEMBERS
    kinds_seen: set[str] = set()
    for online_member, bulk_member in zip(online_members, bulk_members, strict=True):
        expected = await member_state(session, online_member.id)
        got = await member_state(session, bulk_member.id)
        for part in expected:
            assert got[part] == expected[part], (variant, online_member.external_id, part)
        kinds_seen.update(event[0] for event in got["events"])
        assert await ledger_matches(session, bulk_member.id)
    # The data exercises what it claims to: upgrades, and the variant's jobs.
    assert {"purchase.recorded", "tier.changed"} <= kinds_seen
    if settings.get("pending_days"):
        assert "points.pending" in kinds_seen
        assert "points.adjusted" in kinds_seen
    if settings.get("expiry_policy", "none") != "none":
        assert {"points.expired", "points.expiring_soon"} <= kinds_seen
    total_changes = (
        await session.scalars(select(TierChange).where(TierChange.brand_id == bulk.id))
    ).all()
    assert report.tier_changes == len(total_changes)
    reasons = " ".join(c.reason for c in total_changes)
    assert "Tier review" in reasons  # a downgrade by the review was replayed


async def _member_pair(make_member: MakeMember, brand: BrandFixture) -> list[MemberFixture]:
    return [await make_member(f"h{i}", brand_fixture=brand) for i in range(2)]


def _simple(
    member: MemberFixture, order_id: str, days_ago: float, amount: int = 5_000
) -> HistoricPurchase:
    return HistoricPurchase(
        member_id=member.id,
        order_id=order_id,
        occurred_at=utcnow() - timedelta(days=days_ago),
        currency="EUR",
        amount_minor=amount,
        lines=(),
    )


async def _expiring_pair_history(
    session: AsyncSession,
    brand: BrandFixture,
    make_member: MakeMember,
    days_ago: tuple[int, ...],
) -> tuple[list[MemberFixture], list[HistoricPurchase]]:
    """A program with 10 pending days and lots expiring 60 days after earning, two members,
    and a simple purchase of each for every entry of `days_ago`."""
    await set_program(
        session, brand.id, pending_days=10, expiry_policy="days_after_earning", expiry_days=60
    )
    members = await _member_pair(make_member, brand)
    history = [
        _simple(member, f"O-{index}-{n}", days)
        for index, member in enumerate(members)
        for n, days in enumerate(days_ago)
    ]
    return members, history


async def test_balances_equal_the_sums_of_entries_after_a_bulk_load(
    session: AsyncSession, brand: BrandFixture, make_member: MakeMember
) -> None:
    members, history = await _expiring_pair_history(
        session, brand, make_member, (200, 120, 65, 30, 3)
    )
    report = await load_history(session, brand.id, history)
    assert report.purchases == 10
    assert report.points_expired > 0
    for member in members:
        assert await ledger_matches(session, member.id)
        account = await session.get(Account, member.id, populate_existing=True)
        assert account is not None
        open_lots = await session.scalars(
            select(Lot.remaining).where(Lot.member_id == member.id, Lot.remaining > 0)
        )
        assert sum(open_lots.all()) == account.available
        assert account.pending == 50  # the purchase 3 days ago, still in its window


async def test_a_load_leaves_nothing_for_the_cyclic_collector(
    session: AsyncSession, brand: BrandFixture, make_member: MakeMember
) -> None:
    """Bulk loads pause the collector (`collector_paused`): what a member's replay reaches (its
    lots, and through them the batch's rows and events) must go as soon as the replay ends."""
    _, history = await _expiring_pair_history(session, brand, make_member, (200, 65, 3))
    gc.collect()
    with collector_paused():
        report = await load_history(session, brand.id, history)
        left = [o for o in gc.get_objects() if isinstance(o, (_Replay, _Lot))]

    assert report.purchases == 6
    assert left == []


@pytest.mark.parametrize(
    ("spoil", "error"),
    [
        ("currency", CurrencyMismatch),
        ("future", PurchaseInFuture),
        ("duplicate", OrderIdReused),
        ("unknown member", MemberNotFound),
        ("lines", LinesDoNotAddUp),
        ("naive", ValueError),
    ],
)
async def test_bad_input_is_refused_and_nothing_is_written(
    spoil: str,
    error: type[Exception],
    session: AsyncSession,
    brand: BrandFixture,
    make_member: MakeMember,
    program: Any,
) -> None:
    members = await _member_pair(make_member, brand)
    history = [_simple(members[0], "A-1", 20), _simple(members[1], "B-1", 10)]
    bad = history[1]
    spoilt = {
        "currency": HistoricPurchase(bad.member_id, "B-2", bad.occurred_at, "USD", 100, ()),
        "future": HistoricPurchase(
            bad.member_id, "B-2", utcnow() + timedelta(hours=1), "EUR", 100, ()
        ),
        "duplicate": HistoricPurchase(bad.member_id, "A-1", bad.occurred_at, "EUR", 100, ()),
        "unknown member": HistoricPurchase(uuid.uuid4(), "B-2", bad.occurred_at, "EUR", 100, ()),
        "lines": HistoricPurchase(
            bad.member_id, "B-2", bad.occurred_at, "EUR", 100, (HistoricLine("X", None, 1, 99),)
        ),
        "naive": HistoricPurchase(
            bad.member_id, "B-2", bad.occurred_at.replace(tzinfo=None), "EUR", 100, ()
        ),
    }[spoil]
    before = await counts(session)
    with pytest.raises(error):
        await load_history(session, brand.id, [*history, spoilt])
    assert await counts(session) == before


async def test_a_second_load_with_the_same_order_ids_is_refused(
    session: AsyncSession, brand: BrandFixture, make_member: MakeMember, program: Any
) -> None:
    members = await _member_pair(make_member, brand)
    await load_history(session, brand.id, [_simple(members[0], "A-1", 20)])
    before = await counts(session)
    with pytest.raises(OrderIdReused):
        await load_history(session, brand.id, [_simple(members[1], "A-1", 10)])
    # The same member again (a batch must hold all of a member's purchases): refused too.
    with pytest.raises(HistoryNotEmpty):
        await load_history(session, brand.id, [_simple(members[0], "A-2", 10)])
    assert await counts(session) == before


async def test_members_with_live_activity_are_refused(
    session: AsyncSession,
    client: httpx.AsyncClient,
    brand: BrandFixture,
    make_member: MakeMember,
    program: Any,
) -> None:
    member = (await _member_pair(make_member, brand))[0]
    await buy(client, brand, purchase(member, "LIVE-1", 1_000))
    with pytest.raises(HistoryNotEmpty):
        await load_history(session, brand.id, [_simple(member, "OLD-1", 30)])


async def test_times_in_other_zones_are_stored_in_utc(
    session: AsyncSession, brand: BrandFixture, make_member: MakeMember, program: Any
) -> None:
    member = (await _member_pair(make_member, brand))[0]
    at = (utcnow() - timedelta(days=3)).astimezone(timezone(timedelta(hours=2)))
    await load_history(
        session, brand.id, [HistoricPurchase(member.id, "Z-1", at, "EUR", 1_000, ())]
    )
    stored = await session.scalar(select(Purchase.occurred_at).where(Purchase.order_id == "Z-1"))
    assert stored == at
    assert stored is not None
    assert stored.utcoffset() == timedelta(0)
    event = await session.scalar(
        select(OUTBOX.table.c.payload).where(OUTBOX.table.c.type == "purchase.recorded")
    )
    assert event is not None
    assert event["occurred_at"].endswith("Z")
