"""The member 360: real flows through the members, rewards and community APIs, their events fed
to marketing's consumer, and the exact projection that results; a rebuild from the journal
gives the same rows; batches give what events one by one give; erasure forgets the member."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.marketing.audience import service
from services.marketing.models import INBOX, JournalEntry, MemberView
from services.rewards.models import Program
from tests.community.engagement_helpers import comment, post, react
from tests.conftest import BrandFixture, MemberFixture
from tests.marketing.helpers import project, set_consent
from tests.recommender.service_fixtures import MakeMember, make_member, program
from tests.rewards.perk_helpers import create_perk, redeem
from tests.rewards.purchase_helpers import buy, give_back, line, purchase, returned

__all__ = ["make_member", "program"]


async def _view(client: httpx.AsyncClient, brand: BrandFixture, member: MemberFixture) -> Any:
    response = await client.get(f"/marketing/v1/members/{member.id}", headers=brand.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def _story(
    client: httpx.AsyncClient, brand: BrandFixture, make_member: MakeMember
) -> tuple[MemberFixture, MemberFixture]:
    ana = await make_member(
        "ana", email="ana@example.com", display_name="Ana", interests=["skincare"]
    )
    bo = await make_member("bo", display_name="Bo")
    await set_consent(client, brand, ana, "email_marketing", True)
    await set_consent(client, brand, ana, "sms_marketing", True)
    await set_consent(client, brand, ana, "sms_marketing", False)
    now = utcnow()
    await buy(
        client,
        brand,
        purchase(
            ana,
            "o-1",
            12_000,
            lines=[line("serum", 8_000, "skincare"), line("lipstick", 4_000, "makeup")],
            occurred_at=now - timedelta(days=200),
        ),
    )
    await buy(
        client,
        brand,
        purchase(
            ana,
            "o-2",
            5_000,
            lines=[line("mist", 5_000, "fragrance")],
            occurred_at=now - timedelta(days=10),
        ),
    )
    await give_back(
        client, brand, returned("o-2", "r-1", 2_000, occurred_at=now - timedelta(days=5))
    )
    perk = await create_perk(client, brand, cost_points=50, category="gifts")
    response = await redeem(client, ana, perk["id"])
    assert response.status_code == 201, response.text
    written = await post(client, bo)
    await comment(client, ana, written["id"])
    await react(client, ana, written["id"])
    return ana, bo


async def test_the_360_holds_what_the_member_did(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    program: Program,
    make_member: MakeMember,
) -> None:
    ana, bo = await _story(client, brand, make_member)
    await project(session)

    seen = await _view(client, brand, ana)
    assert seen["email"] == "ana@example.com"
    assert seen["display_name"] == "Ana"
    assert seen["interests"] == ["skincare"]
    assert seen["consents"] == ["email_marketing"]
    # 120 + 50 - 20 returned (EUR, 1 point per euro): 150 earned, 20 reversed, 50 redeemed
    assert seen["spend_lifetime_minor"] == 15_000
    assert seen["spend_30d_minor"] == 3_000
    assert seen["spend_365d_minor"] == 15_000
    assert seen["order_count"] == 2
    assert seen["categories_bought"] == ["fragrance", "makeup", "skincare"]
    assert seen["points_lifetime"] == 170
    assert seen["points_available"] == 170 - 20 - 50
    assert seen["redemptions"] == 1
    assert (seen["posts"], seen["comments"], seen["reactions"]) == (0, 1, 1)
    assert seen["last_active_at"] is not None
    assert seen["rfm_recency"] is None  # not scored yet

    other = await _view(client, brand, bo)
    assert (other["posts"], other["order_count"], other["consents"]) == (1, 0, [])

    missing = await client.get(f"/marketing/v1/members/{uuid.uuid4()}", headers=brand.headers)
    assert missing.status_code == 404
    assert missing.json()["error"] == "MemberNotFound"


async def _rows(session: AsyncSession, brand_id: uuid.UUID) -> list[tuple[Any, ...]]:
    session.expire_all()
    columns = [c for c in MemberView.__table__.c if c.name != "refreshed_at"]
    found = await session.execute(
        select(*columns).where(MemberView.brand_id == brand_id).order_by(MemberView.member_id)
    )
    return [tuple(row) for row in found]


async def test_a_rebuild_and_one_by_one_give_the_batches_rows(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    program: Program,
    make_member: MakeMember,
) -> None:
    await _story(client, brand, make_member)
    now = utcnow()
    await project(session, batch=7)
    batched = await _rows(session, brand.id)
    assert len(batched) == 2

    await service.refresh_brand(session, brand.id, now)
    assert await _rows(session, brand.id) == batched

    # Start over and feed the same events one at a time.
    await session.execute(delete(MemberView))
    await session.execute(delete(JournalEntry))
    await session.execute(INBOX.delete())
    await project(session, batch=None)
    assert await _rows(session, brand.id) == batched


async def test_erasure_forgets_the_member_and_their_late_events(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    program: Program,
    make_member: MakeMember,
) -> None:
    ana, _ = await _story(client, brand, make_member)
    await project(session)
    response = await client.post(f"/members/v1/members/{ana.id}/erase", headers=brand.headers)
    assert response.status_code == 200, response.text
    await project(session)
    # Her earlier events arrive again (another stream lagging behind): they are dropped.
    await session.execute(INBOX.delete())
    await project(session)

    gone = await client.get(f"/marketing/v1/members/{ana.id}", headers=brand.headers)
    assert gone.status_code == 404
    left = await session.scalar(
        select(func.count()).select_from(JournalEntry).where(JournalEntry.member_id == ana.id)
    )
    assert left == 0
