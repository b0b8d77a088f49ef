"""The simulated members' redemptions and returns: deterministic per chunk, driven by the
members' hidden tastes and points, and loaded with their purchases by rewards' history loader
into a ledger that adds up."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import astuple, replace
from datetime import date

import numpy as np
import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.demo.members import CATEGORIES
from services.kernel.db import Database
from services.kernel.events import parse_event
from services.members import service as members_service
from services.members.models import OUTBOX as MEMBERS_OUTBOX
from services.rewards.ledger.projection import apply_member_events
from services.rewards.models import (
    OUTBOX,
    Account,
    Bucket,
    EntryKind,
    LedgerEntry,
    Lot,
    Perk,
    Purchase,
    Redemption,
    Return,
)
from simulator import redemptions, world
from simulator.chunks import WorldView, load_members_chunk, load_purchases_chunk
from simulator.run import configure_program
from tests.conftest import purge_brand

PARAMS = world.WorldParams(members=4_000, days=365, seed=31, start=date(2024, 1, 1))


@pytest.fixture(scope="module")
def view() -> WorldView:
    return WorldView.of(PARAMS)


def _plan(view: WorldView, chunk: int = 0) -> redemptions.Intents:
    batch = world.purchases(view.params, view.members, view.catalog, chunk, view.lift)
    return redemptions.chunk_intents(view.params, view.members, batch)


def test_intents_are_the_same_every_time_and_in_any_chunk_order() -> None:
    params = world.WorldParams(
        members=600, days=200, seed=7, start=date(2024, 3, 1), chunk_members=300
    )
    members = world.make_members(params)
    catalog = world.make_catalog(params)
    second = world.purchases(params, members, catalog, 1)
    alone = redemptions.chunk_intents(params, members, second)  # a resumed run: chunk 1 only
    batches = list(world.purchase_batches(params, members, catalog))
    in_order = [redemptions.chunk_intents(params, members, batch) for batch in batches]
    for got, expected in zip(astuple(alone), astuple(in_order[1]), strict=True):
        assert np.array_equal(got, expected)
    assert len(in_order[0].redemption_member) > 0
    assert len(in_order[0].return_order) > 0
    # Another seed, another world.
    other = replace(params, seed=8)
    other_members = world.make_members(other)
    other_batch = world.purchases(other, other_members, world.make_catalog(other), 0)
    assert not np.array_equal(
        redemptions.chunk_intents(other, other_members, other_batch).redemption_at,
        in_order[0].redemption_at,
    )
    # The records name the same things every time: keys, return ids, times.
    ids = [uuid.UUID(int=i + 1) for i in range(300)]
    perks = [uuid.UUID(int=1_000 + p) for p in range(len(redemptions.PERKS))]
    first = redemptions.historic_redemptions(params, in_order[0], ids, perks, 0)
    assert first == redemptions.historic_redemptions(params, in_order[0], ids, perks, 0)
    assert len({r.key for r in first}) == len(first)
    member = int(in_order[0].redemption_member[0])
    assert first[0].key == f"{world.external_id(7, member)}-p001"
    assert first[0].member_id == ids[member]
    returned = redemptions.historic_returns(params, in_order[0], batches[0], catalog)
    assert len({r.return_id for r in returned}) == len(returned)


def test_members_redeem_perks_of_the_categories_they_like(view: WorldView) -> None:
    plan = _plan(view)
    members = plan.redemption_member
    assert len(members) > 300
    category = np.asarray([redemptions.PERKS[p].category for p in plan.redemption_perk])
    index = np.asarray([CATEGORIES.index(c) for c in category])
    liked = view.members.tastes[members, index].mean()
    # The same categories given to random redeemers: what taste-blind choices would show.
    shuffled = np.random.default_rng(0).permutation(members)
    blind = view.members.tastes[shuffled, index].mean()
    assert liked > 0.45
    assert liked > blind + 0.15
    # Limits and tiers are respected; every category is redeemed; nothing after the world.
    for perk, spec in enumerate(redemptions.PERKS):
        if spec.per_member_limit is not None:
            mine = members[plan.redemption_perk == perk]
            assert (np.bincount(mine).max(initial=0)) <= spec.per_member_limit
    assert set(category) == set(CATEGORIES)
    assert plan.redemption_at.max() < PARAMS.days * world.SECONDS_PER_DAY
    # Members redeem after they have bought: each one's first order comes first.
    batch = world.purchases(view.params, view.members, view.catalog, 0, view.lift)
    first_order: dict[int, int] = {}
    for member, at in zip(batch.member.tolist(), batch.at.tolist(), strict=True):
        first_order.setdefault(member, at)
    assert all(
        at > first_order[member]
        for member, at in zip(members.tolist(), plan.redemption_at.tolist(), strict=True)
    )


def test_about_one_order_in_twenty_comes_back_within_thirty_days(view: WorldView) -> None:
    batch = world.purchases(view.params, view.members, view.catalog, 0, view.lift)
    plan = redemptions.chunk_intents(view.params, view.members, batch)
    share = len(plan.return_order) / len(batch)
    assert 0.035 < share < 0.065
    waited = plan.return_at - batch.at[plan.return_order]
    assert waited.min() > 0
    assert waited.max() <= redemptions.RETURN_DAYS * world.SECONDS_PER_DAY
    amounts = batch.amount_minor[plan.return_order]
    assert ((plan.return_amount > 0) & (plan.return_amount <= amounts)).all()
    whole = plan.return_line == -1
    assert (plan.return_amount[whole] == amounts[whole]).all()
    assert 0.4 < whole.mean() < 0.7  # whole and partial returns both
    returns = redemptions.historic_returns(view.params, plan, batch, view.catalog)
    for back, amount in zip(returns, plan.return_amount.tolist(), strict=True):
        total = sum(line.amount_minor for line in back.lines) if back.lines else back.amount_minor
        assert total == amount


@pytest.fixture
async def brands(engine_database: Database) -> AsyncIterator[list[uuid.UUID]]:
    """Brands to purge at the end (the chunk loads commit)."""
    made: list[uuid.UUID] = []
    yield made
    for brand_id in made:
        await purge_brand(engine_database, brand_id)


async def _learn_members(session: AsyncSession, brand_id: uuid.UUID) -> None:
    """Rewards learns the brand's members from their events, as its consumer would."""
    table = MEMBERS_OUTBOX.table
    rows = await session.execute(
        select(table.c.payload).where(table.c.brand_id == brand_id).order_by(table.c.id)
    )
    await apply_member_events(session, [parse_event(orjson.dumps(payload)) for (payload,) in rows])


async def test_a_chunk_loads_with_its_redemptions_and_returns_into_a_ledger_that_adds_up(
    engine_database: Database, brands: list[uuid.UUID]
) -> None:
    params = world.WorldParams(members=200, days=365, seed=41, start=date(2024, 1, 1))
    view = WorldView.of(params)
    database = engine_database
    async with database.unit_of_work() as session:
        brand, _ = await members_service.create_brand(session, f"Perks {uuid.uuid4().hex[:8]}")
        brands.append(brand.id)
        await configure_program(session, brand.id, params)
        made = await redemptions.configure_perks(session, brand.id)
        # A rerun finds them and adds nothing.
        assert [p.id for p in await redemptions.configure_perks(session, brand.id)] == [
            p.id for p in made
        ]
    assert len(made) == len(redemptions.PERKS)
    assert sum(1 for perk in made if perk.tier_ids) == 2
    await load_members_chunk(database, view, brand.id, 0, ())
    async with database.unit_of_work() as session:
        await _learn_members(session, brand.id)
    loaded = await load_purchases_chunk(database, view, brand.id, 0, ("EUR",))
    batch = world.purchases(params, view.members, view.catalog, 0, view.lift)
    plan = redemptions.chunk_intents(params, view.members, batch)
    assert loaded == {"purchases": len(batch)}

    async with database.unit_of_work() as session:
        returns = await session.scalar(
            select(func.count())
            .select_from(Return)
            .join(Purchase, Purchase.id == Return.purchase_id)
            .where(Purchase.brand_id == brand.id)
        )
        assert returns == len(plan.return_order) > 0
        redeemed = (
            await session.execute(
                select(Redemption.points, Perk.name)
                .join(Perk, Perk.id == Redemption.perk_id)
                .where(Redemption.brand_id == brand.id)
            )
        ).all()
        # Some are refused (the estimate ignores returns and expiry), most go through.
        assert 0.5 * len(plan.redemption_member) < len(redeemed) <= len(plan.redemption_member)
        costs = {spec.name: spec.cost_points for spec in redemptions.PERKS}
        assert all(points == costs[name] for points, name in redeemed)

        # Balance = sum of entries, open lots hold what is spendable, for every member.
        sums = dict(
            (
                await session.execute(
                    select(
                        LedgerEntry.member_id,
                        func.sum(LedgerEntry.points).filter(LedgerEntry.bucket == Bucket.AVAILABLE),
                    )
                    .where(LedgerEntry.brand_id == brand.id)
                    .group_by(LedgerEntry.member_id)
                )
            ).all()
        )
        lots = dict(
            (
                await session.execute(
                    select(Lot.member_id, func.sum(Lot.remaining))
                    .where(Lot.brand_id == brand.id)
                    .group_by(Lot.member_id)
                )
            ).all()
        )
        accounts = (
            await session.execute(
                select(Account.member_id, Account.available).where(Account.brand_id == brand.id)
            )
        ).all()
        assert len(accounts) == params.members
        for member_id, available in accounts:
            assert available == (sums.get(member_id) or 0)
            assert max(available, 0) == (lots.get(member_id) or 0)
        # Available never goes below zero but through a return (each event says the balance
        # after it): no other debit leaves it negative.
        table = OUTBOX.table
        events = (
            await session.scalars(
                select(table.c.payload)
                .where(table.c.brand_id == brand.id, table.c.type.like("points.%"))
                .order_by(table.c.id)
            )
        ).all()
        debits = [
            event["data"]
            for event in events
            if event["data"].get("bucket") == Bucket.AVAILABLE and event["data"]["points"] < 0
        ]
        assert any(d["kind"] == EntryKind.REDEEM for d in debits)
        assert all(d["available"] >= 0 for d in debits if d["kind"] != EntryKind.REVERSE)

    # The chunk again: found loaded, nothing loaded twice.
    assert await load_purchases_chunk(database, view, brand.id, 0, ("EUR",)) == loaded
    async with database.unit_of_work() as session:
        again = await session.scalar(
            select(func.count()).select_from(Redemption).where(Redemption.brand_id == brand.id)
        )
    assert again == len(redeemed)
