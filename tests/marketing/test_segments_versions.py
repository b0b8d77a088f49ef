"""Materialised versions: stays opened and closed, who entered and exited between versions,
the `segment.entered` / `segment.exited` events in marketing's outbox, consent withdrawn and
members erased leaving, and the schedule."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clients import Peers
from services.kernel.clock import utcnow
from services.kernel.ids import new_id
from services.marketing.models import MemberView, RefreshEvery, Segment, SegmentPurpose
from services.marketing.segments import repository, service
from services.marketing.segments.tasks import REFRESH_JOB
from tests.conftest import BrandFixture
from tests.marketing.segments_world import (
    World,
    build_world,
    create,
    member_id,
    names,
    outbox_events,
)

RICH = {"field": "points_available", "op": "gte", "value": 100}


@pytest.fixture
async def world(session: AsyncSession, brand: BrandFixture) -> World:
    return await build_world(session, brand.id, utcnow())


async def _points(session: AsyncSession, world: World, **points: int) -> None:
    for name, value in points.items():
        await session.execute(
            update(MemberView)
            .where(MemberView.brand_id == world.brand_id, MemberView.member_id == member_id(name))
            .values(points_available=value)
        )


async def _materialise(
    client: httpx.AsyncClient, brand: BrandFixture, segment: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post(
        f"/marketing/v1/segments/{segment['id']}/versions", headers=brand.headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _changes(events: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    return [(e["type"], names([e["subject_id"]]).pop(), e["data"]["version"]) for e in events]


async def _ids(session: AsyncSession, query: Any) -> set[str]:
    return names(await session.scalars(query))


async def test_versions_record_who_entered_and_exited_and_send_an_event_for_each(
    client: httpx.AsyncClient, session: AsyncSession, world: World, brand: BrandFixture
) -> None:
    segment = await create(client, brand, RICH, name="Rich")
    first = await _materialise(client, brand, segment)
    assert {
        k: first[k] for k in ("segment_id", "version", "size", "entered", "exited", "rule")
    } == {
        "segment_id": segment["id"],
        "version": 1,
        "size": 3,
        "entered": 3,
        "exited": 0,
        "rule": RICH,
    }
    events = await outbox_events(session, brand.id)
    assert _changes(events) == [
        ("segment.entered", "ana", 1),
        ("segment.entered", "bo", 1),
        ("segment.entered", "di", 1),
    ]
    assert events[0]["data"] == {
        "segment_id": segment["id"],
        "segment_name": "Rich",
        "member_id": str(member_id("ana")),
        "version": 1,
    }
    assert events[0]["brand_id"] == str(brand.id)
    assert events[0]["occurred_at"].startswith(first["computed_at"][:19])

    await _points(session, world, bo=50, ed=200)
    second = await _materialise(client, brand, segment)
    assert (second["version"], second["size"], second["entered"], second["exited"]) == (2, 3, 1, 1)
    third = await _materialise(client, brand, segment)  # nothing changed
    assert (third["version"], third["size"], third["entered"], third["exited"]) == (3, 3, 0, 0)
    await _points(session, world, bo=150)
    fourth = await _materialise(client, brand, segment)
    assert (fourth["version"], fourth["size"], fourth["entered"], fourth["exited"]) == (4, 4, 1, 0)

    assert _changes((await outbox_events(session, brand.id))[3:]) == [
        ("segment.exited", "bo", 2),
        ("segment.entered", "ed", 2),
        ("segment.entered", "bo", 4),  # back again
    ]

    sid = uuid.UUID(segment["id"])
    assert await _ids(session, repository.version_members(sid, 0)) == set()
    assert await _ids(session, repository.version_members(sid, 2)) == {"ana", "di", "ed"}
    assert await _ids(session, repository.version_members(sid, 4)) == {"ana", "bo", "di", "ed"}
    assert await _ids(session, repository.entered_between(sid, 0, 1)) == {"ana", "bo", "di"}
    assert await _ids(session, repository.entered_between(sid, 1, 3)) == {"ed"}
    assert await _ids(session, repository.exited_between(sid, 1, 3)) == {"bo"}
    # bo left at 2 and came back at 4: between 1 and 4 neither entered nor exited.
    assert await _ids(session, repository.entered_between(sid, 1, 4)) == {"ed"}
    assert await _ids(session, repository.exited_between(sid, 1, 4)) == set()
    assert await _ids(session, repository.entered_between(sid, 2, 4)) == {"bo"}

    url = f"/marketing/v1/segments/{segment['id']}"
    read = await client.get(url, headers=brand.headers)
    assert read.json()["version"] == 4
    listed = await client.get(f"{url}/versions", headers=brand.headers)
    assert [v["version"] for v in listed.json()] == [4, 3, 2, 1]
    older = await client.get(f"{url}/versions?before=3&limit=1", headers=brand.headers)
    assert [v["version"] for v in older.json()] == [2]
    one = await client.get(f"{url}/versions/2", headers=brand.headers)
    assert one.json() == second
    missing = await client.get(f"{url}/versions/9", headers=brand.headers)
    assert (missing.status_code, missing.json()["error"]) == (404, "VersionNotFound")

    for version, kind, expected in (
        (2, "entered", ["ed"]),
        (2, "exited", ["bo"]),
        (3, "entered", []),
        (4, "entered", ["bo"]),
    ):
        page = await client.get(
            f"{url}/versions/{version}/changes?kind={kind}", headers=brand.headers
        )
        assert page.status_code == 200, page.text
        assert [names([i["member_id"]]).pop() for i in page.json()["items"]] == expected
        assert page.json()["next"] is None
    walked: list[str] = []
    cursor = ""
    while True:
        page = await client.get(
            f"{url}/versions/1/changes?kind=entered&limit=2{cursor}", headers=brand.headers
        )
        walked += [names([i["member_id"]]).pop() for i in page.json()["items"]]
        if page.json()["next"] is None:
            break
        cursor = f"&after={page.json()['next']}"
    assert walked == ["ana", "bo", "di"]
    bad_kind = await client.get(f"{url}/versions/1/changes?kind=stayed", headers=brand.headers)
    assert bad_kind.status_code == 422

    member = await client.get(f"/marketing/v1/members/{member_id('ed')}", headers=brand.headers)
    assert member.json()["segments"] == [segment["id"]]


async def test_withdrawn_consent_and_erasure_make_members_exit(
    client: httpx.AsyncClient, session: AsyncSession, world: World, brand: BrandFixture
) -> None:
    buyers = await create(
        client,
        brand,
        {"field": "order_count", "op": "gte", "value": 1},
        purpose="email_marketing",
        name="Buyers by email",
    )
    analytics = await create(client, brand, {"field": "order_count", "op": "gte", "value": 1})
    assert (await _materialise(client, brand, buyers))["size"] == 3  # ana, bo, ed
    assert (await _materialise(client, brand, analytics))["size"] == 4  # and di
    await session.execute(
        update(MemberView)
        .where(MemberView.brand_id == world.brand_id, MemberView.member_id == member_id("bo"))
        .values(consents=[])
    )
    await session.execute(  # ed erased: the 360 row is gone
        delete(MemberView).where(
            MemberView.brand_id == world.brand_id, MemberView.member_id == member_id("ed")
        )
    )
    second = await _materialise(client, brand, buyers)
    assert (second["size"], second["entered"], second["exited"]) == (1, 0, 2)
    again = await _materialise(client, brand, analytics)
    assert (again["size"], again["entered"], again["exited"]) == (3, 0, 1)  # bo stays: analytics
    exits = [e for e in await outbox_events(session, brand.id) if e["type"] == "segment.exited"]
    assert sorted((e["data"]["segment_name"], names([e["subject_id"]]).pop()) for e in exits) == [
        ("Buyers by email", "bo"),
        ("Buyers by email", "ed"),
        ("segment", "ed"),
    ]


async def test_events_are_written_a_chunk_at_a_time(
    session: AsyncSession, world: World, brand: BrandFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "EVENT_CHUNK", 2)
    segment = Segment(
        id=new_id(),
        brand_id=brand.id,
        name="everyone",
        rule={"field": "points_available", "op": "gte", "value": 0},
        uses=[],
        purpose=SegmentPurpose.ANALYTICS,
        refresh=RefreshEvery.MANUAL,
        version=0,
    )
    session.add(segment)
    await session.flush()
    version = await service.materialise(session, segment)
    assert (version.version, version.size, version.entered) == (1, 5, 5)
    assert _changes(await outbox_events(session, brand.id)) == [
        ("segment.entered", name, 1) for name in ("ana", "bo", "cy", "di", "ed")
    ]


async def test_the_schedule_materialises_segments_whose_refresh_is_due(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    world: World,
    brand: BrandFixture,
) -> None:
    hourly = await create(client, brand, RICH, refresh="hourly", name="hourly")
    daily = await create(client, brand, RICH, refresh="daily", name="daily")
    manual = await create(client, brand, RICH, refresh="manual", name="manual")
    # A due segment that cannot be computed now (the recommender knows no such item) is
    # skipped and the others still are.
    broken = Segment(
        id=new_id(),
        brand_id=brand.id,
        name="affinity",
        rule={"affinity": {"item": "perk:1", "top_share": 0.5}},
        uses=[],
        purpose=SegmentPurpose.ANALYTICS,
        refresh=RefreshEvery.HOURLY,
        version=0,
    )
    session.add(broken)
    await session.flush()
    now = utcnow()
    peers = Peers.of(app)

    async def versions() -> dict[str, int]:
        out = {}
        for segment in (hourly, daily, manual):
            read = await client.get(
                f"/marketing/v1/segments/{segment['id']}", headers=brand.headers
            )
            out[segment["name"]] = read.json()["version"]
        return out

    assert await REFRESH_JOB.function(session, peers=peers, now=now) == 2
    assert await versions() == {"hourly": 1, "daily": 1, "manual": 0}
    assert await REFRESH_JOB.function(session, peers=peers, now=now + timedelta(minutes=10)) == 0
    assert await REFRESH_JOB.function(session, peers=peers, now=now + timedelta(minutes=60)) == 1
    assert await versions() == {"hourly": 2, "daily": 1, "manual": 0}
    assert await REFRESH_JOB.function(session, peers=peers, now=now + timedelta(days=1)) == 2
    assert await versions() == {"hourly": 3, "daily": 2, "manual": 0}
    await session.refresh(broken)
    assert broken.version == 0
    assert REFRESH_JOB.cron is not None
