"""A segment through the real flow: members, consents, purchases, redemptions and posts made
through the members, rewards and community APIs, their events fed to marketing's consumer, and
the segment's versions following what the members did."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.rewards.models import Program
from tests.community.engagement_helpers import post
from tests.conftest import BrandFixture
from tests.marketing.helpers import project, set_consent
from tests.marketing.segments_world import create, outbox_events
from tests.recommender.service_fixtures import MakeMember, make_member, program
from tests.rewards.perk_helpers import create_perk, redeem
from tests.rewards.purchase_helpers import buy, line, purchase

__all__ = ["make_member", "program"]


async def test_a_segment_follows_purchases_consents_and_redemptions(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    program: Program,
    make_member: MakeMember,
) -> None:
    ana = await make_member("ana", interests=["skincare"])
    bo = await make_member("bo")
    cy = await make_member("cy")
    for member in (ana, bo, cy):
        await set_consent(client, brand, member, "email_marketing", True)
    now = utcnow()
    for member, order, days in (
        (ana, "a-1", 10),
        (ana, "a-2", 50),
        (bo, "b-1", 20),
        (cy, "c-1", 120),
    ):
        await buy(
            client,
            brand,
            purchase(
                member,
                order,
                4_000,
                lines=[line("serum", 4_000, "skincare")],
                occurred_at=now - timedelta(days=days),
            ),
        )
    await post(client, cy)
    await project(session)

    # Bought skincare at least twice in the last 90 days, or posted and redeemed a gift ever.
    rule = {
        "or": [
            {
                "event": "purchase",
                "where": {"category": "skincare"},
                "within_days": 90,
                "count": {"op": "gte", "value": 2},
            },
            {"and": [{"event": "post"}, {"event": "redemption", "where": {"category": "gifts"}}]},
        ]
    }
    segment = await create(client, brand, rule, purpose="email_marketing", name="Regulars")
    url = f"/marketing/v1/segments/{segment['id']}"
    previewed = await client.get(f"{url}/preview", headers=brand.headers)
    assert previewed.json()["count"] == 1
    assert [m["member_id"] for m in previewed.json()["sample"]] == [str(ana.id)]
    first = await client.post(f"{url}/versions", headers=brand.headers)
    assert (first.json()["size"], first.json()["entered"]) == (1, 1)

    # bo buys again; cy redeems a gift (cy posted before); ana withdraws her consent.
    await buy(client, brand, purchase(bo, "b-2", 4_000, lines=[line("toner", 4_000, "skincare")]))
    perk = await create_perk(client, brand, cost_points=10, category="gifts")
    assert (await redeem(client, cy, perk["id"])).status_code == 201
    await set_consent(client, brand, ana, "email_marketing", False)
    await project(session)

    second = await client.post(f"{url}/versions", headers=brand.headers)
    assert (second.json()["size"], second.json()["entered"], second.json()["exited"]) == (2, 2, 1)
    entered = await client.get(f"{url}/versions/2/changes?kind=entered", headers=brand.headers)
    assert {i["member_id"] for i in entered.json()["items"]} == {str(bo.id), str(cy.id)}
    exited = await client.get(f"{url}/versions/2/changes?kind=exited", headers=brand.headers)
    assert [i["member_id"] for i in exited.json()["items"]] == [str(ana.id)]

    events = [
        (e["type"], e["subject_id"], e["data"]["version"])
        for e in await outbox_events(session, brand.id)
    ]
    assert events[0] == ("segment.entered", str(ana.id), 1)
    assert events[1] == ("segment.exited", str(ana.id), 2)
    assert sorted(events[2:]) == sorted(
        [("segment.entered", str(bo.id), 2), ("segment.entered", str(cy.id), 2)]
    )
