"""The bulk history loader with redemptions and returns: the same purchases, returns and
redemptions, once through the online service functions with the clock at each one's time and the
scheduled jobs run at their times in between, and once through `load_history`, leave the same
accounts, tiers, ledger, lots, purchases, returns, redemptions and events; and the redemptions
the online path refuses are the ones the load reports refused."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.kernel.errors import KinfolkError
from services.rewards.errors import (
    BirthdayGiftOnly,
    HistoryInFuture,
    LinesDoNotAddUp,
    PerkNotFound,
    PerkNotReplayable,
    PurchaseNotFound,
    ReturnBeforePurchase,
    ReturnExceedsPurchase,
    ReturnIdReused,
    ReturnLineNotInPurchase,
)
from services.rewards.history.schemas import (
    HistoricLine,
    HistoricPurchase,
    HistoricRedemption,
    HistoricReturn,
    HistoryReport,
)
from services.rewards.history.service import load_history
from services.rewards.ledger.service import ledger_matches
from services.rewards.models import LedgerEntry, Perk, Redemption
from services.rewards.perks import service as perks_service
from services.rewards.perks.schemas import PerkCreate
from services.rewards.purchases.schemas import PurchaseCreate, ReturnCreate
from services.rewards.purchases.service import record_purchase, record_return, release_due
from tests.conftest import BrandFixture, MemberFixture
from tests.rewards.conftest import MakeMember
from tests.rewards.history_helpers import ceil_to_5_minutes, member_state, run_with_daily_jobs
from tests.rewards.points_helpers import set_program
from tests.rewards.purchase_helpers import counts, make_tier

PROGRAM: dict[str, Any] = {
    "pending_days": 14,
    "expiry_policy": "days_after_earning",
    "expiry_days": 120,
    "expiry_reminder_days": 30,
    "qualification_window": "rolling_12_months",
}
# The simulator's kind of program: a redemption keeps a member active.
INACTIVITY: dict[str, Any] = {
    "pending_days": 14,
    "expiry_policy": "inactivity",
    "inactivity_months": 2,
    "expiry_reminder_days": 20,
    "qualification_window": "calendar_year",
}
Line = tuple[str, str | None, int, int]  # sku, category, quantity, amount_minor


@dataclass(frozen=True)
class Buy:
    member: int
    order_id: str
    days: float  # ago
    amount: int
    lines: tuple[Line, ...] = ()


@dataclass(frozen=True)
class Back:
    order_id: str
    return_id: str
    days: float
    amount: int | None = None
    lines: tuple[Line, ...] = ()


@dataclass(frozen=True)
class Redeem:
    member: int
    perk: str
    days: float
    key: str


SERUM: Line = ("SERUM-1", "skincare", 1, 18_000)
LIPS: Line = ("LIP-2", "makeup", 2, 12_000)
PLAN: list[Buy | Back | Redeem] = [
    # m0: redemptions spend the oldest lot first; what is left of it expires later.
    Buy(0, "M0-1", 190, 15_000),
    Buy(0, "M0-2", 170, 10_000),
    Redeem(0, "Tote", 150, "m0-a"),
    Redeem(0, "Tote", 50, "m0-b"),
    Redeem(0, "Tote", 40, "m0-c"),  # refused: nothing left
    # m1: too few points, the limit, a tier it does not hold, a perk not open yet.
    Buy(1, "M1-1", 60, 5_000),
    Redeem(1, "Tote", 30, "m1-a"),  # refused: 50 points
    Redeem(1, "Once", 29, "m1-b"),
    Redeem(1, "Once", 28, "m1-c"),  # refused: once per member
    Redeem(1, "Silver gift", 27, "m1-d"),  # refused: Bronze
    Redeem(1, "Late", 15, "m1-e"),  # refused: opens 10 days ago
    Redeem(1, "Late", 5, "m1-f"),
    # m2: a line returned while its points are pending, the other once they are available;
    # the spend falls below Silver's threshold, and the review moves the member down.
    Buy(2, "M2-1", 100, 30_000, (SERUM, LIPS)),
    Back("M2-1", "R2-1", 95, lines=(LIPS,)),
    Back("M2-1", "R2-2", 50, lines=(SERUM,)),
    Redeem(2, "Tote", 49, "m2-a"),  # refused: all reversed
    # m3: a Silver perk and another redeemed, then the whole order returned: the balance goes
    # below zero, and later purchases pay it back before a lot opens.
    Buy(3, "M3-1", 200, 25_000),
    Redeem(3, "Silver gift", 180, "m3-a"),
    Redeem(3, "Tote", 179, "m3-b"),
    Back("M3-1", "R3-1", 178, amount=25_000),
    Buy(3, "M3-2", 120, 10_000),
    Buy(3, "M3-3", 60, 10_000),
    Redeem(3, "Tote", 40, "m3-c"),  # refused: 50 points
    Redeem(3, "Once", 39, "m3-d"),
    # m4: no purchase at all.
    Redeem(4, "Tote", 10, "m4-a"),  # refused
]
REFUSED = [
    ("m0-c", "InsufficientPoints"),
    ("m1-a", "InsufficientPoints"),
    ("m1-c", "RedemptionLimitReached"),
    ("m1-d", "TierNotEligible"),
    ("m1-e", "PerkNotAvailable"),
    ("m2-a", "InsufficientPoints"),
    ("m3-c", "InsufficientPoints"),
    ("m4-a", "InsufficientPoints"),
]
MEMBERS = 5


def _at(now: datetime, days: float) -> datetime:
    # Off the jobs' minutes, so no happening shares an instant with a job run.
    return now - timedelta(days=days, hours=3, minutes=17, seconds=11)


async def _configure(
    session: AsyncSession,
    client: httpx.AsyncClient,
    brand: BrandFixture,
    now: datetime,
    settings: dict[str, Any] = PROGRAM,
) -> dict[str, Perk]:
    await set_program(session, brand.id, **settings)
    await make_tier(client, brand, "Bronze", 0, 0)
    silver = await make_tier(
        client, brand, "Silver", 1, 20_000, downgrade_rule="spend_drops", grace_days=10
    )
    catalog = [
        PerkCreate(name="Tote", category="gifts", kind="free_product", cost_points=100),
        PerkCreate(
            name="Silver gift",
            category="gifts",
            kind="free_product",
            cost_points=50,
            tier_ids=[uuid.UUID(silver["id"])],
        ),
        PerkCreate(
            name="Once", category="events", kind="custom", cost_points=30, per_member_limit=1
        ),
        PerkCreate(
            name="Late",
            category="gifts",
            kind="donation",
            cost_points=10,
            valid_from=now - timedelta(days=10),
        ),
    ]
    return {
        payload.name: await perks_service.create_perk(session, brand.id, payload)
        for payload in catalog
    }


async def _online(
    session: AsyncSession,
    brand: BrandFixture,
    members: list[MemberFixture],
    perks: dict[str, Perk],
    now: datetime,
    monkeypatch: pytest.MonkeyPatch,
    pending_days: int,
) -> list[tuple[str, str]]:
    """The plan through the service functions, the clock at each happening's time, the jobs
    at every scheduled time in between; returns the refused redemptions (key, error code)."""
    clock = [now]
    monkeypatch.setattr("services.rewards.purchases.service.utcnow", lambda: clock[0])
    refused: list[tuple[str, str]] = []
    timeline: list[tuple[datetime, int, Callable[[], Any]]] = []

    async def buy(happening: Buy, at: datetime) -> None:
        clock[0] = at
        lines = [
            {"sku": sku, "category": category, "quantity": quantity, "amount_minor": amount}
            for sku, category, quantity, amount in happening.lines
        ]
        payload = PurchaseCreate.model_validate(
            {
                "member_id": members[happening.member].id,
                "order_id": happening.order_id,
                "amount_minor": happening.amount,
                "currency": "EUR",
                "lines": lines,
                "occurred_at": at,
            }
        )
        await record_purchase(session, brand.id, payload, members=None)

    async def give_back(happening: Back, at: datetime) -> None:
        clock[0] = at
        payload = ReturnCreate.model_validate(
            {
                "order_id": happening.order_id,
                "return_id": happening.return_id,
                "amount_minor": happening.amount,
                "lines": [
                    {"sku": sku, "category": category, "quantity": quantity, "amount_minor": amount}
                    for sku, category, quantity, amount in happening.lines
                ],
                "occurred_at": at,
            }
        )
        await record_return(session, brand.id, payload)

    async def redeem(happening: Redeem, at: datetime) -> None:
        try:
            async with session.begin_nested():
                await perks_service.redeem(
                    session,
                    brand.id,
                    members[happening.member].id,
                    perks[happening.perk].id,
                    channel=perks_service.Channel.MEMBER,
                    now=at,
                    members=None,
                )
        except KinfolkError as refusal:
            refused.append((happening.key, refusal.code))

    for happening in PLAN:
        at = _at(now, happening.days)
        if isinstance(happening, Buy):
            timeline.append((at, 4, lambda h=happening, at=at: buy(h, at)))
            tick = ceil_to_5_minutes(at + timedelta(days=pending_days))
            timeline.append((tick, 0, lambda tick=tick: release_due(session, now=tick)))
        elif isinstance(happening, Back):
            timeline.append((at, 5, lambda h=happening, at=at: give_back(h, at)))
        else:
            timeline.append((at, 6, lambda h=happening, at=at: redeem(h, at)))
    await run_with_daily_jobs(session, timeline, now - timedelta(days=201), now)
    return refused


def _history(
    members: list[MemberFixture], perks: dict[str, Perk], now: datetime
) -> tuple[list[HistoricPurchase], list[HistoricRedemption], list[HistoricReturn]]:
    bought, redeemed, returned = [], [], []
    for happening in PLAN:
        at = _at(now, happening.days)
        if isinstance(happening, Buy):
            bought.append(
                HistoricPurchase(
                    member_id=members[happening.member].id,
                    order_id=happening.order_id,
                    occurred_at=at,
                    currency="EUR",
                    amount_minor=happening.amount,
                    lines=tuple(HistoricLine(*line) for line in happening.lines),
                )
            )
        elif isinstance(happening, Back):
            returned.append(
                HistoricReturn(
                    order_id=happening.order_id,
                    return_id=happening.return_id,
                    occurred_at=at,
                    amount_minor=happening.amount,
                    lines=tuple(HistoricLine(*line) for line in happening.lines),
                )
            )
        else:
            redeemed.append(
                HistoricRedemption(
                    member_id=members[happening.member].id,
                    perk_id=perks[happening.perk].id,
                    occurred_at=at,
                    key=happening.key,
                )
            )
    # In reverse: the loader orders each member's happenings itself.
    return bought[::-1], redeemed[::-1], returned[::-1]


@dataclass(frozen=True)
class SideBySide:
    report: HistoryReport
    refused_online: list[tuple[str, str]]
    bulk_members: list[MemberFixture]


async def _side_by_side(
    session: AsyncSession,
    client: httpx.AsyncClient,
    brands: tuple[BrandFixture, BrandFixture],
    make_member: MakeMember,
    monkeypatch: pytest.MonkeyPatch,
    settings: dict[str, Any],
) -> SideBySide:
    """The plan online in one brand, in bulk in the other; every member's state the same."""
    now = utcnow()
    online, bulk = brands
    online_perks = await _configure(session, client, online, now, settings)
    bulk_perks = await _configure(session, client, bulk, now, settings)
    online_members = [await make_member(f"m{i}", brand_fixture=online) for i in range(MEMBERS)]
    bulk_members = [await make_member(f"m{i}", brand_fixture=bulk) for i in range(MEMBERS)]

    refused_online = await _online(
        session, online, online_members, online_perks, now, monkeypatch, settings["pending_days"]
    )
    bought, redeemed, returned = _history(bulk_members, bulk_perks, now)
    report = await load_history(
        session, bulk.id, bought, redemptions=redeemed, returns=returned, now=now
    )

    assert sorted((r.key, r.reason) for r in report.refused) == sorted(refused_online)
    assert report.members == MEMBERS
    for online_member, bulk_member in zip(online_members, bulk_members, strict=True):
        expected = await member_state(session, online_member.id)
        got = await member_state(session, bulk_member.id)
        for part in expected:
            assert got[part] == expected[part], (online_member.external_id, part)
        assert await ledger_matches(session, bulk_member.id)
    return SideBySide(report, refused_online, bulk_members)


async def test_redemptions_and_returns_load_as_the_online_path_leaves_them(
    session: AsyncSession,
    client: httpx.AsyncClient,
    brand: BrandFixture,
    other_brand: BrandFixture,
    make_member: MakeMember,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loaded = await _side_by_side(
        session, client, (brand, other_brand), make_member, monkeypatch, PROGRAM
    )
    report, bulk_members = loaded.report, loaded.bulk_members

    assert sorted(loaded.refused_online) == REFUSED
    assert report.refused_by_reason() == {
        "InsufficientPoints": 5,
        "RedemptionLimitReached": 1,
        "TierNotEligible": 1,
        "PerkNotAvailable": 1,
    }
    assert (report.purchases, report.returns, report.redemptions) == (7, 3, 7)
    assert report.points_redeemed == 100 + 100 + 30 + 10 + 50 + 100 + 30
    assert report.points_reversed == 120 + 180 + 250

    # The plan exercises what it claims to, in exact numbers.
    states = [await member_state(session, m.id) for m in bulk_members]
    assert [s["account"][:2] for s in states] == [(0, 0), (10, 0), (0, 0), (20, 0), (0, 0)]
    m0_entries = [(e[0], e[1], e[2]) for e in states[0]["entries"]]
    assert ("expire", "available", -50) in m0_entries  # what the redemption left of lot A
    assert m0_entries.count(("redeem", "available", -100)) == 2
    m2_reversals = [(e[1], e[2]) for e in states[2]["entries"] if e[0] == "reverse"]
    assert m2_reversals == [("pending", -120), ("available", -180)]
    assert [(c[0], c[1]) for c in states[2]["tier_changes"]] == [
        (None, "Silver"),
        ("Silver", "Bronze"),
    ]
    m3_balances = [
        (event[2]["kind"], event[2]["available"])
        for event in states[3]["events"]
        if event[0].startswith("points.")
    ]
    assert ("reverse", -150) in m3_balances  # the points were spent: below zero
    assert ("release", -50) in m3_balances  # the next release pays it back, no lot
    assert [lot[:2] for lot in states[3]["lots"]] == [(250, 0), (50, 20)]
    # Down at the review after the return; up again once 200.00 EUR are spent after it.
    assert [(c[0], c[1]) for c in states[3]["tier_changes"]] == [
        (None, "Silver"),
        ("Silver", "Bronze"),
        ("Bronze", "Silver"),
    ]


async def _redemption_count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Redemption)) or 0)


async def test_bad_redemptions_and_returns_are_refused_and_nothing_is_written(
    session: AsyncSession,
    client: httpx.AsyncClient,
    brand: BrandFixture,
    make_member: MakeMember,
) -> None:
    now = utcnow()
    perks = await _configure(session, client, brand, now)
    spoilt: dict[str, dict[str, Any]] = {
        "Stocked": {"inventory_total": 10},
        "Code": {"kind": "discount_code"},
        "Birthday": {"is_birthday_gift": True},
        "Retired": {"active": False},
    }
    for name, changes in spoilt.items():
        body = {"name": name, "category": "gifts", "kind": "free_product", "cost_points": 10}
        perks[name] = await perks_service.create_perk(
            session, brand.id, PerkCreate.model_validate({**body, **changes})
        )
    members = [await make_member(f"b{i}", brand_fixture=brand) for i in range(3)]
    # A return recorded live: its id is taken in the brand.
    await record_purchase(
        session,
        brand.id,
        PurchaseCreate(
            member_id=members[2].id,
            order_id="LIVE-1",
            amount_minor=1_000,
            currency="EUR",
            occurred_at=now - timedelta(days=2),
        ),
        members=None,
    )
    await record_return(
        session,
        brand.id,
        ReturnCreate(
            order_id="LIVE-1",
            return_id="LIVE-R",
            amount_minor=500,
            occurred_at=now - timedelta(days=1),
        ),
    )
    bought = HistoricPurchase(
        members[0].id,
        "A-1",
        now - timedelta(days=20),
        "EUR",
        10_000,
        (HistoricLine(*SERUM[:3], 10_000),),
    )
    good_redemption = HistoricRedemption(
        members[1].id, perks["Tote"].id, now - timedelta(days=3), "k-1"
    )

    def redeeming(perk: str | uuid.UUID, **changes: Any) -> HistoricRedemption:
        perk_id = perk if isinstance(perk, uuid.UUID) else perks[perk].id
        values: dict[str, Any] = {
            "member_id": members[0].id,
            "perk_id": perk_id,
            "occurred_at": now - timedelta(days=1),
            "key": "k-2",
        }
        values.update(changes)
        return HistoricRedemption(**values)

    def giving_back(**changes: Any) -> HistoricReturn:
        values: dict[str, Any] = {
            "order_id": "A-1",
            "return_id": "R-1",
            "occurred_at": now - timedelta(days=10),
            "amount_minor": 2_000,
        }
        values.update(changes)
        return HistoricReturn(**values)

    cases: list[tuple[type[Exception], list[HistoricRedemption], list[HistoricReturn]]] = [
        (PerkNotFound, [redeeming(uuid.uuid4())], []),
        (PerkNotFound, [redeeming("Retired")], []),
        (PerkNotReplayable, [redeeming("Stocked")], []),
        (PerkNotReplayable, [redeeming("Code")], []),
        (BirthdayGiftOnly, [redeeming("Birthday")], []),
        (HistoryInFuture, [redeeming("Tote", occurred_at=now + timedelta(hours=1))], []),
        (ValueError, [redeeming("Tote", key="k-1")], []),  # the key twice
        (ValueError, [redeeming("Tote", occurred_at=now.replace(tzinfo=None))], []),
        (PurchaseNotFound, [], [giving_back(order_id="LIVE-1")]),
        (ReturnBeforePurchase, [], [giving_back(occurred_at=now - timedelta(days=21))]),
        (
            ReturnExceedsPurchase,
            [],
            [giving_back(), giving_back(return_id="R-2", amount_minor=8_001)],
        ),
        (
            ReturnLineNotInPurchase,
            [],
            [giving_back(amount_minor=None, lines=(HistoricLine("X", None, 1, 100),))],
        ),
        (LinesDoNotAddUp, [], [giving_back(lines=(HistoricLine(*SERUM[:3], 100),))]),
        (ReturnIdReused, [], [giving_back(), giving_back(return_id="R-1", amount_minor=100)]),
        (ReturnIdReused, [], [giving_back(return_id="LIVE-R")]),
        (
            ValueError,
            [],
            [giving_back(occurred_at=(now - timedelta(days=10)).replace(tzinfo=None))],
        ),
        (HistoryInFuture, [], [giving_back(occurred_at=now + timedelta(hours=1))]),
    ]
    before = (await counts(session), await _redemption_count(session))
    for error, redemptions, returns in cases:
        with pytest.raises(error):
            await load_history(
                session,
                brand.id,
                [bought],
                redemptions=[good_redemption, *redemptions],
                returns=returns,
            )
        assert (await counts(session), await _redemption_count(session)) == before, error
    # The same history without the spoilt part loads.
    report = await load_history(
        session, brand.id, [bought], redemptions=[good_redemption], returns=[giving_back()]
    )
    assert (report.purchases, report.returns, report.redemptions) == (1, 1, 0)
    assert [(r.key, r.reason) for r in report.refused] == [("k-1", "InsufficientPoints")]
    reversed_points = await session.scalar(
        select(LedgerEntry.points).where(LedgerEntry.source_id == "R-1")
    )
    assert reversed_points == -20


async def test_under_inactivity_expiry_a_redemption_keeps_the_member_active(
    session: AsyncSession,
    client: httpx.AsyncClient,
    brand: BrandFixture,
    other_brand: BrandFixture,
    make_member: MakeMember,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loaded = await _side_by_side(
        session, client, (brand, other_brand), make_member, monkeypatch, INACTIVITY
    )
    # m0 redeemed 150 days ago, then nothing: two months later the rest expired, reminded first.
    m0 = await member_state(session, loaded.bulk_members[0].id)
    assert [(e[0], e[2]) for e in m0["entries"] if e[0] in ("redeem", "expire")] == [
        ("redeem", -100),
        ("expire", -150),
    ]
    assert "points.expiring_soon" in {event[0] for event in m0["events"]}
    assert ("m0-b", "InsufficientPoints") in loaded.refused_online
