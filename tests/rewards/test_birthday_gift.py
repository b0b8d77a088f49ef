"""The birthday perk: granted by a daily job in the member's birthday month, once a year."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.rewards.ledger.service import ledger_matches
from services.rewards.models import BirthdayGift, LedgerEntry, Program, Redemption
from services.rewards.module import REWARDS
from services.rewards.perks.tasks import BIRTHDAY_GIFTS_JOB, grant_birthday_gifts
from tests.conftest import BrandFixture, MemberFixture
from tests.rewards.conftest import MakeMember, rewards_events, sync_members
from tests.rewards.perk_helpers import (
    balance,
    create_perk,
    error,
    give,
    make_tier,
    redeem,
    remaining,
    set_tier,
)

JUNE_10 = datetime.fromisoformat("2030-06-10T06:05:00+00:00")


async def gifts(session: AsyncSession) -> list[tuple[uuid.UUID, int, uuid.UUID]]:
    """(member, year, perk) of every gift granted, oldest first."""
    rows = await session.execute(
        select(BirthdayGift.member_id, BirthdayGift.year, Redemption.perk_id)
        .join(Redemption, Redemption.id == BirthdayGift.redemption_id)
        .order_by(BirthdayGift.granted_at, BirthdayGift.member_id)
    )
    return [(r[0], r[1], r[2]) for r in rows]


async def birthday_perk(client: httpx.AsyncClient, brand: BrandFixture, **changes: Any) -> str:
    fields: dict[str, Any] = {
        "name": "Birthday mini set",
        "category": "birthday",
        "cost_points": 500,
        "is_birthday_gift": True,
        "inventory_total": 10,
        **changes,
    }
    return str((await create_perk(client, brand, **fields))["id"])


async def test_the_gift_comes_in_the_birthday_month_once_a_year_for_free(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,  # born 1990-06-15
    program: Program,
) -> None:
    perk_id = await birthday_perk(client, brand)
    await give(session, program, member.id, 40)
    entries_before = await session.scalar(select(func.count()).select_from(LedgerEntry))

    assert await grant_birthday_gifts(session, now=JUNE_10.replace(month=5)) == 0
    assert await grant_birthday_gifts(session, now=JUNE_10) == 1
    assert await gifts(session) == [(member.id, 2030, uuid.UUID(perk_id))]
    [redemption] = (await session.scalars(select(Redemption))).all()
    assert (redemption.points, redemption.status.value, redemption.created_at) == (
        0,
        "completed",
        JUNE_10,
    )
    assert await balance(session, member.id) == 40
    assert await session.scalar(select(func.count()).select_from(LedgerEntry)) == entries_before
    assert await ledger_matches(session, member.id)
    assert await remaining(session, perk_id) == 9
    redemptions = ("perk.redeemed", "perk.redemption_cancelled")
    events = [(t, d) for t, d in await rewards_events(session) if t in redemptions]
    assert events == [
        (
            "perk.redeemed",
            {
                "member_id": str(member.id),
                "redemption_id": str(redemption.id),
                "perk_id": perk_id,
                "perk_name": "Birthday mini set",
                "category": "birthday",
                "points": 0,
                "drop_id": None,
            },
        )
    ]

    assert await grant_birthday_gifts(session, now=JUNE_10.replace(day=30)) == 0
    assert await grant_birthday_gifts(session, now=JUNE_10.replace(month=7)) == 0
    assert await grant_birthday_gifts(session, now=JUNE_10.replace(year=2031, day=1)) == 1
    assert [(m, y) for m, y, _ in await gifts(session)] == [(member.id, 2030), (member.id, 2031)]

    mine = await client.get("/rewards/v1/me/redemptions", headers=member.headers)
    assert [(r["points"], r["perk_id"]) for r in mine.json()["items"]] == [(0, perk_id)] * 2
    # A gift is granted, never redeemed, and the member cannot cancel it.
    assert error(await redeem(client, member, perk_id)) == (409, "BirthdayGiftOnly")
    cancel = await client.post(
        f"/rewards/v1/me/redemptions/{redemption.id}/cancel", headers=member.headers
    )
    assert error(cancel) == (409, "NotCancellable")


async def test_no_birthday_erased_or_suspended_members_get_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    make_member: MakeMember,
    program: Program,
) -> None:
    await birthday_perk(client, brand)
    await make_member("no-birthday")
    erased = await make_member("erased", birthday="1985-06-02")
    suspended = await make_member("suspended", birthday="1985-06-03")
    leap = await make_member("leap", birthday="2000-02-29")
    await client.post(f"/members/v1/members/{erased.id}/erase", headers=brand.headers)
    await client.post(f"/members/v1/members/{suspended.id}/suspend", headers=brand.headers)
    await sync_members(session)

    assert await grant_birthday_gifts(session, now=JUNE_10) == 0
    assert await gifts(session) == []
    # A 29 February birthday counts in February, leap year or not.
    assert await grant_birthday_gifts(session, now=JUNE_10.replace(month=2, day=1)) == 1
    assert [m for m, _, _ in await gifts(session)] == [leap.id]


async def test_the_most_valuable_gift_the_tier_allows_and_that_is_in_stock(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    make_member: MakeMember,
    program: Program,
) -> None:
    gold = await make_tier(session, brand.id, "Gold", 1)
    silver = await make_tier(session, brand.id, "Silver", 0)
    premium = await birthday_perk(
        client, brand, name="Gold gift", cost_points=2_000, tier_ids=[str(gold)], inventory_total=1
    )
    basic = await birthday_perk(client, brand, name="Gift", cost_points=300)
    await birthday_perk(client, brand, name="Retired", cost_points=9_000, active=False)
    await birthday_perk(
        client,
        brand,
        name="Next year",
        cost_points=8_000,
        valid_from="2031-01-01T00:00:00Z",
    )
    await create_perk(client, brand, name="Not a gift", cost_points=10_000)
    first_gold = await make_member("g1", birthday="1980-06-20")
    second_gold = await make_member("g2", birthday="1981-06-21")
    silver_member = await make_member("s1", birthday="1982-06-22")
    for someone, tier in ((first_gold, gold), (second_gold, gold), (silver_member, silver)):
        await set_tier(session, someone.id, tier)

    assert await grant_birthday_gifts(session, now=JUNE_10) == 3
    granted = {m: p for m, _, p in await gifts(session)}
    # Members are served in id order: the first gold member takes the only premium unit.
    assert granted == {
        first_gold.id: uuid.UUID(premium),
        second_gold.id: uuid.UUID(basic),
        silver_member.id: uuid.UUID(basic),
    }
    assert (await remaining(session, premium), await remaining(session, basic)) == (0, 8)


async def test_a_cancelled_gift_is_not_granted_again_that_year_and_the_job_is_scheduled(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    program: Program,
) -> None:
    perk_id = await birthday_perk(client, brand)
    assert await grant_birthday_gifts(session, now=JUNE_10) == 1
    [redemption_id] = (await session.scalars(select(Redemption.id))).all()
    cancelled = await client.post(
        f"/rewards/v1/redemptions/{redemption_id}/cancel", headers=brand.headers
    )
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
    assert await remaining(session, perk_id) == 10
    assert await balance(session, member.id) == 0
    assert await grant_birthday_gifts(session, now=JUNE_10.replace(day=11)) == 0

    assert BIRTHDAY_GIFTS_JOB in REWARDS.jobs
    assert BIRTHDAY_GIFTS_JOB.cron is not None
    assert (BIRTHDAY_GIFTS_JOB.cron.hour, BIRTHDAY_GIFTS_JOB.cron.minute) == (6, 5)
