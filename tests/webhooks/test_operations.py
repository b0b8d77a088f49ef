"""Webhook operations through the REST API: messages listed and filtered, a message with its
deliveries, the attempt log, resending one delivery, recovering an endpoint's failures, and the
retention job. Delivery states are set up as rows (the delivery loop is tested on its own);
every bad input is refused with its code and changes nothing; another brand sees nothing."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.kernel.ids import new_id
from services.kernel.pagination import encode_cursor
from services.members import service as members_service
from services.members.schemas import ApiKeyCreate
from services.webhooks.models import (
    Attempt,
    AttemptOutcome,
    Delivery,
    DeliveryStatus,
    Message,
)
from services.webhooks.operations import jobs, service
from tests.conftest import BrandFixture, bearer

BASE = "/webhooks/v1"
URL = "http://127.0.0.1:9/crm"

PENDING, SUCCEEDED, FAILED = DeliveryStatus.PENDING, DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED


async def _endpoint(client: httpx.AsyncClient, brand: BrandFixture) -> uuid.UUID:
    response = await client.post(
        f"{BASE}/endpoints", json={"url": URL, "event_types": ["*"]}, headers=brand.headers
    )
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])


async def _disable(client: httpx.AsyncClient, brand: BrandFixture, endpoint_id: uuid.UUID) -> None:
    response = await client.patch(
        f"{BASE}/endpoints/{endpoint_id}", json={"enabled": False}, headers=brand.headers
    )
    assert response.status_code == 200, response.text


async def _message(
    session: AsyncSession,
    brand: BrandFixture,
    created_at: datetime,
    event_type: str = "points.earned",
    member_id: uuid.UUID | None = None,
) -> Message:
    message_id = new_id()
    message = Message(
        id=message_id,
        brand_id=brand.id,
        event_type=event_type,
        member_id=member_id,
        occurred_at=created_at - timedelta(seconds=1),
        payload={"id": str(message_id), "type": event_type},
        created_at=created_at,
    )
    session.add(message)
    await session.flush()
    return message


async def _delivery(
    session: AsyncSession,
    message: Message,
    endpoint_id: uuid.UUID,
    status: DeliveryStatus,
    *,
    attempts: int = 0,
    next_attempt_at: datetime | None = None,
    leased_until: datetime | None = None,
    last_attempt_at: datetime | None = None,
) -> Delivery:
    delivery = Delivery(
        brand_id=message.brand_id,
        message_id=message.id,
        endpoint_id=endpoint_id,
        member_id=message.member_id,
        status=status,
        attempts=attempts,
        next_attempt_at=next_attempt_at or message.created_at,
        leased_until=leased_until,
        last_attempt_at=last_attempt_at,
        created_at=message.created_at,
    )
    session.add(delivery)
    await session.flush()
    return delivery


async def _attempt(
    session: AsyncSession,
    delivery: Delivery,
    attempted_at: datetime,
    *,
    status: int | None = 500,
    next_attempt_at: datetime | None = None,
) -> Attempt:
    ok = status is not None and 200 <= status < 300
    attempt = Attempt(
        brand_id=delivery.brand_id,
        delivery_id=delivery.id,
        message_id=delivery.message_id,
        endpoint_id=delivery.endpoint_id,
        attempted_at=attempted_at,
        outcome=AttemptOutcome.SUCCEEDED if ok else AttemptOutcome.FAILED,
        response_status=status,
        response_body="ok" if ok else ("oops" if status is not None else None),
        error=None if status is not None else "timeout",
        duration_ms=120,
        next_attempt_at=next_attempt_at,
    )
    session.add(attempt)
    await session.flush()
    return attempt


DeliveryRow = tuple[Any, ...]


async def _deliveries(session: AsyncSession) -> list[DeliveryRow]:
    """Every delivery as the database holds it now (columns, so nothing comes from the
    session's identity map)."""
    rows = await session.execute(
        select(
            Delivery.id,
            Delivery.message_id,
            Delivery.endpoint_id,
            Delivery.status,
            Delivery.attempts,
            Delivery.next_attempt_at,
            Delivery.leased_until,
            Delivery.last_attempt_at,
        ).order_by(Delivery.id)
    )
    return [tuple(row) for row in rows]


async def _delivery_row(session: AsyncSession, delivery_id: int) -> DeliveryRow:
    return next(row for row in await _deliveries(session) if row[0] == delivery_id)


def _ids(response: httpx.Response) -> list[Any]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def _at(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


@dataclass
class Mailbox:
    """A brand's two endpoints and five messages, newest last, with deliveries in every state
    (and another brand's message), as the list and detail tests read them."""

    a: uuid.UUID
    b: uuid.UUID
    theirs: uuid.UUID
    ana: uuid.UUID
    messages: list[Message]
    their_message: Message
    now: datetime


async def _mailbox(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
) -> Mailbox:
    a, b = await _endpoint(client, brand), await _endpoint(client, brand)
    theirs = await _endpoint(client, other_brand)
    ana, bo = uuid.uuid4(), uuid.uuid4()
    now = utcnow()
    kinds = [
        ("member.created", ana),
        ("points.earned", ana),
        ("points.earned", bo),
        ("tier.changed", ana),
        ("points.spent", bo),
    ]
    messages = [
        await _message(session, brand, now - timedelta(hours=5 - i), kind, member)
        for i, (kind, member) in enumerate(kinds)
    ]
    m0, m1, m2, m3, m4 = messages
    await _delivery(session, m0, a, SUCCEEDED, attempts=1, last_attempt_at=m0.created_at)
    await _delivery(session, m1, a, FAILED, attempts=8, last_attempt_at=m1.created_at)
    await _delivery(session, m1, b, SUCCEEDED, attempts=2, last_attempt_at=m1.created_at)
    await _delivery(session, m2, b, PENDING, attempts=1, next_attempt_at=now + timedelta(hours=1))
    await _delivery(session, m3, a, PENDING, next_attempt_at=now)
    await _delivery(session, m4, b, FAILED, attempts=8)
    their_message = await _message(session, other_brand, now - timedelta(minutes=30))
    await _delivery(session, their_message, theirs, FAILED, attempts=8)
    await session.commit()
    return Mailbox(a, b, theirs, ana, messages, their_message, now)


async def test_messages_are_listed_newest_first_and_filtered(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
) -> None:
    box = await _mailbox(client, session, brand, other_brand)
    m0, m1, m2, m3, m4 = (str(m.id) for m in box.messages)
    h = brand.headers

    async def listed(**params: Any) -> list[str]:
        return _ids(await client.get(f"{BASE}/messages", params=params, headers=h))

    everything = await client.get(f"{BASE}/messages", headers=h)
    assert _ids(everything) == [m4, m3, m2, m1, m0]
    first = everything.json()["items"][-1]
    assert first == {
        "id": m0,
        "event_type": "member.created",
        "member_id": str(box.ana),
        "occurred_at": first["occurred_at"],
        "created_at": first["created_at"],
    }  # no payload in lists
    assert _at(first["created_at"]) == box.messages[0].created_at
    assert _at(first["occurred_at"]) == box.messages[0].occurred_at

    # Pages of two follow each other to the end.
    page = (await client.get(f"{BASE}/messages", params={"limit": 2}, headers=h)).json()
    assert [i["id"] for i in page["items"]] == [m4, m3]
    page = (
        await client.get(f"{BASE}/messages", params={"limit": 2, "after": page["next"]}, headers=h)
    ).json()
    assert [i["id"] for i in page["items"]] == [m2, m1]
    page = (
        await client.get(f"{BASE}/messages", params={"limit": 2, "after": page["next"]}, headers=h)
    ).json()
    assert ([i["id"] for i in page["items"]], page["next"]) == ([m0], None)

    assert await listed(event_type="points.earned") == [m2, m1]
    assert await listed(event_type="points.*") == [m4, m2, m1]
    assert await listed(event_type="*") == [m4, m3, m2, m1, m0]
    assert await listed(member_id=str(box.ana)) == [m3, m1, m0]
    assert await listed(member_id=str(box.ana), event_type="points.*") == [m1]
    assert await listed(endpoint_id=str(box.a)) == [m3, m1, m0]
    assert await listed(endpoint_id=str(box.b)) == [m4, m2, m1]
    assert await listed(endpoint_id=str(box.a), status="failed") == [m1]
    assert await listed(endpoint_id=str(box.b), status="failed") == [m4]
    assert await listed(endpoint_id=str(box.b), status="succeeded") == [m1]
    assert await listed(status="failed") == [m4, m1]
    assert await listed(status="pending") == [m3, m2]
    created = [m.created_at for m in box.messages]
    assert await listed(since=created[1].isoformat()) == [m4, m3, m2, m1]
    assert await listed(until=created[3].isoformat()) == [m2, m1, m0]
    assert await listed(since=created[1].isoformat(), until=created[3].isoformat()) == [m2, m1]

    # The other brand sees its own message only, and nothing through this brand's endpoint.
    theirs = other_brand.headers
    assert _ids(await client.get(f"{BASE}/messages", headers=theirs)) == [str(box.their_message.id)]
    mine = await client.get(f"{BASE}/messages", params={"endpoint_id": str(box.a)}, headers=theirs)
    assert _ids(mine) == []
    assert await listed(endpoint_id=str(box.theirs)) == []


async def test_bad_message_filters_are_refused(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
) -> None:
    box = await _mailbox(client, session, brand, other_brand)
    now = box.now.isoformat()
    earlier = (box.now - timedelta(hours=1)).isoformat()
    cases: list[tuple[dict[str, Any], int, str, str | None]] = [
        ({"status": "lost"}, 422, "ValidationError", None),
        ({"since": now, "until": earlier}, 422, "InvalidTimeRange", "until"),
        ({"since": now, "until": now}, 422, "InvalidTimeRange", "until"),
        ({"since": "2024-01-01T00:00:00"}, 422, "ValidationError", None),  # no time zone
        ({"event_type": "pints.earned"}, 422, "UnknownEventType", "event_type"),
        ({"event_type": "points*"}, 422, "UnknownEventType", "event_type"),
        ({"event_type": "*.earned"}, 422, "UnknownEventType", "event_type"),
        ({"event_type": "points.*.*"}, 422, "UnknownEventType", "event_type"),
        ({"event_type": ""}, 422, "ValidationError", None),
        ({"member_id": "ana"}, 422, "ValidationError", None),
        ({"before": encode_cursor(box.messages[2].id)}, 400, "InvalidCursor", None),
        ({"after": "not-a-cursor"}, 400, "InvalidCursor", None),
        # A cursor naming no message of this brand (another brand's, or one purged since).
        ({"after": encode_cursor(box.their_message.id)}, 400, "InvalidCursor", None),
    ]  # fmt: skip
    for params, status, code, path in cases:
        response = await client.get(f"{BASE}/messages", params=params, headers=brand.headers)
        assert (response.status_code, response.json()["error"]) == (status, code), params
        if path is not None:
            assert response.json()["detail"]["path"] == path, params


async def test_a_message_shows_its_payload_and_deliveries(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
) -> None:
    box = await _mailbox(client, session, brand, other_brand)
    m1, m2 = box.messages[1], box.messages[2]
    response = await client.get(f"{BASE}/messages/{m1.id}", headers=brand.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["payload"] == {"id": str(m1.id), "type": "points.earned"}
    assert (body["id"], body["event_type"], body["member_id"]) == (
        str(m1.id),
        "points.earned",
        str(box.ana),
    )
    # A finished delivery has no next attempt, whatever its row still holds.
    assert body["deliveries"] == [
        {
            "message_id": str(m1.id),
            "endpoint_id": str(box.a),
            "status": "failed",
            "attempts": 8,
            "next_attempt_at": None,
            "last_attempt_at": body["deliveries"][0]["last_attempt_at"],
        },
        {
            "message_id": str(m1.id),
            "endpoint_id": str(box.b),
            "status": "succeeded",
            "attempts": 2,
            "next_attempt_at": None,
            "last_attempt_at": body["deliveries"][1]["last_attempt_at"],
        },
    ]
    assert [_at(d["last_attempt_at"]) for d in body["deliveries"]] == [m1.created_at] * 2
    pending = (await client.get(f"{BASE}/messages/{m2.id}", headers=brand.headers)).json()
    assert [(d["status"], d["attempts"]) for d in pending["deliveries"]] == [("pending", 1)]
    assert _at(pending["deliveries"][0]["next_attempt_at"]) == box.now + timedelta(hours=1)
    assert pending["deliveries"][0]["last_attempt_at"] is None

    for message_id, headers in (
        (m1.id, other_brand.headers),
        (box.their_message.id, brand.headers),
        (uuid.uuid4(), brand.headers),
    ):
        missing = await client.get(f"{BASE}/messages/{message_id}", headers=headers)
        assert (missing.status_code, missing.json()["error"]) == (404, "MessageNotFound")

    # Only keys with the `webhooks` scope reach messages.
    _, key = await members_service.create_api_key(
        session, brand.id, ApiKeyCreate(name="marketing only", scopes=["marketing:write"])
    )
    await session.commit()
    refused = await client.get(f"{BASE}/messages", headers=bearer(key))
    assert (refused.status_code, refused.json()["error"]) == (403, "Forbidden")


async def test_the_attempt_log_lists_attempts_newest_first(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
) -> None:
    a, b = await _endpoint(client, brand), await _endpoint(client, brand)
    theirs = await _endpoint(client, other_brand)
    now = utcnow()
    m1 = await _message(session, brand, now - timedelta(hours=2))
    m2 = await _message(session, brand, now - timedelta(hours=1))
    d1a = await _delivery(session, m1, a, SUCCEEDED, attempts=3)
    d1b = await _delivery(session, m1, b, FAILED, attempts=8)
    d2a = await _delivery(session, m2, a, PENDING, attempts=1)
    t = now - timedelta(minutes=100)
    first = await _attempt(session, d1a, t, status=None, next_attempt_at=t + timedelta(seconds=5))
    second = await _attempt(
        session, d1a, t + timedelta(minutes=1), next_attempt_at=t + timedelta(minutes=6)
    )
    third = await _attempt(session, d1a, t + timedelta(minutes=6), status=200)
    other = await _attempt(session, d1b, t + timedelta(minutes=2))
    latest = await _attempt(
        session, d2a, t + timedelta(minutes=70), next_attempt_at=t + timedelta(minutes=75)
    )
    their_message = await _message(session, other_brand, now - timedelta(hours=1))
    their_attempt = await _attempt(
        session, await _delivery(session, their_message, theirs, FAILED), t
    )
    await session.commit()
    h = brand.headers

    response = await client.get(f"{BASE}/messages/{m1.id}/attempts", headers=h)
    assert _ids(response) == [third.id, other.id, second.id, first.id]
    assert response.json()["items"][-1] == {
        "id": first.id,
        "message_id": str(m1.id),
        "endpoint_id": str(a),
        "attempted_at": response.json()["items"][-1]["attempted_at"],
        "outcome": "failed",
        "response_status": None,
        "response_body": None,
        "error": "timeout",
        "duration_ms": 120,
        "next_attempt_at": response.json()["items"][-1]["next_attempt_at"],
    }
    assert _at(response.json()["items"][-1]["attempted_at"]) == t
    assert _at(response.json()["items"][-1]["next_attempt_at"]) == t + timedelta(seconds=5)
    assert response.json()["items"][0]["next_attempt_at"] is None  # a success
    assert (
        response.json()["items"][0]["response_status"],
        response.json()["items"][0]["response_body"],
    ) == (200, "ok")
    only_a = await client.get(
        f"{BASE}/messages/{m1.id}/attempts", params={"endpoint_id": str(a)}, headers=h
    )
    assert _ids(only_a) == [third.id, second.id, first.id]

    # Pages of two follow each other to the end.
    page = (
        await client.get(f"{BASE}/messages/{m1.id}/attempts", params={"limit": 2}, headers=h)
    ).json()
    assert [i["id"] for i in page["items"]] == [third.id, other.id]
    page = (
        await client.get(
            f"{BASE}/messages/{m1.id}/attempts",
            params={"limit": 2, "after": page["next"]},
            headers=h,
        )
    ).json()
    assert ([i["id"] for i in page["items"]], page["next"]) == ([second.id, first.id], None)

    by_endpoint = await client.get(f"{BASE}/endpoints/{a}/attempts", headers=h)
    assert _ids(by_endpoint) == [latest.id, third.id, second.id, first.id]
    since = (t + timedelta(minutes=1)).isoformat()
    assert _ids(
        await client.get(f"{BASE}/endpoints/{a}/attempts", params={"since": since}, headers=h)
    ) == [latest.id, third.id, second.id]
    assert _ids(
        await client.get(f"{BASE}/endpoints/{a}/attempts", params={"outcome": "failed"}, headers=h)
    ) == [latest.id, second.id, first.id]
    assert _ids(
        await client.get(
            f"{BASE}/endpoints/{a}/attempts",
            params={"outcome": "succeeded", "since": since},
            headers=h,
        )
    ) == [third.id]
    assert _ids(await client.get(f"{BASE}/endpoints/{b}/attempts", headers=h)) == [other.id]

    # Bad input, and the other brand's rows, which are not there for this brand.
    cases: list[tuple[str, dict[str, Any], int, str]] = [
        (f"/endpoints/{a}/attempts", {"outcome": "maybe"}, 422, "ValidationError"),
        (f"/endpoints/{a}/attempts", {"since": "2024-01-01T00:00:00"}, 422, "ValidationError"),
        (f"/endpoints/{a}/attempts", {"before": encode_cursor(uuid.UUID(int=first.id))}, 400,
         "InvalidCursor"),
        (f"/endpoints/{a}/attempts", {"after": encode_cursor(uuid.uuid4())}, 400,
         "InvalidCursor"),
        (f"/endpoints/{a}/attempts", {"after": encode_cursor(uuid.UUID(int=their_attempt.id))},
         400, "InvalidCursor"),
        (f"/endpoints/{theirs}/attempts", {}, 404, "EndpointNotFound"),
        (f"/endpoints/{uuid.uuid4()}/attempts", {}, 404, "EndpointNotFound"),
        (f"/messages/{their_message.id}/attempts", {}, 404, "MessageNotFound"),
        (f"/messages/{uuid.uuid4()}/attempts", {}, 404, "MessageNotFound"),
    ]  # fmt: skip
    for path, params, status, code in cases:
        refused = await client.get(f"{BASE}{path}", params=params, headers=h)
        assert (refused.status_code, refused.json()["error"]) == (status, code), (path, params)
    mine = await client.get(f"{BASE}/messages/{m1.id}/attempts", headers=other_brand.headers)
    assert (mine.status_code, mine.json()["error"]) == (404, "MessageNotFound")
    assert _ids(await client.get(f"{BASE}/endpoints/{theirs}/attempts",
                                 headers=other_brand.headers)) == [their_attempt.id]  # fmt: skip


async def test_a_resend_restarts_the_delivery_whatever_its_status(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
) -> None:
    a = await _endpoint(client, brand)
    now = utcnow()
    last = now - timedelta(minutes=5)
    earlier = now - timedelta(hours=1)
    deliveries = [
        await _delivery(
            session,
            await _message(session, brand, earlier),
            a,
            status,
            attempts=attempts,
            next_attempt_at=due,
            leased_until=lease,
            last_attempt_at=last,
        )
        for status, attempts, due, lease in (
            (SUCCEEDED, 1, earlier, None),
            (FAILED, 8, earlier, None),
            (PENDING, 3, now + timedelta(hours=2), None),
            # A worker took it and died: its lease ran out.
            (PENDING, 2, now - timedelta(seconds=1), now - timedelta(seconds=1)),
        )
    ]
    attempt = await _attempt(session, deliveries[1], last)
    await session.commit()
    for delivery in deliveries:
        before = utcnow()
        response = await client.post(
            f"{BASE}/messages/{delivery.message_id}/endpoints/{a}/resend", headers=brand.headers
        )
        assert response.status_code == 202, response.text
        body = response.json()
        assert body == {
            "message_id": str(delivery.message_id),
            "endpoint_id": str(a),
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": body["next_attempt_at"],
            "last_attempt_at": body["last_attempt_at"],
        }
        assert _at(body["last_attempt_at"]) == last
        due = _at(body["next_attempt_at"])
        assert due is not None
        assert before <= due <= utcnow()
        assert await _delivery_row(session, delivery.id) == (
            delivery.id,
            delivery.message_id,
            a,
            PENDING,
            0,
            due,
            None,
            last,
        )
    # The attempt log keeps the earlier schedule's attempts.
    assert list(await session.scalars(select(Attempt.id))) == [attempt.id]

    # A retried resend with its Idempotency-Key answers as the first did and changes nothing.
    delivery = deliveries[0]
    path = f"{BASE}/messages/{delivery.message_id}/endpoints/{a}/resend"
    headers = {**brand.headers, "Idempotency-Key": "resend-1"}
    first = await client.post(path, headers=headers)
    assert first.status_code == 202, first.text
    row = await _delivery_row(session, delivery.id)
    replay = await client.post(path, headers=headers)
    assert (replay.status_code, replay.json()) == (202, first.json())
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert await _delivery_row(session, delivery.id) == row


async def test_bad_resends_are_refused_and_change_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
) -> None:
    a, off, unused = [await _endpoint(client, brand) for _ in range(3)]
    theirs = await _endpoint(client, other_brand)
    await _disable(client, brand, off)
    now = utcnow()
    message = await _message(session, brand, now - timedelta(minutes=1))
    in_flight = await _message(session, brand, now - timedelta(minutes=1))
    await _delivery(session, message, a, FAILED, attempts=8)
    await _delivery(session, message, off, FAILED, attempts=8)
    await _delivery(
        session,
        in_flight,
        a,
        PENDING,
        attempts=1,
        next_attempt_at=now + timedelta(seconds=30),
        leased_until=now + timedelta(seconds=30),
    )
    their_message = await _message(session, other_brand, now - timedelta(minutes=1))
    await _delivery(session, their_message, theirs, FAILED, attempts=8)
    await session.commit()
    before = await _deliveries(session)

    cases: list[tuple[uuid.UUID, uuid.UUID, dict[str, str], int, str]] = [
        (in_flight.id, a, brand.headers, 409, "DeliveryInFlight"),
        (message.id, off, brand.headers, 409, "EndpointDisabled"),
        (message.id, unused, brand.headers, 404, "DeliveryNotFound"),  # never sent there
        (uuid.uuid4(), a, brand.headers, 404, "DeliveryNotFound"),
        (their_message.id, theirs, brand.headers, 404, "DeliveryNotFound"),
        (message.id, a, other_brand.headers, 404, "DeliveryNotFound"),
    ]
    for message_id, endpoint_id, headers, status, code in cases:
        response = await client.post(
            f"{BASE}/messages/{message_id}/endpoints/{endpoint_id}/resend", headers=headers
        )
        assert (response.status_code, response.json()["error"]) == (status, code), code
    refused = await client.post(
        f"{BASE}/messages/{in_flight.id}/endpoints/{a}/resend", headers=brand.headers
    )
    assert "try again in a few seconds" in refused.json()["detail"]
    disabled = await client.post(
        f"{BASE}/messages/{message.id}/endpoints/{off}/resend", headers=brand.headers
    )
    assert "enable it first" in disabled.json()["detail"]
    assert await _deliveries(session) == before


async def test_a_recovery_retries_what_failed_for_the_endpoint_since_a_time(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
) -> None:
    a, b = await _endpoint(client, brand), await _endpoint(client, brand)
    theirs = await _endpoint(client, other_brand)
    now = utcnow()
    since = now - timedelta(days=2)

    async def sent(
        age: timedelta, endpoint_id: uuid.UUID, status: DeliveryStatus, owner: BrandFixture = brand
    ) -> Delivery:
        message = await _message(session, owner, now - age)
        return await _delivery(
            session, message, endpoint_id, status, attempts=8, last_attempt_at=now - age
        )

    recovered = [
        await sent(timedelta(days=2), a, FAILED),  # exactly at `since`: included
        await sent(timedelta(hours=1), a, FAILED),
    ]
    await sent(timedelta(days=3), a, FAILED)  # before `since`
    await sent(timedelta(days=1), a, SUCCEEDED)
    await sent(timedelta(days=1), a, PENDING)
    await sent(timedelta(days=1), b, FAILED)  # another endpoint
    await sent(timedelta(days=1), theirs, FAILED, other_brand)
    await session.commit()
    before = {row[0]: row for row in await _deliveries(session)}

    started = utcnow()
    response = await client.post(
        f"{BASE}/endpoints/{a}/recover", json={"since": since.isoformat()}, headers=brand.headers
    )
    assert (response.status_code, response.json()) == (202, {"recovered": 2}), response.text
    after = {row[0]: row for row in await _deliveries(session)}
    changed = {key for key in after if after[key] != before[key]}
    assert changed == {d.id for d in recovered}
    for delivery in recovered:
        *_, status, attempts, due, lease, last = after[delivery.id]
        assert (status, attempts, lease, last) == (PENDING, 0, None, before[delivery.id][7])
        assert started <= due <= utcnow()

    # The recovered ones are pending now: a recovery from 14 days back (the limit, allowed)
    # finds only the failure from before `since`.
    again = await client.post(
        f"{BASE}/endpoints/{a}/recover",
        json={"since": (utcnow() - timedelta(days=14)).isoformat()},
        headers=brand.headers,
    )
    assert (again.status_code, again.json()) == (202, {"recovered": 1})


async def test_bad_recoveries_are_refused_and_change_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
) -> None:
    a, off = await _endpoint(client, brand), await _endpoint(client, brand)
    theirs = await _endpoint(client, other_brand)
    await _disable(client, brand, off)
    now = utcnow()
    for endpoint_id, owner in ((a, brand), (off, brand), (theirs, other_brand)):
        message = await _message(session, owner, now - timedelta(days=1))
        await _delivery(session, message, endpoint_id, FAILED, attempts=8)
    await session.commit()
    before = await _deliveries(session)
    yesterday = (now - timedelta(days=2)).isoformat()

    cases: list[tuple[uuid.UUID, Any, dict[str, str], int, str]] = [
        (a, {"since": (now - timedelta(days=14, hours=1)).isoformat()}, brand.headers, 422,
         "RecoverTooFarBack"),
        (a, {"since": (now + timedelta(hours=1)).isoformat()}, brand.headers, 422,
         "RecoverFromFuture"),
        (a, {"since": "2024-01-01T00:00:00"}, brand.headers, 422, "ValidationError"),
        (a, {"since": yesterday, "until": yesterday}, brand.headers, 422, "ValidationError"),
        (a, {}, brand.headers, 422, "ValidationError"),
        (off, {"since": yesterday}, brand.headers, 409, "EndpointDisabled"),
        (theirs, {"since": yesterday}, brand.headers, 404, "EndpointNotFound"),
        (a, {"since": yesterday}, other_brand.headers, 404, "EndpointNotFound"),
        (uuid.uuid4(), {"since": yesterday}, brand.headers, 404, "EndpointNotFound"),
    ]  # fmt: skip
    for endpoint_id, body, headers, status, code in cases:
        response = await client.post(
            f"{BASE}/endpoints/{endpoint_id}/recover", json=body, headers=headers
        )
        assert (response.status_code, response.json()["error"]) == (status, code), body
        if code.startswith("Recover"):
            assert response.json()["detail"]["path"] == "since"
    far = await client.post(
        f"{BASE}/endpoints/{a}/recover",
        json={"since": (now - timedelta(days=30)).isoformat()},
        headers=brand.headers,
    )
    assert "at most 14 days" in far.json()["detail"]["message"]
    assert await _deliveries(session) == before


async def test_the_retention_job_drops_old_messages_with_their_log(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
) -> None:
    assert jobs.RETENTION_JOB.name == "webhooks.purge_messages"
    assert jobs.RETENTION_JOB.cron is not None
    a, theirs = await _endpoint(client, brand), await _endpoint(client, other_brand)
    now = utcnow()
    kept: set[uuid.UUID] = set()
    for owner, endpoint_id in ((brand, a), (other_brand, theirs)):
        for days, keep in ((200, False), (91, False), (91, False), (89, True), (0, True)):
            message = await _message(session, owner, now - timedelta(days=days))
            delivery = await _delivery(session, message, endpoint_id, FAILED, attempts=8)
            await _attempt(session, delivery, message.created_at)
            if keep:
                kept.add(message.id)
    await session.commit()

    assert await jobs.purge_messages(session) == 6  # 90 days by default
    await session.commit()
    assert set(await session.scalars(select(Message.id))) == kept
    assert set(await session.scalars(select(Delivery.message_id))) == kept
    assert set(await session.scalars(select(Attempt.message_id))) == kept
    assert await jobs.purge_messages(session) == 0

    # In batches of two, every batch full until the last: all of them go, brand by brand.
    assert await service.purge_messages(session, timedelta(0), batch=2) == 4
    assert await session.scalar(select(func.count()).select_from(Message)) == 0
    assert await session.scalar(select(func.count()).select_from(Delivery)) == 0
    assert await session.scalar(select(func.count()).select_from(Attempt)) == 0
