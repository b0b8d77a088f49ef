"""The message intake: events from the real members and rewards APIs, fed to the
`webhooks.messages` consumer as the runner feeds it, become one message per event some endpoint
wants and one pending delivery per (message, endpoint); disabled endpoints, other brands and
members outside a filtering segment get none; a replay adds nothing."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.marketing.events import SegmentChangeData, SegmentEntered, SegmentExited
from services.rewards.models import Program
from services.webhooks.messages.intake import MESSAGES_CONSUMER
from services.webhooks.models import INBOX, Delivery, DeliveryStatus, Message
from tests.conftest import BrandFixture, MemberFixture
from tests.recommender.service_fixtures import (
    MakeMember,
    feed,
    make_member,
    program,
    service_events,
)
from tests.rewards.purchase_helpers import buy, purchase

__all__ = ["make_member", "program"]

URL = "http://127.0.0.1:9/crm"


async def _endpoint(client: httpx.AsyncClient, brand: BrandFixture, **body: Any) -> uuid.UUID:
    response = await client.post(
        "/webhooks/v1/endpoints", json={"url": URL, **body}, headers=brand.headers
    )
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])


async def _deliveries(session: AsyncSession) -> set[tuple[str, uuid.UUID, uuid.UUID | None]]:
    rows = await session.execute(
        select(Message.event_type, Delivery.endpoint_id, Delivery.member_id, Delivery.status).join(
            Message, Message.id == Delivery.message_id
        )
    )
    found = set()
    for event_type, endpoint_id, member_id, status in rows:
        assert status is DeliveryStatus.PENDING
        found.add((event_type, endpoint_id, member_id))
    return found


def _segment_event(
    kind: type[SegmentEntered] | type[SegmentExited],
    brand: BrandFixture,
    segment_id: uuid.UUID,
    member: MemberFixture,
    version: int,
) -> SegmentEntered | SegmentExited:
    return kind(
        brand_id=brand.id,
        subject_id=member.id,
        occurred_at=utcnow(),
        data=SegmentChangeData(
            segment_id=segment_id, segment_name="VIPs", member_id=member.id, version=version
        ),
    )


async def test_events_become_messages_for_the_endpoints_that_want_them(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
    program: Program,
    make_member: MakeMember,
) -> None:
    points = await _endpoint(client, brand, event_types=["points.*"])
    everything = await _endpoint(client, brand, event_types=["*"])
    joins = await _endpoint(client, brand, event_types=["member.created"])
    await _endpoint(client, brand, event_types=["*"], enabled=False)
    theirs = await _endpoint(client, other_brand, event_types=["*"])
    vips = uuid.uuid4()
    vip_points = await _endpoint(client, brand, event_types=["points.earned"], segment_id=str(vips))

    ana = await make_member("ana")
    bo = await make_member("bo")
    events = await service_events(session)
    # Ana is in the VIP segment (marketing's event), Bo is not.
    events.append(_segment_event(SegmentEntered, brand, vips, ana, 1))
    await feed(session, events, specs=(MESSAGES_CONSUMER,), batch=50)
    await buy(client, brand, purchase(ana, "o-1", 5_000))
    await buy(client, brand, purchase(bo, "o-2", 3_000))
    events = await service_events(session)
    await feed(session, events, specs=(MESSAGES_CONSUMER,), batch=50)

    found = await _deliveries(session)
    assert {d for d in found if d[1] == joins} == {
        ("member.created", joins, ana.id),
        ("member.created", joins, bo.id),
    }
    assert {d for d in found if d[1] == points} == {
        ("points.earned", points, ana.id),
        ("points.earned", points, bo.id),
    }
    assert {d for d in found if d[1] == vip_points} == {("points.earned", vip_points, ana.id)}
    mine = [e for e in events if e.brand_id == brand.id]
    assert {(t, m) for t, e, m in found if e == everything} == {
        (e.type, e.subject_id) for e in mine
    } | {("segment.entered", ana.id)}
    assert not any(e == theirs for _, e, _ in found)  # the other brand has no events
    # Each message is stored once, with its event's JSON, however many endpoints get it.
    message = await session.scalar(
        select(Message).where(
            Message.event_type == "purchase.recorded", Message.member_id == ana.id
        )
    )
    assert message is not None
    assert message.payload["data"]["order_id"] == "o-1"
    assert message.payload["id"] == str(message.id)

    # A replay past the inbox (a redelivery after a crash) adds nothing.
    before = len(found)
    await session.execute(delete(INBOX))
    await feed(session, events, specs=(MESSAGES_CONSUMER,), batch=7)
    assert len(await _deliveries(session)) == before


async def test_a_member_who_left_the_segment_gets_no_more_messages(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    program: Program,
    make_member: MakeMember,
) -> None:
    vips = uuid.uuid4()
    endpoint = await _endpoint(client, brand, event_types=["purchase.*"], segment_id=str(vips))
    ana = await make_member("ana")
    entered = _segment_event(SegmentEntered, brand, vips, ana, 1)
    exited = _segment_event(SegmentExited, brand, vips, ana, 2)
    await feed(session, [entered], specs=(MESSAGES_CONSUMER,))
    await buy(client, brand, purchase(ana, "o-1", 5_000))
    await feed(session, await service_events(session), specs=(MESSAGES_CONSUMER,), batch=50)
    # Exit and a later purchase in one batch: the exit applies first.
    await buy(client, brand, purchase(ana, "o-2", 5_000))
    later = [e for e in await service_events(session) if e.type == "purchase.recorded"][-1:]
    await feed(session, [exited, *later], specs=(MESSAGES_CONSUMER,), batch=50)
    assert await _deliveries(session) == {("purchase.recorded", endpoint, ana.id)}


async def test_an_erasure_drops_the_members_messages_but_its_own(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    program: Program,
    make_member: MakeMember,
) -> None:
    endpoint = await _endpoint(client, brand, event_types=["*"])
    ana = await make_member("ana", email="ana@example.com")
    bo = await make_member("bo")
    await buy(client, brand, purchase(ana, "o-1", 5_000))
    await feed(session, await service_events(session), specs=(MESSAGES_CONSUMER,), batch=50)
    response = await client.post(f"/members/v1/members/{ana.id}/erase", headers=brand.headers)
    assert response.status_code == 200, response.text
    await feed(session, await service_events(session), specs=(MESSAGES_CONSUMER,), batch=50)

    found = await _deliveries(session)
    assert {t for t, _, m in found if m == ana.id} == {"member.erased"}
    assert {t for t, _, m in found if m == bo.id} == {"member.created"}
    assert all(e == endpoint for _, e, _ in found)
    left = await session.scalars(select(Message.event_type).where(Message.member_id == ana.id))
    assert list(left) == ["member.erased"]
