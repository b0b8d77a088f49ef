"""Experiences and sessions read by ids (the gateway's batch reads), and sessions found by place:
only the caller's brand, any time or status, at most 100 ids, one statement for the lot."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.community.conftest import MakeMember
from tests.community.experience_helpers import (
    API,
    book,
    create_experience,
    create_session,
    error,
)
from tests.conftest import BrandFixture, MemberFixture


@contextmanager
def statements_on(connection: AsyncConnection, table: str) -> Iterator[list[str]]:
    """The SQL statements run on the test's connection that select `FROM table` (joins to it
    from another table do not count)."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        statement = str(args[2])
        if f"FROM {table} " in statement:
            seen.append(statement)

    event.listen(connection.sync_connection, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(connection.sync_connection, "before_cursor_execute", record)


async def test_experiences_by_ids_answer_only_the_brands_own_in_one_statement(
    client: httpx.AsyncClient,
    connection: AsyncConnection,
    brand: BrandFixture,
    other_brand: BrandFixture,
    member: MemberFixture,
) -> None:
    glow = await create_experience(client, brand.headers, tags=["skincare"])
    curls = await create_experience(client, brand.headers, title="Curls", kind="workshop")
    foreign = await create_experience(client, other_brand.headers)
    unknown = str(uuid.uuid4())

    with statements_on(connection, "community.experiences") as seen:
        response = await client.get(
            f"{API}/experiences",
            # Filters and paging do not apply to a read by ids; a repeated id is answered once.
            params={
                "ids": [curls["id"], foreign["id"], glow["id"], unknown, glow["id"]],
                "tag": "hair",
                "limit": 1,
            },
            headers=member.headers,
        )
    assert response.status_code == 200, response.text
    assert response.json() == {"items": [glow, curls], "next": None, "previous": None}
    assert len(seen) == 1

    staff = await client.get(
        f"{API}/experiences", params={"ids": [foreign["id"]]}, headers=brand.headers
    )
    assert staff.json() == {"items": [], "next": None, "previous": None}


async def test_sessions_by_ids_include_past_and_cancelled_and_hide_what_a_member_may_not_see(
    client: httpx.AsyncClient,
    connection: AsyncConnection,
    brand: BrandFixture,
    other_brand: BrandFixture,
    member: MemberFixture,
    make_member: MakeMember,
) -> None:
    online = {"kind": "online", "url": "https://meet.example.com/glow"}
    booked = await create_session(client, brand.headers, place=online)
    not_booked = await create_session(client, brand.headers, place=online)
    cancelled = await create_session(client, brand.headers)
    await client.post(f"{API}/sessions/{cancelled['id']}/cancel", json={}, headers=brand.headers)
    foreign = await create_session(client, other_brand.headers)
    assert (await book(client, member, booked["id"])).status_code == 201
    # Another member's confirmed booking shows this member nothing.
    cy = await make_member("cy")
    assert (await book(client, cy, not_booked["id"])).status_code == 201

    ids = [not_booked["id"], cancelled["id"], foreign["id"], booked["id"]]
    with statements_on(connection, "community.experience_sessions") as seen:
        response = await client.get(f"{API}/sessions", params={"ids": ids}, headers=member.headers)
    assert response.status_code == 200, response.text
    assert len(seen) == 1
    page = response.json()
    assert page["next"] is None
    answered = {item["id"]: item for item in page["items"]}
    assert sorted(answered) == sorted([booked["id"], not_booked["id"], cancelled["id"]])
    # The link for the confirmed guest only; the check-in code for nobody but the host.
    assert answered[booked["id"]]["place"]["url"] == "https://meet.example.com/glow"
    assert answered[booked["id"]]["seats_taken"] == 1
    assert answered[not_booked["id"]]["place"]["url"] is None
    assert answered[cancelled["id"]]["status"] == "cancelled"
    assert {item["check_in_code"] for item in page["items"]} == {None}

    as_staff = await client.get(f"{API}/sessions", params={"ids": ids}, headers=brand.headers)
    codes = {item["id"]: item["check_in_code"] for item in as_staff.json()["items"]}
    assert codes[booked["id"]] == booked["check_in_code"]


async def test_at_most_a_hundred_ids(
    client: httpx.AsyncClient, brand: BrandFixture, member: MemberFixture
) -> None:
    many = [str(uuid.uuid4()) for _ in range(101)]
    for path in ("experiences", "sessions"):
        response = await client.get(f"{API}/{path}", params={"ids": many}, headers=member.headers)
        assert error(response) == (422, "ValidationError")
        hundred = await client.get(
            f"{API}/{path}", params={"ids": many[:100]}, headers=member.headers
        )
        assert hundred.json() == {"items": [], "next": None, "previous": None}
    not_an_id = await client.get(
        f"{API}/sessions", params={"ids": ["nope"]}, headers=member.headers
    )
    assert error(not_an_id) == (422, "ValidationError")


async def test_sessions_are_found_by_text_in_their_address(
    client: httpx.AsyncClient, brand: BrandFixture, member: MemberFixture
) -> None:
    start = datetime(2031, 5, 1, 18, tzinfo=UTC)

    async def at(days: int, place: dict[str, str]) -> str:
        starts = start + timedelta(days=days)
        made = await create_session(
            client,
            brand.headers,
            starts_at=starts.isoformat(),
            ends_at=(starts + timedelta(hours=1)).isoformat(),
            place=place,
        )
        return str(made["id"])

    paris = await at(1, {"kind": "address", "address": "12 rue de Rivoli, Paris"})
    lyon = await at(2, {"kind": "address", "address": "3 place Bellecour, Lyon"})
    odd = await at(3, {"kind": "address", "address": "Unit 100%_B, Paris-Nord"})
    await at(4, {"kind": "online", "url": "https://meet.example.com/paris"})

    async def found(place: str) -> list[str]:
        response = await client.get(
            f"{API}/sessions", params={"place": place}, headers=member.headers
        )
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert await found("paris") == [paris, odd]
    assert await found("  LYON ") == [lyon]
    # LIKE's wildcards are taken literally.
    assert await found("100%_b") == [odd]
    assert await found("%") == [odd]
    assert await found("_") == [odd]
    assert await found("Marseille") == []
