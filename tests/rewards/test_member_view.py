"""The member view: balance, what expires soon (and when), last activity; for members and staff."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.rewards.account.schemas import ExpiringPoints
from services.rewards.account.service import summary
from services.rewards.models import EntryKind, ExpiryPolicy, Program
from tests.conftest import BrandFixture, MemberFixture, bearer
from tests.rewards.conftest import MakeMember, rewards_events, sync_members
from tests.rewards.points_helpers import at, move, set_program

NOW = at("2024-06-01T12:00:00+00:00")


async def test_lots_expiring_within_the_reminder_window_are_summed_with_their_dates(
    session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    program = await set_program(
        session,
        brand.id,
        expiry_policy="days_after_earning",
        expiry_days=100,
        expiry_reminder_days=10,
    )
    await move(session, program, member.id, 60, NOW - timedelta(days=95))
    await move(session, program, member.id, 40, NOW - timedelta(days=92))
    await move(session, program, member.id, 100, NOW - timedelta(days=50))
    spent_at = NOW - timedelta(days=10)
    await move(session, program, member.id, -30, spent_at, kind=EntryKind.REDEEM)

    view = await summary(session, brand.id, member.id, now=NOW, members=None)
    assert (view.member_id, view.balance.available, view.balance.pending) == (member.id, 170, 0)
    assert view.balance.lifetime_earned == 200
    assert view.last_activity_at == spent_at
    soon = view.expiring_soon
    assert (soon.policy, soon.window_days, soon.points, soon.inactivity_expires_at) == (
        ExpiryPolicy.DAYS_AFTER_EARNING,
        10,
        70,
        None,
    )
    assert soon.next == [
        ExpiringPoints(points=30, expires_at=NOW + timedelta(days=5)),
        ExpiringPoints(points=40, expires_at=NOW + timedelta(days=8)),
    ]
    # A lot that is due but not yet expired (tonight's job will) still shows as expiring.
    later = await summary(session, brand.id, member.id, now=NOW + timedelta(days=6), members=None)
    assert (later.expiring_soon.points, later.expiring_soon.next) == (70, soon.next)


async def test_the_next_five_dates_are_listed_and_every_point_in_the_window_counted(
    session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    program = await set_program(
        session,
        brand.id,
        expiry_policy="days_after_earning",
        expiry_days=30,
        expiry_reminder_days=10,
    )
    for day in range(7):
        await move(session, program, member.id, 10 + day, NOW - timedelta(days=29 - day))
    soon = (await summary(session, brand.id, member.id, now=NOW, members=None)).expiring_soon
    assert soon.points == sum(10 + day for day in range(7))
    assert [(g.points, g.expires_at) for g in soon.next] == [
        (10 + day, NOW + timedelta(days=1 + day)) for day in range(5)
    ]


async def test_under_inactivity_the_whole_balance_shows_once_its_deadline_is_near(
    session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    program = await set_program(
        session,
        brand.id,
        expiry_policy="inactivity",
        inactivity_months=12,
        expiry_reminder_days=30,
    )
    active = at("2024-01-31T10:00:00+00:00")
    deadline = at("2025-01-31T10:00:00+00:00")
    await move(session, program, member.id, 100, active)

    far = await summary(
        session, brand.id, member.id, now=at("2024-12-01T00:00:00+00:00"), members=None
    )
    assert (far.expiring_soon.points, far.expiring_soon.next) == (0, [])
    assert far.expiring_soon.inactivity_expires_at == deadline
    assert far.last_activity_at == active
    near = await summary(
        session, brand.id, member.id, now=deadline - timedelta(days=30), members=None
    )
    assert near.expiring_soon.points == 100
    assert near.expiring_soon.next == [ExpiringPoints(points=100, expires_at=deadline)]


async def test_nothing_expires_soon_under_the_none_policy(
    session: AsyncSession, brand: BrandFixture, member: MemberFixture, program: Program
) -> None:
    await move(session, program, member.id, 100, NOW - timedelta(days=1000))
    soon = (await summary(session, brand.id, member.id, now=NOW, members=None)).expiring_soon
    assert (soon.policy, soon.points, soon.next, soon.inactivity_expires_at) == (
        ExpiryPolicy.NONE,
        0,
        [],
        None,
    )


# --- Over HTTP --------------------------------------------------------------------------------


async def test_the_member_and_staff_see_the_same_summary(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    program = await set_program(
        session,
        brand.id,
        expiry_policy="days_after_earning",
        expiry_days=100,
        expiry_reminder_days=10,
    )
    earned_at = utcnow() - timedelta(days=95)
    await move(session, program, member.id, 60, earned_at)
    await move(session, program, member.id, 15, utcnow() - timedelta(days=1), kind=EntryKind.ADJUST)
    events_before = await rewards_events(session)

    mine = await client.get("/rewards/v1/me/summary", headers=member.headers)
    theirs = await client.get(f"/rewards/v1/members/{member.id}/summary", headers=brand.headers)
    assert mine.status_code == theirs.status_code == 200, mine.text
    assert mine.json() == theirs.json()
    body = mine.json()
    assert body["member_id"] == str(member.id)
    assert body["balance"] == {
        "member_id": str(member.id),
        "available": 75,
        "pending": 0,
        "lifetime_earned": 60,
    }
    assert datetime.fromisoformat(body["last_activity_at"]) == earned_at
    soon = body["expiring_soon"]
    assert (soon["policy"], soon["window_days"], soon["points"]) == ("days_after_earning", 10, 60)
    assert [(n["points"], datetime.fromisoformat(n["expires_at"])) for n in soon["next"]] == [
        (60, earned_at + timedelta(days=100))
    ]
    assert soon["inactivity_expires_at"] is None
    # Reading writes nothing.
    assert await rewards_events(session) == events_before


async def test_the_summary_with_the_tier_is_both_answers_in_one(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    program = await set_program(session, brand.id)
    await move(session, program, member.id, 40, utcnow() - timedelta(days=1))

    for summary_path, tier_path, headers in (
        ("/rewards/v1/me/summary", "/rewards/v1/me/tier", member.headers),
        (
            f"/rewards/v1/members/{member.id}/summary",
            f"/rewards/v1/members/{member.id}/tier",
            brand.headers,
        ),
    ):
        alone = await client.get(summary_path, headers=headers)
        tier = await client.get(tier_path, headers=headers)
        both = await client.get(summary_path, params={"include": "tier"}, headers=headers)
        assert alone.status_code == tier.status_code == both.status_code == 200, both.text
        assert alone.json()["tier"] is None
        assert both.json() == {**alone.json(), "tier": tier.json()}

    unknown = await client.get(
        "/rewards/v1/me/summary", params={"include": "badges"}, headers=member.headers
    )
    assert (unknown.status_code, unknown.json()["error"]) == (422, "ValidationError")
    assert unknown.json()["detail"][0]["loc"] == ["query", "include", 0]


async def test_who_may_read_a_summary(
    client: httpx.AsyncClient, brand: BrandFixture, member: MemberFixture
) -> None:
    staff_path = f"/rewards/v1/members/{member.id}/summary"

    async def key_with(*scopes: str) -> dict[str, str]:
        created = await client.post(
            "/members/v1/api-keys",
            json={"name": "-".join(scopes), "scopes": list(scopes)},
            headers=brand.headers,
        )
        assert created.status_code == 201, created.text
        return bearer(created.json()["key"])

    assert (await client.get(staff_path, headers=await key_with("rewards:read"))).status_code == 200
    refused = await client.get(staff_path, headers=await key_with("members:read"))
    assert (refused.status_code, refused.json()["error"]) == (403, "Forbidden")
    as_member = await client.get(staff_path, headers=member.headers)
    assert (as_member.status_code, as_member.json()["error"]) == (403, "Forbidden")
    as_staff = await client.get("/rewards/v1/me/summary", headers=brand.headers)
    assert (as_staff.status_code, as_staff.json()["error"]) == (403, "Forbidden")
    assert (await client.get("/rewards/v1/me/summary")).status_code == 401


@pytest.mark.parametrize("which", ["unknown", "other_brand", "erased"])
async def test_members_not_in_this_brand_are_not_found(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
    member: MemberFixture,
    make_member: MakeMember,
    which: str,
) -> None:
    if which == "unknown":
        target = "018f0000-0000-7000-8000-000000000000"
    elif which == "other_brand":
        target = str((await make_member("theirs", brand_fixture=other_brand)).id)
    else:
        assert (
            await client.post(f"/members/v1/members/{member.id}/erase", headers=brand.headers)
        ).status_code == 200
        await sync_members(session)
        target = str(member.id)
        mine = await client.get("/rewards/v1/me/summary", headers=member.headers)
        assert (mine.status_code, mine.json()["error"]) == (404, "MemberNotFound")
    response = await client.get(f"/rewards/v1/members/{target}/summary", headers=brand.headers)
    assert (response.status_code, response.json()["error"]) == (404, "MemberNotFound")
    assert target in response.json()["detail"]


async def test_a_malformed_member_id_is_a_validation_error(
    client: httpx.AsyncClient, brand: BrandFixture, member: MemberFixture
) -> None:
    response = await client.get("/rewards/v1/members/not-an-id/summary", headers=brand.headers)
    assert (response.status_code, response.json()["error"]) == (422, "ValidationError")
    assert response.json()["detail"][0]["loc"] == ["path", "member_id"]


async def test_a_brand_without_a_program_is_told_to_configure_one(
    client: httpx.AsyncClient, brand: BrandFixture, make_member: MakeMember
) -> None:
    someone = await make_member("no-program")
    response = await client.get("/rewards/v1/me/summary", headers=someone.headers)
    assert (response.status_code, response.json()["error"]) == (409, "ProgramNotConfigured")
    assert "PUT /rewards/v1/program" in response.json()["detail"]
