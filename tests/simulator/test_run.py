"""`simulate` end to end into the test database: brand, program, members, events, purchases,
resuming, and what it refuses."""

from __future__ import annotations

import gc
import io
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from rich.console import Console
from sqlalchemy import func, select

from services.community.experiences.models import Booking, ExperienceSession
from services.community.members.repository import CommunityMemberRepository
from services.community.models import Post
from services.community.social.models import Follow
from services.kernel.db import Database
from services.kernel.runtime import Runtime
from services.kernel.settings import Settings
from services.members import service as members_service
from services.registry import SERVICES
from services.rewards.ledger import service as ledger
from services.rewards.models import Account, Purchase, Tier
from services.rewards.tiers import service as tiers_service
from simulator import community, happenings, world
from simulator import run as simulator_run
from simulator.run import (
    STATE_FILE,
    Request,
    SimulationRefused,
    simulate,
)
from simulator.truth import read_truth
from tests.conftest import make_runtime, purge_brand


@pytest.fixture
async def committed(
    base_settings: Settings, engine_database: Database, redis: Redis
) -> AsyncIterator[tuple[Runtime, list[uuid.UUID]]]:
    """A runtime whose work commits, and the brands to purge at the end."""
    brands: list[uuid.UUID] = []
    yield make_runtime(base_settings, engine_database, redis), brands
    for brand_id in brands:
        await purge_brand(engine_database, brand_id)


def _request(tmp_path: Path, **changes: Any) -> Request:
    request = Request(
        members=200,
        days=60,
        seed=11,
        brand=f"Sim {uuid.uuid4().hex[:8]}",
        out=tmp_path / "run",
        chunk_members=80,  # several chunks, so resuming is tested
    )
    return replace(request, **changes)


async def test_a_small_world_loads_and_reruns_resume(
    committed: tuple[Runtime, list[uuid.UUID]], tmp_path: Path
) -> None:
    runtime, brands = committed
    request = _request(tmp_path)
    summary = await simulate(runtime, request)
    brands.append(summary.brand_id)
    assert summary.members == 200
    assert summary.api_key is not None
    assert summary.database_bytes > 0

    truth = read_truth(request.out)
    assert truth.params.members == 200
    assert truth.params.seed == 11
    params = truth.params
    members = world.make_members(params)
    catalog = world.make_catalog(params)
    expected = sum(len(b) for b in world.purchase_batches(params, members, catalog))
    async with runtime.database.unit_of_work() as session:
        ids = await members_service.member_ids(
            session, summary.brand_id, truth.external_id.tolist()
        )
        assert len(ids) == 200
        # Rewards and the community learnt the members from their events.
        first = ids[str(truth.external_id[0])]
        account = await ledger.account_for(session, summary.brand_id, member_id=first, members=None)
        assert account.external_id == str(truth.external_id[0])
        assert await CommunityMemberRepository(session).get(summary.brand_id, first) is not None
        assert len(await tiers_service.list_tiers(session, summary.brand_id)) == 3
        loaded = await session.scalar(
            select(func.count()).select_from(Purchase).where(Purchase.brand_id == summary.brand_id)
        )
    state = json.loads((request.out / STATE_FILE).read_text())
    assert summary.complete
    assert state["complete"]
    assert summary.purchases == expected == loaded
    with pytest.raises(SimulationRefused, match="already complete"):
        await simulate(runtime, request)

    # A crash after a chunk's commit, before its state was written: the rerun finds the chunk
    # loaded and goes on, loading nothing twice.
    state.update(complete=False, members_chunks=1, purchase_chunks=1, counts={"members": 80})
    state["phases"] = ["world", "brand", "program"]  # members, events, purchases to redo
    (request.out / STATE_FILE).write_text(json.dumps(state))
    again = await simulate(runtime, request)
    assert again.brand_id == summary.brand_id
    assert again.api_key is None
    assert again.members == 200
    async with runtime.database.unit_of_work() as session:
        ids = await members_service.member_ids(
            session, summary.brand_id, truth.external_id.tolist()
        )
        assert len(ids) == 200
        reloaded = await session.scalar(
            select(func.count()).select_from(Purchase).where(Purchase.brand_id == summary.brand_id)
        )
    assert reloaded == loaded


async def test_refusals(committed: tuple[Runtime, list[uuid.UUID]], tmp_path: Path) -> None:
    runtime, brands = committed
    request = _request(tmp_path, members=30, days=20)
    summary = await simulate(runtime, request)
    brands.append(summary.brand_id)

    # Another world into the same folder.
    with pytest.raises(SimulationRefused, match="holds another run"):
        await simulate(runtime, _request(tmp_path, members=31, days=20, brand=request.brand))
    # A brand that has members, without --append.
    other = replace(request, seed=12, out=tmp_path / "other")
    with pytest.raises(SimulationRefused, match="already has members"):
        await simulate(runtime, other)
    # With --append but the same seed: its members are there already.
    same_seed = replace(request, out=tmp_path / "same", append=True)
    with pytest.raises(SimulationRefused, match="this seed's members"):
        await simulate(runtime, same_seed)
    # With --append and another seed: added to the brand, its program kept.
    appended = await simulate(runtime, replace(other, append=True))
    assert appended.brand_id == summary.brand_id
    assert appended.members == 30
    assert appended.api_key is None
    async with runtime.database.unit_of_work() as session:
        assert len(await tiers_service.list_tiers(session, summary.brand_id)) == 3


async def _loaded_world(runtime: Runtime, brand_id: uuid.UUID) -> dict[str, Any]:
    """What a load left, by external id and order id (database ids differ between loads)."""
    async with runtime.database.unit_of_work() as session:
        accounts = await session.execute(
            select(Account.external_id, Account.available, Account.pending, Tier.name)
            .outerjoin(Tier, Tier.id == Account.tier_id)
            .where(Account.brand_id == brand_id)
        )
        purchases = await session.execute(
            select(
                Purchase.order_id, Purchase.amount_minor, Purchase.points, Purchase.occurred_at
            ).where(Purchase.brand_id == brand_id)
        )
        return {
            "accounts": sorted(tuple(row) for row in accounts),
            "purchases": sorted(tuple(row) for row in purchases),
        }


async def _loaded_content(runtime: Runtime, brand_id: uuid.UUID) -> dict[str, Any]:
    """The community a load left, without database ids: posts with their counters, follows,
    and each session's bookings by status."""
    async with runtime.database.unit_of_work() as session:
        posts = await session.execute(
            select(
                Post.body, Post.created_at, Post.status, Post.comment_count, Post.reaction_count
            ).where(Post.brand_id == brand_id)
        )
        follows = await session.scalar(
            select(func.count()).select_from(Follow).where(Follow.brand_id == brand_id)
        )
        bookings = await session.execute(
            select(ExperienceSession.starts_at, Booking.status, func.count())
            .join(ExperienceSession, ExperienceSession.id == Booking.session_id)
            .where(Booking.brand_id == brand_id)
            .group_by(ExperienceSession.starts_at, Booking.status)
        )
        return {
            "posts": sorted(tuple(row) for row in posts),
            "follows": follows,
            "bookings": sorted(tuple(row) for row in bookings),
        }


async def test_worker_processes_load_the_same_world_as_one_process(
    committed: tuple[Runtime, list[uuid.UUID]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime, brands = committed
    # Small chunks, so that two processes share every chunked phase (a worker process takes
    # the sizes from the simulating one).
    monkeypatch.setattr(community, "CHUNK_POSTS", 4)
    monkeypatch.setattr(happenings, "ANSWER_CHUNK", 3)
    monkeypatch.setattr(happenings, "SESSION_CHUNK", 1)
    alone = await simulate(runtime, _request(tmp_path, out=tmp_path / "alone", days=20))
    brands.append(alone.brand_id)
    # Two processes deal the three chunks between them and commit them in any order.
    side_by_side = await simulate(
        runtime, _request(tmp_path, out=tmp_path / "two", days=20, workers=2)
    )
    brands.append(side_by_side.brand_id)

    assert side_by_side.complete
    assert (side_by_side.members, side_by_side.purchases) == (alone.members, alone.purchases)
    assert await _loaded_world(runtime, side_by_side.brand_id) == await _loaded_world(
        runtime, alone.brand_id
    )
    assert side_by_side.content == alone.content
    content = await _loaded_content(runtime, alone.brand_id)
    assert await _loaded_content(runtime, side_by_side.brand_id) == content
    assert len(content["posts"]) > 2 * 4
    assert len(content["bookings"]) > 2
    state = json.loads((tmp_path / "two" / STATE_FILE).read_text())
    assert (state["members_chunks"], state["purchase_chunks"]) == (3, 3)


async def test_the_events_phase_applies_the_events_with_the_collector_paused(
    committed: tuple[Runtime, list[uuid.UUID]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    collector_on: None,
) -> None:
    runtime, brands = committed
    collecting: list[bool] = []
    apply_unpublished = simulator_run.apply_unpublished

    async def watched(*args: Any, **kwargs: Any) -> int:
        collecting.append(gc.isenabled())
        return await apply_unpublished(*args, **kwargs)

    monkeypatch.setattr(simulator_run, "apply_unpublished", watched)
    summary = await simulate(runtime, _request(tmp_path, members=20, days=7, chunk_members=20))
    brands.append(summary.brand_id)

    assert summary.complete
    assert summary.phase_seconds.keys() >= {"events"}
    assert collecting == [False]  # paused while the events were applied
    assert gc.isenabled()  # and on again after


@pytest.mark.parametrize(("cap", "settled"), [(20, True), (19, False)])
async def test_the_history_is_settled_in_process_only_up_to_the_cap(
    committed: tuple[Runtime, list[uuid.UUID]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cap: int,
    settled: bool,
) -> None:
    """Past the cap, draining would dominate the run (over half an hour at 50,000 members): the
    events wait in the outboxes for the relay and workers, and the run says so."""
    runtime, brands = committed
    drain = simulator_run.drain_events
    drained: list[str] = []

    async def recorded(*args: Any, **kwargs: Any) -> int:
        drained.append(args[2])
        return await drain(*args, **kwargs)

    monkeypatch.setattr(simulator_run, "SETTLE_MEMBERS", cap)
    monkeypatch.setattr(simulator_run, "drain_events", recorded)
    said = io.StringIO()
    summary = await simulate(
        runtime,
        _request(tmp_path, members=20, days=7, chunk_members=20),
        Console(file=said, width=400),
    )
    brands.append(summary.brand_id)
    assert summary.complete
    assert drained == (["simulate"] if settled else [])
    assert ("the relay and workers" in said.getvalue()) is not settled
    if not settled:
        await drain(runtime, SERVICES, "test")  # what the workers would do, before the purge
