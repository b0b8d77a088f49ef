"""Tiers: the ladder and its validation; upgrades in the purchase's transaction; the status a member
sees; downgrades only in the daily review, by each tier's rule.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.rewards.job_runs import Resume, RunLimit
from services.rewards.models import Program, TierChange
from services.rewards.module import REWARDS
from services.rewards.tiers.service import add_years, review_tiers
from tests.conftest import BrandFixture, MemberFixture
from tests.rewards.conftest import MakeMember, rewards_events
from tests.rewards.points_helpers import set_program
from tests.rewards.purchase_helpers import (
    buy,
    counts,
    give_back,
    make_tier,
    purchase,
    returned,
    tier_of,
)


def _new_year(year: int) -> datetime:
    return datetime(year, 1, 1, tzinfo=UTC)


async def _ladder(client: httpx.AsyncClient, brand: BrandFixture, **gold: Any) -> dict[str, Any]:
    return {
        "insider": await make_tier(client, brand, "Insider", 0, 0),
        "vib": await make_tier(client, brand, "VIB", 1, 20_000, multiplier=1.25),
        "gold": await make_tier(
            client, brand, "Gold", 2, 50_000, multiplier=1.5, priority_booking=True, **gold
        ),
    }


async def _changes(session: AsyncSession, member_id: uuid.UUID) -> list[TierChange]:
    statement = (
        select(TierChange).where(TierChange.member_id == member_id).order_by(TierChange.changed_at)
    )
    return list((await session.scalars(statement)).all())


# --- The ladder -----------------------------------------------------------------------------


async def test_tiers_are_created_listed_changed_and_deleted(
    client: httpx.AsyncClient, brand: BrandFixture, program: Any
) -> None:
    gold = await make_tier(
        client,
        brand,
        "Gold",
        2,
        50_000,
        multiplier="1.5",
        priority_booking=True,
        benefits=["Free shipping", "Birthday gift"],
        downgrade_rule="spend_drops",
        grace_days=30,
    )
    assert (gold["multiplier"], gold["benefits"], gold["downgrade_rule"]) == (
        1.5,
        ["Free shipping", "Birthday gift"],
        "spend_drops",
    )
    insider = await make_tier(client, brand, "Insider", 0, 0)
    assert (insider["multiplier"], insider["downgrade_rule"], insider["grace_days"]) == (
        1,
        "end_of_window",
        0,
    )
    listed = await client.get("/rewards/v1/tiers", headers=brand.headers)
    assert [t["name"] for t in listed.json()["items"]] == ["Insider", "Gold"]
    changed = await client.patch(
        f"/rewards/v1/tiers/{gold['id']}",
        json={"threshold_minor": 40_000, "name": "Rouge"},
        headers=brand.headers,
    )
    assert (changed.json()["name"], changed.json()["threshold_minor"]) == ("Rouge", 40_000)
    got = await client.get(f"/rewards/v1/tiers/{gold['id']}", headers=brand.headers)
    assert got.json() == changed.json()
    assert (
        await client.delete(f"/rewards/v1/tiers/{gold['id']}", headers=brand.headers)
    ).status_code == 204
    gone = await client.get(f"/rewards/v1/tiers/{gold['id']}", headers=brand.headers)
    assert (gone.status_code, gone.json()["error"]) == (404, "TierNotFound")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"name": "Other", "rank": 1, "threshold_minor": 30_000}, 409, "DuplicateTierRank"),
        ({"name": "VIB", "rank": 3, "threshold_minor": 90_000}, 409, "DuplicateTierName"),
        (
            {"name": "Between", "rank": 2, "threshold_minor": 10_000},
            422,
            "TierThresholdsOutOfOrder",
        ),
        ({"name": "Top", "rank": 5, "threshold_minor": 20_000}, 422, "TierThresholdsOutOfOrder"),
        (
            {"name": "X", "rank": 3, "threshold_minor": 90_000, "multiplier": 0},
            422,
            "ValidationError",
        ),
        (
            {"name": "X", "rank": 3, "threshold_minor": 90_000, "multiplier": -1},
            422,
            "ValidationError",
        ),
        ({"name": "X", "rank": 3, "threshold_minor": -1}, 422, "ValidationError"),
        ({"name": "X", "rank": -1, "threshold_minor": 90_000}, 422, "ValidationError"),
        ({"name": "X", "rank": 3, "threshold_minor": "9"}, 422, "ValidationError"),
        (
            {"name": "X", "rank": 3, "threshold_minor": 90_000, "grace_days": -1},
            422,
            "ValidationError",
        ),
        (
            {"name": "X", "rank": 3, "threshold_minor": 90_000, "downgrade_rule": "sometimes"},
            422,
            "ValidationError",
        ),
        ({"name": "", "rank": 3, "threshold_minor": 90_000}, 422, "ValidationError"),
    ],
)
async def test_bad_tiers_are_refused_and_nothing_is_written(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    program: Any,
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    await make_tier(client, brand, "Insider", 0, 0)
    await make_tier(client, brand, "VIB", 1, 20_000)
    before = await counts(session)
    response = await client.post("/rewards/v1/tiers", json=body, headers=brand.headers)
    assert response.status_code == status, response.text
    assert response.json()["error"] == code
    assert response.json()["detail"]
    assert await counts(session) == before


async def test_a_change_that_breaks_the_ladder_is_refused_and_nothing_changes(
    client: httpx.AsyncClient, brand: BrandFixture, program: Any
) -> None:
    await make_tier(client, brand, "Insider", 0, 0)
    vib = await make_tier(client, brand, "VIB", 1, 20_000)
    await make_tier(client, brand, "Gold", 2, 50_000)
    for change, code in (
        ({"threshold_minor": 60_000}, "TierThresholdsOutOfOrder"),
        ({"rank": 2}, "DuplicateTierRank"),
        ({"name": "Gold"}, "DuplicateTierName"),
        ({"multiplier": None}, "ValidationError"),
    ):
        response = await client.patch(
            f"/rewards/v1/tiers/{vib['id']}", json=change, headers=brand.headers
        )
        assert response.json()["error"] == code, response.text
    assert (await client.get(f"/rewards/v1/tiers/{vib['id']}", headers=brand.headers)).json() == vib


async def test_tiers_need_a_program_and_a_held_tier_cannot_be_deleted(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    make_member: MakeMember,
) -> None:
    body = {"name": "Insider", "rank": 0, "threshold_minor": 0}
    refused = await client.post("/rewards/v1/tiers", json=body, headers=brand.headers)
    assert (refused.status_code, refused.json()["error"]) == (409, "ProgramNotConfigured")
    await set_program(session, brand.id)
    insider = await make_tier(client, brand, "Insider", 0, 0)
    someone = await make_member("crm-5")
    await buy(client, brand, purchase(someone, "A-1", 100))
    in_use = await client.delete(f"/rewards/v1/tiers/{insider['id']}", headers=brand.headers)
    assert (in_use.status_code, in_use.json()["error"]) == (409, "TierInUse")


@pytest.mark.parametrize("named_by", ["perk", "campaign"])
async def test_a_tier_named_by_a_perk_or_a_campaign_cannot_be_deleted(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, named_by: str
) -> None:
    await set_program(session, brand.id)
    vib = await make_tier(client, brand, "VIB", 1, 35_000)
    if named_by == "perk":
        body: dict[str, Any] = {
            "name": "Lipstick",
            "kind": "free_product",
            "category": "makeup",
            "cost_points": 100,
            "tier_ids": [vib["id"]],
        }
        made = await client.post("/rewards/v1/perks", json=body, headers=brand.headers)
    else:
        body = {
            "name": "VIB week",
            "starts_at": "2026-01-01T00:00:00Z",
            "ends_at": "2026-01-08T00:00:00Z",
            "audience": "tiers",
            "tier_ids": [vib["id"]],
            "multiplier": "2",
        }
        made = await client.post("/rewards/v1/campaigns", json=body, headers=brand.headers)
    assert made.status_code == 201, made.text
    refused = await client.delete(f"/rewards/v1/tiers/{vib['id']}", headers=brand.headers)
    assert (refused.status_code, refused.json()["error"]) == (409, "TierInUse")
    listed = await client.get("/rewards/v1/tiers", headers=brand.headers)
    assert [t["name"] for t in listed.json()["items"]] == ["VIB"]


# --- Upgrades -------------------------------------------------------------------------------


async def test_the_first_purchase_gives_the_entry_tier_and_spend_lifts_straight_to_the_highest(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    ladder = await _ladder(client, brand)
    await buy(client, brand, purchase(member, "A-1", 5_000))
    assert await tier_of(session, member.id) == uuid.UUID(ladder["insider"]["id"])
    # 50 + 600 EUR: past VIB and Gold at once.
    await buy(client, brand, purchase(member, "A-2", 60_000))
    assert await tier_of(session, member.id) == uuid.UUID(ladder["gold"]["id"])
    changes = await _changes(session, member.id)
    assert [(c.from_tier_id, c.to_tier_id) for c in changes] == [
        (None, uuid.UUID(ladder["insider"]["id"])),
        (uuid.UUID(ladder["insider"]["id"]), uuid.UUID(ladder["gold"]["id"])),
    ]
    year = utcnow().year
    assert changes[1].reason == (
        f"Spent 650.00 EUR in {year} with order A-2, reaching Gold (from 500.00 EUR)"
    )
    assert changes[1].window_spend_minor == 65_000
    events = [d for t, d in await rewards_events(session) if t == "tier.changed"]
    assert [(e["from_tier"], e["to_tier"], e["direction"]) for e in events] == [
        (None, "Insider", "up"),
        ("Insider", "Gold", "up"),
    ]
    assert events[1]["reason"] == changes[1].reason
    # The purchase that lifted the member earned at the tier they held; the next earns x1.5.
    assert (await buy(client, brand, purchase(member, "A-3", 10_000)))["points"] == 150


async def test_a_member_below_the_entry_threshold_still_joins_the_entry_tier(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    entry = await make_tier(client, brand, "Member", 0, 10_000)
    await buy(client, brand, purchase(member, "A-1", 500))
    assert await tier_of(session, member.id) == uuid.UUID(entry["id"])
    assert (await _changes(session, member.id))[0].reason == (
        "Joined at the entry tier Member with order A-1"
    )


async def test_only_spend_inside_the_window_qualifies(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    await set_program(session, brand.id, qualification_window="rolling_12_months")
    ladder = await _ladder(client, brand)
    now = utcnow()
    await buy(client, brand, purchase(member, "OLD", 45_000, occurred_at=now - timedelta(days=400)))
    await buy(client, brand, purchase(member, "A-1", 10_000, occurred_at=now - timedelta(days=300)))
    assert await tier_of(session, member.id) == uuid.UUID(ladder["insider"]["id"])
    await buy(client, brand, purchase(member, "A-2", 10_000))
    assert await tier_of(session, member.id) == uuid.UUID(ladder["vib"]["id"])
    status = await client.get(f"/rewards/v1/members/{member.id}/tier", headers=brand.headers)
    assert status.json()["spend_minor"] == 20_000
    assert status.json()["window_closes_at"] is None


# --- Status ---------------------------------------------------------------------------------


async def test_the_tier_status_says_where_the_member_stands(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    ladder = await _ladder(client, brand, grace_days=31)
    await buy(client, brand, purchase(member, "A-1", 12_000))
    await buy(client, brand, purchase(member, "A-2", 18_000))  # 300 EUR: VIB
    year = utcnow().year
    status = await client.get(f"/rewards/v1/members/{member.id}/tier", headers=brand.headers)
    assert status.status_code == 200
    body = status.json()
    assert body["tier"]["name"] == "VIB"
    assert body["tier"]["multiplier"] == 1.25
    assert body["since"] is not None
    assert (body["currency"], body["qualification_window"]) == ("EUR", "calendar_year")
    assert body["window_starts_at"] == f"{year}-01-01T00:00:00Z"
    assert body["window_closes_at"] == f"{year + 1}-01-01T00:00:00Z"
    assert body["spend_minor"] == 30_000
    assert body["next_tier"]["tier"]["id"] == ladder["gold"]["id"]
    assert body["next_tier"]["tier"]["priority_booking"] is True
    assert body["next_tier"]["remaining_minor"] == 20_000
    assert body["next_tier"]["by"] == f"{year + 1}-01-01T00:00:00Z"
    assert body["keep"] == {
        "rule": "end_of_window",
        "threshold_minor": 20_000,
        "spend_minor": 30_000,
        "remaining_minor": 0,
        "by": f"{year + 1}-01-01T00:00:00Z",
        "reviewed_at": f"{year + 1}-01-01T00:00:00Z",  # VIB has no grace days
    }
    mine = await client.get("/rewards/v1/me/tier", headers=member.headers)
    assert mine.json() == body
    assert (await client.get("/rewards/v1/me/tier", headers=brand.headers)).status_code == 403


async def test_a_member_without_a_tier_sees_the_first_one_to_reach(
    client: httpx.AsyncClient, brand: BrandFixture, member: MemberFixture
) -> None:
    await make_tier(client, brand, "Member", 0, 10_000)
    body = (await client.get("/rewards/v1/me/tier", headers=member.headers)).json()
    assert (body["tier"], body["keep"], body["spend_minor"]) == (None, None, 0)
    assert (body["next_tier"]["tier"]["name"], body["next_tier"]["remaining_minor"]) == (
        "Member",
        10_000,
    )
    unknown = await client.get(f"/rewards/v1/members/{uuid.uuid4()}/tier", headers=brand.headers)
    assert (unknown.status_code, unknown.json()["error"]) == (404, "MemberNotFound")


# --- The review -----------------------------------------------------------------------------


async def test_end_of_window_downgrades_after_the_grace_period_to_the_tier_spend_supports(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    make_member: MakeMember,
) -> None:
    ladder = await _ladder(client, brand, grace_days=30)
    keeper = await make_member("crm-keeper")
    await buy(client, brand, purchase(member, "A-1", 60_000))
    await buy(client, brand, purchase(keeper, "K-1", 60_000))
    # A return takes the member's spend under Gold's threshold, but not their tier, yet.
    await give_back(client, brand, returned("A-1", "R-1", 30_000))
    assert await tier_of(session, member.id) == uuid.UUID(ladder["gold"]["id"])

    year = utcnow().year
    assert await review_tiers(session, now=utcnow()) == 0  # the window is still open
    assert await review_tiers(session, now=_new_year(year + 1) + timedelta(days=29)) == 0  # grace
    review = _new_year(year + 1) + timedelta(days=30, hours=5)
    assert await review_tiers(session, now=review) == 1
    # 300 EUR in the year supports VIB: straight there, not one step at a time, not to entry.
    assert await tier_of(session, member.id) == uuid.UUID(ladder["vib"]["id"])
    assert await tier_of(session, keeper.id) == uuid.UUID(ladder["gold"]["id"])
    change = (await _changes(session, member.id))[-1]
    assert change.reason == f"Tier review: spent 300.00 EUR in {year}, below Gold's 500.00 EUR"
    assert change.changed_at == review
    last = [d for t, d in await rewards_events(session) if t == "tier.changed"][-1]
    assert (last["from_tier"], last["to_tier"], last["direction"]) == ("Gold", "VIB", "down")
    assert last["window_spend_minor"] == 30_000
    # Run again (or the next day): nothing more happens.
    assert await review_tiers(session, now=review) == 0
    assert await review_tiers(session, now=review + timedelta(days=1)) == 0


async def test_a_member_who_spends_nothing_falls_to_the_entry_tier(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    ladder = await _ladder(client, brand)
    await buy(client, brand, purchase(member, "A-1", 60_000))
    await give_back(client, brand, returned("A-1", "R-1", 60_000))
    year = utcnow().year
    assert await review_tiers(session, now=_new_year(year + 1) + timedelta(hours=5)) == 1
    assert await tier_of(session, member.id) == uuid.UUID(ladder["insider"]["id"])


async def test_a_review_in_limited_runs_moves_everyone_a_whole_review_would(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    make_member: MakeMember,
    program: Program,
) -> None:
    """Runs of two members each, every one going on from where the last stopped, move the same
    members as one run over the brand: each once, dated at the first run's time."""
    ladder = await _ladder(client, brand)
    members = [await make_member(f"crm-run-{n}") for n in range(5)]
    for n, member in enumerate(members):
        await buy(client, brand, purchase(member, f"A-{n}", 60_000))
        if n != 2:  # the third keeps Gold: the others' spend falls to nothing
            await give_back(client, brand, returned(f"A-{n}", f"R-{n}", 60_000))
    review = _new_year(utcnow().year + 1) + timedelta(hours=5)
    moved: list[int] = []
    resume: Resume | None = None
    while True:
        limit = RunLimit(members=2, start=resume)
        moved.append(await review_tiers(session, now=review, batch_size=2, limit=limit))
        if (resume := limit.resume) is None:
            break
    assert sum(moved) == 4
    assert len(moved) >= 3
    for n, member in enumerate(members):
        expected = "gold" if n == 2 else "insider"
        assert await tier_of(session, member.id) == uuid.UUID(ladder[expected]["id"])
        reviewed = [
            c for c in await _changes(session, member.id) if c.reason.startswith("Tier review")
        ]
        assert [c.changed_at for c in reviewed] == ([] if n == 2 else [review])
    assert await review_tiers(session, now=review) == 0


async def test_spend_drops_applies_at_the_next_review_after_grace_and_never_never(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    make_member: MakeMember,
) -> None:
    await set_program(session, brand.id, qualification_window="rolling_12_months")
    insider = await make_tier(client, brand, "Insider", 0, 0)
    rouge = await make_tier(
        client, brand, "Rouge", 1, 50_000, downgrade_rule="spend_drops", grace_days=10
    )
    lifer = await make_tier(client, brand, "Lifer", 2, 90_000, downgrade_rule="never")
    forever = await make_member("crm-forever")
    await buy(client, brand, purchase(member, "A-1", 60_000))
    await buy(client, brand, purchase(forever, "F-1", 95_000))
    assert await tier_of(session, member.id) == uuid.UUID(rouge["id"])
    assert await tier_of(session, forever.id) == uuid.UUID(lifer["id"])

    await give_back(client, brand, returned("A-1", "R-1", 20_000))
    now = utcnow()
    assert await review_tiers(session, now=now + timedelta(days=9)) == 0  # grace
    assert await review_tiers(session, now=now + timedelta(days=11)) == 1
    assert await tier_of(session, member.id) == uuid.UUID(insider["id"])
    # Years later, "never" still holds.
    assert await review_tiers(session, now=now + timedelta(days=3 * 365)) == 0
    assert await tier_of(session, forever.id) == uuid.UUID(lifer["id"])


async def test_a_rolling_window_is_judged_on_the_year_after_reaching_the_tier(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    make_member: MakeMember,
) -> None:
    await set_program(session, brand.id, qualification_window="rolling_12_months")
    ladder = await _ladder(client, brand, grace_days=7)
    steady = await make_member("crm-steady")
    await buy(client, brand, purchase(member, "A-1", 60_000))
    await buy(client, brand, purchase(steady, "S-1", 60_000))
    # The steady member spends again in their first tier year (a minute ahead: within skew).
    again = utcnow() + timedelta(minutes=1)
    await buy(client, brand, purchase(steady, "S-2", 50_000, occurred_at=again))
    status = (await client.get("/rewards/v1/me/tier", headers=steady.headers)).json()
    since = datetime.fromisoformat(status["since"])
    anniversary = add_years(since, 1)
    assert datetime.fromisoformat(status["keep"]["by"]) == anniversary
    assert datetime.fromisoformat(status["keep"]["reviewed_at"]) == anniversary + timedelta(days=7)
    assert status["keep"]["spend_minor"] == 50_000

    assert await review_tiers(session, now=anniversary + timedelta(days=6)) == 0
    assert await review_tiers(session, now=anniversary + timedelta(days=8)) == 1
    assert await tier_of(session, member.id) == uuid.UUID(ladder["insider"]["id"])
    assert await tier_of(session, steady.id) == uuid.UUID(ladder["gold"]["id"])


def test_the_jobs_are_registered_with_their_schedules() -> None:
    jobs = {job.name: job for job in REWARDS.jobs}
    review = jobs["rewards.review_tiers"]
    assert review.cron is not None
    assert (review.cron.hour, review.cron.minute) == (4, 7)
    release = jobs["rewards.release_pending_purchases"]
    assert release.cron is not None
    assert release.cron.minute == frozenset(range(0, 60, 5))
