"""Fair drops: setting them up, entering in the right window, drawing fairly and reproducibly."""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.auth import MemberTokenCodec
from services.kernel.clock import utcnow
from services.kernel.db import Database
from services.kernel.settings import Settings
from services.members import service as members_service
from services.registry import SERVICES
from services.rewards.drops import service
from services.rewards.drops.schemas import DropCreate
from services.rewards.drops.tasks import DRAW_DROPS_JOB, draw_due_drops
from services.rewards.ledger import service as ledger
from services.rewards.ledger.repository import LedgerRepository
from services.rewards.models import (
    Account,
    Bucket,
    Drop,
    DropEntry,
    DropStatus,
    EntryKind,
    LedgerEntry,
    Perk,
    Program,
    Redemption,
)
from services.rewards.module import REWARDS
from services.rewards.perks import service as perks_service
from services.rewards.perks.schemas import PerkCreate
from tests.conftest import BrandFixture, MemberFixture, app_for, bearer, make_runtime, purge_brand
from tests.rewards.conftest import DEFAULT_PROGRAM, MakeMember, rewards_events
from tests.rewards.perk_helpers import (
    balance,
    create_perk,
    error,
    give,
    make_tier,
    perk_body,
    redeem,
    set_tier,
)

T0 = datetime.fromisoformat("2030-05-01T10:00:00+00:00")
OPENS = T0 + timedelta(hours=2)
CLOSES = T0 + timedelta(hours=4)


def drop_body(perk_id: Any, **changes: Any) -> dict[str, Any]:
    now = utcnow()
    body: dict[str, Any] = {
        "perk_id": str(perk_id),
        "method": "draw",
        "units": 2,
        "opens_at": (now - timedelta(hours=1)).isoformat(),
        "closes_at": (now + timedelta(hours=1)).isoformat(),
    }
    body.update(changes)
    return body


async def create_drop(
    client: httpx.AsyncClient, brand: BrandFixture, perk_id: Any, **changes: Any
) -> dict[str, Any]:
    response = await client.post(
        "/rewards/v1/drops", json=drop_body(perk_id, **changes), headers=brand.headers
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def close_entries(session: AsyncSession, drop_id: Any) -> None:
    """Moves a drop's window into the past, as if its time had come."""
    now = utcnow()
    await session.execute(
        update(Drop)
        .where(Drop.id == uuid.UUID(str(drop_id)))
        .values(
            early_opens_at=None,
            opens_at=now - timedelta(hours=2),
            closes_at=now - timedelta(minutes=1),
        )
    )


async def enter(client: httpx.AsyncClient, member: MemberFixture, drop_id: Any) -> httpx.Response:
    return await client.post(f"/rewards/v1/me/drops/{drop_id}/entries", headers=member.headers)


async def count(session: AsyncSession, model: Any) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def reference_order(seed: str, drop_id: str, entrants: list[str]) -> list[str]:
    """The documented procedure, written out again here, independent of the service's code."""
    shuffled = sorted(entrants)
    random.Random(f"{seed}:{drop_id}").shuffle(shuffled)
    return shuffled


async def service_drop(
    session: AsyncSession, brand_id: uuid.UUID, perk_id: Any, **changes: Any
) -> Drop:
    fields: dict[str, Any] = {
        "perk_id": perk_id,
        "method": "draw",
        "units": 2,
        "opens_at": OPENS,
        "closes_at": CLOSES,
        **changes,
    }
    return await service.create_drop(session, brand_id, DropCreate(**fields), now=T0)


# --- Setting up -----------------------------------------------------------------------------


async def test_staff_set_up_a_drop_and_its_perk_becomes_drop_only(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    program: Program,
) -> None:
    gold = await make_tier(session, brand.id, "Gold", 1)
    perk = await create_perk(client, brand, name="Sneaker", inventory_total=5, cost_points=100)
    body = drop_body(
        perk["id"],
        units=3,
        opens_at="2031-01-01T12:00:00Z",
        closes_at="2031-01-02T12:00:00+02:00",
        early_opens_at="2031-01-01T10:00:00Z",
        early_tier_ids=[str(gold)],
        seed="correct horse battery staple",
    )
    created = await client.post("/rewards/v1/drops", json=body, headers=brand.headers)
    assert created.status_code == 201, created.text
    drop = created.json()
    assert drop == {
        "id": drop["id"],
        "perk_id": perk["id"],
        "method": "draw",
        "units": 3,
        "early_opens_at": "2031-01-01T10:00:00Z",
        "early_tier_ids": [str(gold)],
        "opens_at": "2031-01-01T12:00:00Z",
        "closes_at": "2031-01-02T10:00:00Z",
        "status": "scheduled",
        "drawn_at": None,
        "seed_sha256": hashlib.sha256(b"correct horse battery staple").hexdigest(),
        "seed": None,
        "created_at": drop["created_at"],
    }
    assert (
        await client.get(f"/rewards/v1/drops/{drop['id']}", headers=brand.headers)
    ).json() == drop
    random_seed = await create_drop(client, brand, perk["id"], units=1)
    assert random_seed["seed"] is None
    assert len(random_seed["seed_sha256"]) == 64

    listed = await client.get("/rewards/v1/drops", headers=brand.headers)
    assert [d["id"] for d in listed.json()["items"]] == [drop["id"], random_seed["id"]]
    by_perk = await client.get(
        "/rewards/v1/drops", params={"perk_id": str(uuid.uuid4())}, headers=brand.headers
    )
    assert by_perk.json()["items"] == []
    drawn = await client.get("/rewards/v1/drops", params={"status": "drawn"}, headers=brand.headers)
    assert drawn.json()["items"] == []

    await give(session, program, member.id, 500)
    assert error(await redeem(client, member, perk["id"])) == (409, "DropOnly")


@pytest.mark.parametrize(
    ("change", "location"),
    [
        ({"closes_at": "2020-01-01T00:00:00Z"}, ["body", "closes_at"]),
        (
            {"early_opens_at": "2100-01-01T00:00:00Z", "early_tier_ids": []},
            ["body", "early_opens_at"],
        ),
        ({"units": 0}, ["body", "units"]),
        ({"units": "2"}, ["body", "units"]),
        ({"method": "auction"}, ["body", "method"]),
        ({"seed": "short"}, ["body", "seed"]),
        ({"opens_at": "2031-01-01T00:00:00"}, ["body", "opens_at"]),
        ({"prize": "car"}, ["body", "prize"]),
    ],
)
async def test_bad_drops_are_refused_and_nothing_is_written(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    change: dict[str, Any],
    location: list[str],
) -> None:
    perk = await create_perk(client, brand, inventory_total=5)
    response = await client.post(
        "/rewards/v1/drops", json=drop_body(perk["id"], **change), headers=brand.headers
    )
    assert error(response) == (422, "ValidationError")
    assert [d["loc"] for d in response.json()["detail"]] == [location]
    assert await count(session, Drop) == 0


async def test_drops_that_do_not_fit_their_perk_or_tiers_are_refused(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture
) -> None:
    perk = await create_perk(client, brand, inventory_total=5)
    now = utcnow()

    async def refused(perk_id: Any, **changes: Any) -> tuple[int, str, list[Any], str]:
        response = await client.post(
            "/rewards/v1/drops", json=drop_body(perk_id, **changes), headers=brand.headers
        )
        detail = response.json()["detail"][0]
        return response.status_code, response.json()["error"], detail["loc"], detail["msg"]

    unknown = uuid.uuid4()
    assert await refused(unknown) == (
        422,
        "UnknownPerk",
        ["body", "perk_id"],
        f"no perk {unknown} in this brand",
    )
    early = (now - timedelta(hours=2)).isoformat()
    assert (await refused(perk["id"], early_opens_at=early))[:3] == (
        422,
        "ValidationError",
        ["body", "early_tier_ids"],
    )
    assert (await refused(perk["id"], early_opens_at=early, early_tier_ids=[str(uuid.uuid4())]))[
        :3
    ] == (422, "UnknownTier", ["body", "early_tier_ids"])
    assert await refused(perk["id"], units=6) == (
        422,
        "InventoryTooLow",
        ["body", "units"],
        "the perk has 5 units left and its drops would promise 6",
    )
    assert (await refused(perk["id"], closes_at=(now - timedelta(minutes=30)).isoformat()))[:4] == (
        422,
        "ValidationError",
        ["body", "closes_at"],
        "must be in the future",
    )
    birthday = await create_perk(client, brand, is_birthday_gift=True)
    assert (await refused(birthday["id"]))[:3] == (422, "ValidationError", ["body", "perk_id"])
    codes = await create_perk(client, brand, kind="discount_code")
    await client.post(
        f"/rewards/v1/perks/{codes['id']}/codes", json={"codes": ["A"]}, headers=brand.headers
    )
    assert (await refused(codes["id"], units=2))[:4] == (
        422,
        "InventoryTooLow",
        ["body", "units"],
        "the perk has 1 free codes and its drops would promise 2; upload more codes first",
    )
    await create_drop(client, brand, perk["id"], units=4)
    assert (await refused(perk["id"], units=2))[3] == (
        "the perk has 5 units left and its drops would promise 6"
    )
    assert await count(session, Drop) == 1


async def test_a_drop_changes_or_goes_only_before_it_opens(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture
) -> None:
    perk = await create_perk(client, brand, inventory_total=5)
    future = utcnow() + timedelta(days=1)
    upcoming = await create_drop(
        client,
        brand,
        perk["id"],
        opens_at=future.isoformat(),
        closes_at=(future + timedelta(hours=1)).isoformat(),
    )
    url = f"/rewards/v1/drops/{upcoming['id']}"
    changed = await client.patch(url, json={"units": 3, "method": "queue"}, headers=brand.headers)
    assert (changed.status_code, changed.json()["units"], changed.json()["method"]) == (
        200,
        3,
        "queue",
    )
    inverted = await client.patch(
        url, json={"closes_at": (future - timedelta(hours=1)).isoformat()}, headers=brand.headers
    )
    assert error(inverted) == (422, "ValidationError")
    assert inverted.json()["detail"][0]["loc"] == ["body", "closes_at"]
    too_many = await client.patch(url, json={"units": 6}, headers=brand.headers)
    assert error(too_many) == (422, "InventoryTooLow")
    null = await client.patch(url, json={"units": None}, headers=brand.headers)
    assert error(null) == (422, "ValidationError")

    running = await create_drop(client, brand, perk["id"], units=1)
    started = await client.patch(
        f"/rewards/v1/drops/{running['id']}", json={"units": 2}, headers=brand.headers
    )
    assert error(started) == (409, "DropStarted")
    kept = await client.delete(f"/rewards/v1/drops/{running['id']}", headers=brand.headers)
    assert error(kept) == (409, "DropStarted")
    gone = await client.delete(url, headers=brand.headers)
    assert gone.status_code == 204
    assert await count(session, Drop) == 1
    missing = await client.get(url, headers=brand.headers)
    assert error(missing) == (404, "DropNotFound")


# --- Entering -------------------------------------------------------------------------------


async def test_members_enter_in_their_window_once_and_for_free(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    make_member: MakeMember,
    program: Program,
) -> None:
    gold = await make_tier(session, brand.id, "Gold", 1)
    regular = await make_member("crm-2")
    await set_tier(session, member.id, gold)
    for someone in (member, regular):
        await give(session, program, someone.id, 100)
    perk = await create_perk(client, brand, cost_points=100, inventory_total=5)
    now = utcnow()
    opens_at = now + timedelta(hours=1)
    drop = await create_drop(
        client,
        brand,
        perk["id"],
        early_opens_at=(now - timedelta(hours=1)).isoformat(),
        early_tier_ids=[str(gold)],
        opens_at=opens_at.isoformat(),
        closes_at=(now + timedelta(hours=2)).isoformat(),
    )

    first = await enter(client, member, drop["id"])
    assert first.status_code == 201, first.text
    entry = first.json()
    assert entry == {
        "drop_id": drop["id"],
        "member_id": str(member.id),
        "entered_at": entry["entered_at"],
        "position": None,
        "won": False,
        "redemption_id": None,
        "outcome": None,
    }
    again = await enter(client, member, drop["id"])
    assert (again.status_code, again.json()) == (200, entry)
    assert await balance(session, member.id) == 100  # entering costs nothing

    too_early = await enter(client, regular, drop["id"])
    assert error(too_early) == (409, "DropNotOpenYet")
    detail = too_early.json()["detail"]
    assert datetime.fromisoformat(detail["opens_at"]) == opens_at
    assert detail["message"] == f"Entries open for you at {opens_at.isoformat()}; come back then."

    events = [(t, d) for t, d in await rewards_events(session) if t == "drop.entered"]
    assert events == [
        (
            "drop.entered",
            {
                "member_id": str(member.id),
                "drop_id": drop["id"],
                "perk_id": perk["id"],
                "entered_at": events[0][1]["entered_at"],
            },
        )
    ]

    mine = await client.get("/rewards/v1/me/drops", headers=member.headers)
    [seen] = mine.json()["items"]
    assert (seen["id"], seen["early_access"], seen["entry"]) == (drop["id"], True, entry)
    theirs = await client.get("/rewards/v1/me/drops", headers=regular.headers)
    [seen] = theirs.json()["items"]
    assert (seen["early_access"], seen["entry"]) == (False, None)
    assert datetime.fromisoformat(seen["opens_at"]) == opens_at

    await close_entries(session, drop["id"])
    late = await enter(client, regular, drop["id"])
    assert error(late) == (409, "DropClosed")
    assert set(late.json()["detail"]) == {"message", "closes_at"}
    assert (await enter(client, member, drop["id"])).status_code == 200  # still the same entry
    assert await count(session, DropEntry) == 1
    unknown = await enter(client, member, uuid.uuid4())
    assert error(unknown) == (404, "DropNotFound")


async def test_entering_asks_what_winning_would(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    program: Program,
) -> None:
    gold = await make_tier(session, brand.id, "Gold", 1)
    perk = await create_perk(client, brand, cost_points=100, inventory_total=5)
    gold_perk = await create_perk(client, brand, tier_ids=[str(gold)], inventory_total=5)
    await give(session, program, member.id, 99)
    drop = await create_drop(client, brand, perk["id"])
    poor = await enter(client, member, drop["id"])
    assert error(poor) == (409, "InsufficientPoints")
    assert poor.json()["detail"] == "This perk costs 100 points; the member has 99 available."
    gold_drop = await create_drop(client, brand, gold_perk["id"])
    assert error(await enter(client, member, gold_drop["id"])) == (403, "TierNotEligible")
    assert await count(session, DropEntry) == 0
    as_staff = await client.post(
        f"/rewards/v1/me/drops/{drop['id']}/entries", headers=brand.headers
    )
    assert error(as_staff) == (403, "Forbidden")


# --- Drawing --------------------------------------------------------------------------------


async def test_the_draw_waits_for_closing_then_charges_winners_only_and_is_final(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    make_member: MakeMember,
    program: Program,
) -> None:
    perk = await create_perk(client, brand, name="Sneaker", cost_points=100, inventory_total=3)
    drop = await create_drop(client, brand, perk["id"], units=3, seed="seed-for-the-test")
    members = [await make_member(f"e-{n}") for n in range(8)]
    for someone in members:
        await give(session, program, someone.id, 150)
        assert (await enter(client, someone, drop["id"])).status_code == 201
    url = f"/rewards/v1/drops/{drop['id']}/draw"
    early = await client.post(url, headers=brand.headers)
    assert error(early) == (409, "DropStillOpen")
    assert set(early.json()["detail"]) == {"message", "closes_at"}
    before_audit = await client.get(f"/rewards/v1/drops/{drop['id']}/audit", headers=brand.headers)
    assert (before_audit.json()["seed"], before_audit.json()["order"]) == (None, [])

    await close_entries(session, drop["id"])
    drawn = await client.post(url, headers=brand.headers)
    assert drawn.status_code == 200, drawn.text
    audit = drawn.json()
    entrants = sorted(str(m.id) for m in members)
    expected = reference_order("seed-for-the-test", drop["id"], entrants)
    assert audit["seed"] == "seed-for-the-test"
    assert audit["entrants"] == entrants
    assert audit["entrants_sha256"] == hashlib.sha256("\n".join(entrants).encode()).hexdigest()
    assert [(line["position"], line["member_id"], line["outcome"]) for line in audit["order"]] == [
        (n + 1, m, "won" if n < 3 else "not_reached") for n, m in enumerate(expected)
    ]
    assert audit["winners"] == expected[:3]
    assert audit["procedure"] == service.PROCEDURE

    balances = {str(m.id): await balance(session, m.id) for m in members}
    assert balances == {m: 50 if m in expected[:3] else 150 for m in entrants}
    events = await rewards_events(session)
    won = [d for t, d in events if t == "drop.won"]
    assert [(d["member_id"], d["position"]) for d in won] == [
        (m, n + 1) for n, m in enumerate(expected[:3])
    ]
    redeemed = [d for t, d in events if t == "perk.redeemed"]
    assert [(d["member_id"], d["drop_id"], d["points"]) for d in redeemed] == [
        (m, drop["id"], 100) for m in expected[:3]
    ]
    assert {str(r.member_id) for r in await session.scalars(select(Redemption))} == set(
        expected[:3]
    )

    again = await client.post(url, headers=brand.headers)
    assert again.json() == audit
    assert await count(session, Redemption) == 3
    assert len(await rewards_events(session)) == len(events)
    mine = await client.get("/rewards/v1/me/drops", headers=_headers_of(members, expected[0]))
    assert mine.json()["items"][0]["entry"]["won"] is True
    assert mine.json()["items"][0]["status"] == "drawn"
    fetched = await client.get(f"/rewards/v1/drops/{drop['id']}", headers=brand.headers)
    assert fetched.json()["seed"] == "seed-for-the-test"
    for someone in members:
        assert await ledger.ledger_matches(session, someone.id)


def _headers_of(members: list[MemberFixture], member_id: str) -> dict[str, str]:
    return next(m.headers for m in members if str(m.id) == member_id)


async def test_an_entrant_who_can_no_longer_pay_is_skipped_and_the_next_takes_the_unit(
    session: AsyncSession, brand: BrandFixture, make_member: MakeMember, program: Program
) -> None:
    perk = await create_perk_row(session, brand.id, cost_points=100, inventory_total=4)
    drop = await service_drop(session, brand.id, perk.id, units=2, seed="skip-seed-123")
    members = [await make_member(f"s-{n}") for n in range(5)]
    for n, someone in enumerate(members):
        await give(session, program, someone.id, 100)
        await service.enter(
            session, brand.id, someone.id, drop.id, now=OPENS + timedelta(minutes=n), members=None
        )
    order = reference_order("skip-seed-123", str(drop.id), [str(m.id) for m in members])
    first = uuid.UUID(order[0])
    await ledger.post(
        session,
        brand.id,
        program,
        ledger.Movement(
            member_id=first,
            kind=EntryKind.ADJUST,
            bucket=Bucket.AVAILABLE,
            points=-50,
            reason="spent elsewhere",
            source_type="test",
            source_id=None,
            occurred_at=OPENS,
        ),
    )

    await service.draw(session, brand.id, drop.id, now=CLOSES)

    audit = await service.audit(session, brand.id, drop.id)
    assert [(str(line.member_id), line.outcome) for line in audit.order] == [
        (order[0], "skipped:InsufficientPoints"),
        (order[1], "won"),
        (order[2], "won"),
        (order[3], "not_reached"),
        (order[4], "not_reached"),
    ]
    assert await balance(session, first) == 50  # skipped: nothing taken
    assert await count(session, Redemption) == 2
    perk_row = await session.get(Perk, perk.id, populate_existing=True)
    assert perk_row is not None
    assert perk_row.inventory_remaining == 2


async def test_a_queue_goes_by_entry_time_and_the_draw_stops_when_stock_runs_out(
    session: AsyncSession, brand: BrandFixture, make_member: MakeMember, program: Program
) -> None:
    perk = await create_perk_row(session, brand.id, cost_points=10, inventory_total=3)
    drop = await service_drop(session, brand.id, perk.id, method="queue", units=3)
    members = [await make_member(f"q-{n}") for n in range(5)]
    for someone in members:
        await give(session, program, someone.id, 10)
    # They enter in reverse order of creation: the queue follows entry times.
    for n, someone in enumerate(reversed(members)):
        await service.enter(
            session, brand.id, someone.id, drop.id, now=OPENS + timedelta(seconds=n), members=None
        )
    await session.execute(update(Perk).where(Perk.id == perk.id).values(inventory_remaining=2))

    await service.draw(session, brand.id, drop.id, now=CLOSES)

    audit = await service.audit(session, brand.id, drop.id)
    queue = [str(m.id) for m in reversed(members)]
    assert [(str(line.member_id), line.outcome) for line in audit.order] == [
        (queue[0], "won"),
        (queue[1], "won"),
        (queue[2], "skipped:OutOfStock"),
        (queue[3], "not_reached"),
        (queue[4], "not_reached"),
    ]
    assert audit.winners == [members[4].id, members[3].id]


async def test_the_job_draws_due_drops_once_and_a_redraw_from_scratch_gives_the_same_winners(
    session: AsyncSession, brand: BrandFixture, make_member: MakeMember, program: Program
) -> None:
    perk = await create_perk_row(session, brand.id, cost_points=10, inventory_total=10)
    due = await service_drop(session, brand.id, perk.id, units=2, seed="job-seed-0001")
    later = await service_drop(
        session, brand.id, perk.id, units=2, closes_at=CLOSES + timedelta(days=1)
    )
    members = [await make_member(f"j-{n}") for n in range(6)]
    for someone in members:
        await give(session, program, someone.id, 10)
        for drop in (due, later):
            await service.enter(session, brand.id, someone.id, drop.id, now=OPENS, members=None)
    assert DRAW_DROPS_JOB in REWARDS.jobs
    assert await draw_due_drops(session, now=CLOSES - timedelta(seconds=1)) == 0

    due_id, later_id = due.id, later.id
    savepoint = await session.begin_nested()
    assert await draw_due_drops(session, now=CLOSES) == 1
    first = (await service.audit(session, brand.id, due_id)).winners
    assert len(first) == 2
    await savepoint.rollback()
    assert (await service.audit(session, brand.id, due_id)).winners == []

    assert await draw_due_drops(session, now=CLOSES + timedelta(minutes=1)) == 1
    assert (await service.audit(session, brand.id, due_id)).winners == first
    assert await draw_due_drops(session, now=CLOSES + timedelta(minutes=2)) == 0
    later_row = await session.get(Drop, later_id, populate_existing=True)
    assert later_row is not None
    assert later_row.status is DropStatus.SCHEDULED
    assert await count(session, Redemption) == 2


async def test_no_one_wins_twice_and_losers_keep_their_points(
    session: AsyncSession, brand: BrandFixture, make_member: MakeMember, program: Program
) -> None:
    perk = await create_perk_row(session, brand.id, cost_points=10, inventory_total=10)
    drop = await service_drop(session, brand.id, perk.id, units=5)
    members = [await make_member(f"w-{n}") for n in range(3)]
    for someone in members:
        await give(session, program, someone.id, 100)
        await service.enter(session, brand.id, someone.id, drop.id, now=OPENS, members=None)
        await service.enter(
            session, brand.id, someone.id, drop.id, now=OPENS, members=None
        )  # same entry
    await service.draw(session, brand.id, drop.id, now=CLOSES)
    audit = await service.audit(session, brand.id, drop.id)
    assert sorted(audit.winners) == sorted(m.id for m in members)  # 3 winners for 5 units
    assert {await balance(session, m.id) for m in members} == {90}
    entries = await session.scalar(
        select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == EntryKind.REDEEM)
    )
    assert entries == 3


async def create_perk_row(session: AsyncSession, brand_id: uuid.UUID, **changes: Any) -> Perk:
    return await perks_service.create_perk(session, brand_id, PerkCreate(**perk_body(**changes)))


# --- Reproducible from the seed, on committed data -------------------------------------------


@pytest.fixture
async def committed(
    base_settings: Settings, engine_database: Database, redis: Redis
) -> AsyncIterator[tuple[httpx.AsyncClient, uuid.UUID, dict[str, str]]]:
    app = app_for(SERVICES, base_settings, make_runtime(base_settings, engine_database, redis))
    async with engine_database.unit_of_work() as session:
        brand, key = await members_service.create_brand(session, f"Drop {uuid.uuid4().hex[:6]}")
        await ledger.configure_program(session, brand.id, DEFAULT_PROGRAM)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://kinfolk.test") as client:
            yield client, brand.id, bearer(key)
    finally:
        await purge_brand(engine_database, brand.id)


async def test_a_committed_draw_is_reproducible_from_its_seed_outside_the_service(
    committed: tuple[httpx.AsyncClient, uuid.UUID, dict[str, str]],
    engine_database: Database,
    base_settings: Settings,
) -> None:
    client, brand_id, staff = committed
    tokens = MemberTokenCodec(base_settings)
    seed = "a-published-seed-2030"
    perk = await client.post(
        "/rewards/v1/perks",
        json=perk_body(name="Limited print", cost_points=50, inventory_total=5),
        headers=staff,
    )
    assert perk.status_code == 201
    now = utcnow()
    drop = await client.post(
        "/rewards/v1/drops",
        json=drop_body(perk.json()["id"], units=5, seed=seed),
        headers=staff,
    )
    assert drop.status_code == 201
    drop_id = drop.json()["id"]
    assert drop.json()["seed_sha256"] == hashlib.sha256(seed.encode()).hexdigest()

    member_ids = []
    async with engine_database.unit_of_work() as session:
        program = await ledger.program_for(session, brand_id)
        for n in range(40):
            member_id = uuid.uuid4()
            await LedgerRepository(session).upsert_account(
                brand_id=brand_id,
                member_id=member_id,
                external_id=f"fan-{n}",
                birthday=None,
                member_status="active",
            )
            await give(session, program, member_id, 50)
            member_ids.append(member_id)
    for member_id in member_ids:
        token = tokens.issue(brand_id, member_id, timedelta(minutes=5))
        response = await client.post(
            f"/rewards/v1/me/drops/{drop_id}/entries", headers=bearer(token)
        )
        assert response.status_code == 201, response.text

    async with engine_database.unit_of_work() as session:
        assert await draw_due_drops(session, now=now) == 0  # not closed yet
    async with engine_database.unit_of_work() as session:
        assert await draw_due_drops(session, now=now + timedelta(hours=2)) == 1
    async with engine_database.unit_of_work() as session:
        assert await draw_due_drops(session, now=now + timedelta(hours=3)) == 0

    audit = (await client.get(f"/rewards/v1/drops/{drop_id}/audit", headers=staff)).json()
    # Anyone holding the audit re-runs the documented procedure with nothing but the stdlib.
    entrants = sorted(str(m) for m in member_ids)
    assert audit["entrants"] == entrants
    assert audit["entrants_sha256"] == hashlib.sha256("\n".join(entrants).encode()).hexdigest()
    assert hashlib.sha256(audit["seed"].encode()).hexdigest() == audit["seed_sha256"]
    shuffled = list(audit["entrants"])
    random.Random(f"{audit['seed']}:{audit['drop_id']}").shuffle(shuffled)
    assert [line["member_id"] for line in audit["order"]] == shuffled
    assert audit["winners"] == shuffled[:5]
    # The same entries with another seed would almost surely have given other winners.
    other = list(entrants)
    random.Random(f"another-seed:{drop_id}").shuffle(other)
    assert other[:5] != shuffled[:5]

    async with engine_database.unit_of_work() as session:
        winners = set(
            await session.scalars(
                select(Redemption.member_id).where(Redemption.drop_id == uuid.UUID(drop_id))
            )
        )
        assert {str(w) for w in winners} == set(shuffled[:5])
        balances = dict(
            (
                await session.execute(
                    select(Account.member_id, Account.available).where(Account.brand_id == brand_id)
                )
            ).all()
        )
        assert balances == {m: 0 if str(m) in shuffled[:5] else 50 for m in member_ids}
        for member_id in member_ids:
            assert await ledger.ledger_matches(session, member_id)
