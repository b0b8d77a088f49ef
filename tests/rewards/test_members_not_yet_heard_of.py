"""A member created a moment ago, whose `member.created` has not reached rewards yet: a request
naming them asks the members service (with a service token of the brand) and opens the account
the projection would have opened, so a CRM's first purchase and an app's first screen are not
answered 404; a simulation of the rules takes them as that new account, and opens nothing. A
member the members service does not have either is still not found, and nothing is written."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.auth import MemberTokenCodec
from services.kernel.clients import Peers
from services.kernel.errors import ServiceUnavailable
from services.kernel.member_directory import MemberDirectory
from services.kernel.settings import Settings
from services.rewards.ledger import service as ledger
from services.rewards.ledger.members import MembersService
from services.rewards.models import Account, Program
from tests.conftest import BrandFixture, MemberFixture, make_brand
from tests.rewards.conftest import rewards_events, sync_members
from tests.rewards.perk_helpers import create_perk
from tests.rewards.purchase_helpers import balance, buy, counts, make_rule, make_tier, purchase
from tests.rewards.test_drops import create_drop


async def _created_only(
    client: httpx.AsyncClient,
    brand: BrandFixture,
    base_settings: Settings,
    external_id: str,
    **fields: str,
) -> MemberFixture:
    """A member created through the members API whose events rewards has not seen."""
    body = {"external_id": external_id, **fields}
    response = await client.post("/members/v1/members", json=body, headers=brand.headers)
    assert response.status_code == 201, response.text
    member_id = uuid.UUID(response.json()["id"])
    token = MemberTokenCodec(base_settings).issue(brand.id, member_id, timedelta(hours=1))
    return MemberFixture(member_id, brand.id, external_id, token)


async def _accounts(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Account)) or 0)


async def test_a_crms_first_purchase_for_a_member_created_a_moment_ago_earns(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    program: Program,
    base_settings: Settings,
) -> None:
    ada = await _created_only(client, brand, base_settings, "crm-ada", birthday="1990-06-15")
    bo = await _created_only(client, brand, base_settings, "crm-bo")
    assert await _accounts(session) == 0

    by_id = await buy(client, brand, purchase(ada, "A-1", 12_000, by="member_id"))
    by_external_id = await buy(client, brand, purchase(bo, "B-1", 5_000))
    assert (by_id["member_id"], by_id["points"]) == (str(ada.id), 120)
    assert (by_external_id["member_id"], by_external_id["points"]) == (str(bo.id), 50)
    account = await session.get(Account, ada.id)
    assert account is not None
    assert (account.brand_id, account.external_id, account.birthday, account.member_status) == (
        brand.id,
        "crm-ada",
        date(1990, 6, 15),
        "active",
    )
    assert [t for t, _ in await rewards_events(session)] == [
        "points.earned",
        "purchase.recorded",
        "points.earned",
        "purchase.recorded",
    ]

    # The events arrive later and change nothing: the account the request opened is theirs.
    await sync_members(session)
    await session.refresh(account)
    assert (account.external_id, account.birthday, account.member_status) == (
        "crm-ada",
        date(1990, 6, 15),
        "active",
    )
    assert await balance(session, ada.id) == (120, 0)
    assert await balance(session, bo.id) == (50, 0)
    assert await _accounts(session) == 2
    assert await ledger.ledger_matches(session, ada.id)
    assert await ledger.ledger_matches(session, bo.id)


async def test_the_apps_first_screen_after_sign_up_shows_an_empty_account(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    program: Program,
    base_settings: Settings,
) -> None:
    new = await _created_only(client, brand, base_settings, "crm-new")
    summary = await client.get("/rewards/v1/me/summary", headers=new.headers)
    assert summary.status_code == 200, summary.text
    assert summary.json()["balance"]["available"] == 0
    tier = await client.get("/rewards/v1/me/tier", headers=new.headers)
    assert tier.status_code == 200, tier.text
    assert tier.json()["spend_minor"] == 0
    mine = await client.get("/rewards/v1/me/balance", headers=new.headers)
    assert (mine.status_code, mine.json()["available"]) == (200, 0)
    staff = await client.get(f"/rewards/v1/members/{new.id}/balance", headers=brand.headers)
    assert (staff.status_code, staff.json()["pending"]) == (200, 0)
    assert await _accounts(session) == 1


async def test_the_catalog_redemptions_and_drops_answer_a_member_created_a_moment_ago(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    program: Program,
    base_settings: Settings,
) -> None:
    perk = await create_perk(client, brand, cost_points=100)
    drop = await create_drop(client, brand, perk["id"])
    new = await _created_only(client, brand, base_settings, "crm-newest")
    mine = new.headers

    offers = await client.get("/rewards/v1/me/perks", params={"all": "true"}, headers=mine)
    assert offers.status_code == 200, offers.text
    assert [(o["id"], o["redeemable"]) for o in offers.json()["items"]] == [(perk["id"], False)]
    by_id = await client.get("/rewards/v1/me/perks", params={"ids": perk["id"]}, headers=mine)
    assert [o["id"] for o in by_id.json()["items"]] == [perk["id"]]
    for path, params, headers in (
        ("/rewards/v1/me/redemptions", {}, mine),
        ("/rewards/v1/me/redemptions", {"ids": str(uuid.uuid4())}, mine),
        (f"/rewards/v1/members/{new.id}/redemptions", {}, brand.headers),
    ):
        empty = await client.get(path, params=params, headers=headers)
        assert (empty.status_code, empty.json()["items"]) == (200, []), (path, empty.text)
    drops = await client.get("/rewards/v1/me/drops", headers=mine)
    assert [(d["id"], d["entry"]) for d in drops.json()["items"]] == [(drop["id"], None)]
    drops_by_id = await client.get("/rewards/v1/me/drops", params={"ids": drop["id"]}, headers=mine)
    assert [d["id"] for d in drops_by_id.json()["items"]] == [drop["id"]]
    # Known now: entering is refused for what the account lacks, not for a missing member.
    entered = await client.post(f"/rewards/v1/me/drops/{drop['id']}/entries", headers=mine)
    assert (entered.status_code, entered.json()["error"]) == (409, "InsufficientPoints")
    assert await _accounts(session) == 1


async def test_the_rules_simulations_take_a_member_created_a_moment_ago_as_a_new_account(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    program: Program,
    base_settings: Settings,
) -> None:
    """No tier, nothing earned, no awards yet; and, a simulation writing nothing, no account
    is opened for them (the purchase opens it)."""
    await make_tier(client, brand, "Insider", 0, 10_000)
    await make_rule(
        client,
        brand,
        kind="activity",
        name="Review published",
        activity="review.published",
        points=50,
        cap_per_day=1,
    )
    ada = await _created_only(client, brand, base_settings, "crm-ada")
    before = await counts(session)
    events_before = await rewards_events(session)
    body = purchase(ada, "A-1", 12_000)
    simulated = await client.post("/rewards/v1/rules/simulate", json=body, headers=brand.headers)
    assert simulated.status_code == 200, simulated.text
    result = simulated.json()
    assert (result["member_id"], result["points"], result["window_spend_minor"]) == (
        str(ada.id),
        120,
        12_000,
    )
    assert result["breakdown"]["tier"] is None
    assert result["tier_upgrade"]["name"] == "Insider"
    activity = await client.post(
        "/rewards/v1/rules/simulate-activity",
        json={"activity": "review.published", "member_id": str(ada.id)},
        headers=brand.headers,
    )
    assert activity.status_code == 200, activity.text
    assert (activity.json()["member_id"], activity.json()["points"]) == (str(ada.id), 50)
    assert activity.json()["rules"][0]["awards_so_far"] == {"day": 0, "month": 0, "lifetime": 0}
    assert await counts(session) == before
    assert await rewards_events(session) == events_before
    assert await _accounts(session) == 0

    recorded = await buy(client, brand, body)
    assert (recorded["points"], recorded["breakdown"]) == (result["points"], result["breakdown"])


async def test_a_member_the_members_service_lacks_too_is_not_found_and_nothing_is_written(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    program: Program,
    base_settings: Settings,
) -> None:
    other = await make_brand(session, "Other")
    theirs = await _created_only(client, other, base_settings, "crm-theirs")
    erased = await _created_only(client, brand, base_settings, "crm-erased")
    gone = await client.post(f"/members/v1/members/{erased.id}/erase", headers=brand.headers)
    assert gone.status_code in (200, 202, 204), gone.text
    before = await counts(session)
    nobody = MemberFixture(uuid.uuid4(), brand.id, "crm-nobody", "")
    for body in (
        purchase(nobody, "N-1", 1_000, by="member_id"),
        purchase(nobody, "N-2", 1_000),
        purchase(theirs, "T-1", 1_000, by="member_id"),
        purchase(theirs, "T-2", 1_000),
        purchase(erased, "E-1", 1_000, by="member_id"),
    ):
        refused = await client.post("/rewards/v1/purchases", json=body, headers=brand.headers)
        assert (refused.status_code, refused.json()["error"]) == (404, "MemberNotFound"), body
    strangers = ({"member_id": str(nobody.id)}, {"external_id": "crm-theirs"})
    for who in (*strangers, {"member_id": str(erased.id)}):
        for path, body in (
            ("/rewards/v1/rules/simulate", {**who, "amount_minor": 1_000, "currency": "EUR"}),
            ("/rewards/v1/rules/simulate-activity", {**who, "activity": "review.published"}),
        ):
            refused = await client.post(path, json=body, headers=brand.headers)
            assert (refused.status_code, refused.json()["error"]) == (404, "MemberNotFound"), body
    stranger = await client.get(f"/rewards/v1/members/{theirs.id}/balance", headers=brand.headers)
    assert (stranger.status_code, stranger.json()["error"]) == (404, "MemberNotFound")
    assert await counts(session) == before
    # At most the erased member's account, as the projection keeps it: erased, nothing else.
    opened = (await session.scalars(select(Account))).all()
    assert [(a.member_id, a.member_status, a.external_id) for a in opened] in (
        [],
        [(erased.id, "erased", None)],
    )


async def test_a_members_service_that_cannot_be_reached_is_a_503_not_a_404(
    session: AsyncSession, brand: BrandFixture, base_settings: Settings
) -> None:
    away = base_settings.model_copy(update={"members_url": "http://127.0.0.1:9"})
    with pytest.raises(ServiceUnavailable):
        await MembersService(MemberDirectory(Peers(away), caller="rewards")).open_account(
            session, brand.id, member_id=uuid.uuid4()
        )
    assert await _accounts(session) == 0
