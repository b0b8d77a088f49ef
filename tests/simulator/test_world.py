"""The world model alone (numpy, no database): determinism and the shape of its distributions."""

from __future__ import annotations

import uuid
from dataclasses import fields
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from services.demo.rewards import RULES, TIERS
from services.members.schemas import MemberCreate
from services.rewards.tiers.schemas import TierCreate
from simulator import world
from simulator.records import historic_purchases, member_ndjson
from simulator.truth import Truth, read_truth, write_truth

# A calendar year, so a member's spend in the world is their spend in the tier window.
YEAR = world.WorldParams(members=20_000, days=365, seed=42, start=date(2023, 1, 1))


def _thresholds() -> tuple[int, int]:
    ranked = sorted((TierCreate.model_validate(t) for t in TIERS), key=lambda t: t.rank)
    return ranked[1].threshold_minor, ranked[2].threshold_minor


@pytest.fixture(scope="module")
def year() -> tuple[world.Members, world.Catalog, list[world.PurchaseBatch]]:
    members = world.make_members(YEAR)
    catalog = world.make_catalog(YEAR)
    return members, catalog, list(world.purchase_batches(YEAR, members, catalog))


def _equal(a: Any, b: Any) -> bool:
    """Two dataclasses of arrays hold equal arrays (and equal everything else)."""
    return all(np.array_equal(getattr(a, f.name), getattr(b, f.name)) for f in fields(a))


def test_same_seed_same_world_and_another_seed_another() -> None:
    small = world.WorldParams(
        members=3_000, days=120, seed=7, start=date(2024, 3, 1), chunk_members=1_000
    )
    twice = [world.make_members(small), world.make_members(small)]
    assert _equal(twice[0], twice[1])
    catalogs = [world.make_catalog(small), world.make_catalog(small)]
    assert _equal(catalogs[0], catalogs[1])
    runs = [list(world.purchase_batches(small, twice[k], catalogs[k])) for k in range(2)]
    assert all(_equal(a, b) for a, b in zip(runs[0], runs[1], strict=True))
    # A chunk made alone (a resumed run) is the chunk a full pass makes.
    assert _equal(world.purchases(small, twice[0], catalogs[0], 2), runs[0][2])
    assert _equal(world.community(small, twice[0]), world.community(small, twice[1]))

    other = world.WorldParams(
        members=3_000, days=120, seed=8, start=date(2024, 3, 1), chunk_members=1_000
    )
    assert not np.array_equal(world.make_members(other).tastes, twice[0].tastes)
    assert not np.array_equal(
        world.purchases(other, world.make_members(other), world.make_catalog(other), 0).at,
        runs[0][0].at,
    )


def test_tiers_fill_like_a_real_program(
    year: tuple[world.Members, world.Catalog, list[world.PurchaseBatch]],
) -> None:
    _, _, batches = year
    spend = np.zeros(YEAR.members, dtype=np.int64)
    for batch in batches:
        np.add.at(spend, batch.member, batch.amount_minor)
    middle, top = _thresholds()
    entry_share = float(np.mean(spend < middle))
    top_share = float(np.mean(spend >= top))
    middle_share = float(np.mean((spend >= middle) & (spend < top)))
    assert 0.70 <= entry_share <= 0.92, entry_share
    assert 0.06 <= middle_share <= 0.25, middle_share
    assert 0.01 <= top_share <= 0.06, top_share
    # A long quiet tail: a good share of members buy nothing all year.
    assert 0.15 <= float(np.mean(spend == 0)) <= 0.5


def test_spend_is_heavy_tailed(
    year: tuple[world.Members, world.Catalog, list[world.PurchaseBatch]],
) -> None:
    _, _, batches = year
    spend = np.zeros(YEAR.members, dtype=np.int64)
    for batch in batches:
        np.add.at(spend, batch.member, batch.amount_minor)
    ranked = np.sort(spend)[::-1]
    assert ranked[: YEAR.members // 10].sum() / ranked.sum() > 0.40
    assert ranked[: YEAR.members // 100].sum() / ranked.sum() > 0.08


def test_churned_members_fade_and_the_others_do_not(
    year: tuple[world.Members, world.Catalog, list[world.PurchaseBatch]],
) -> None:
    members, _, batches = year
    member = np.concatenate([b.member for b in batches])
    day = np.concatenate([b.at for b in batches]) // world.SECONDS_PER_DAY
    early = members.join_day < 30
    churned = early & (members.churn_day >= 60) & (members.churn_day < 120)
    stayed = early & (members.churn_day == world.NO_CHURN)
    assert churned.sum() > 300
    assert stayed.sum() > 1_000

    def per_quarter(group: np.ndarray) -> tuple[int, int]:
        mine = group[member]
        return int(np.sum(mine & (day < 91))), int(np.sum(mine & (day >= 274)))

    first, last = per_quarter(churned)
    assert last < 0.1 * first, (first, last)
    first, last = per_quarter(stayed)
    assert last > 0.8 * first, (first, last)  # the holiday season even lifts it


def test_campaign_weeks_lift_purchases(
    year: tuple[world.Members, world.Catalog, list[world.PurchaseBatch]],
) -> None:
    _, _, batches = year
    day = np.concatenate([b.at for b in batches]) // world.SECONDS_PER_DAY
    per_day = np.bincount(day, minlength=YEAR.days)
    lift = world.lift_by_day(YEAR)
    late = np.arange(YEAR.days) >= 90  # after the join wave, so membership is about flat
    assert per_day[late & (lift >= 2)].mean() > 1.5 * per_day[late & (lift == 1)].mean()


def test_orders_and_lines_are_consistent(
    year: tuple[world.Members, world.Catalog, list[world.PurchaseBatch]],
) -> None:
    members, catalog, batches = year
    batch = batches[0]
    lines = np.add.reduceat(batch.line_amount_minor, batch.line_start[:-1])
    assert np.array_equal(lines, batch.amount_minor)
    assert np.array_equal(batch.line_amount_minor, batch.quantity * catalog.price_minor[batch.sku])
    assert np.array_equal(batch.category, catalog.category[batch.sku])
    # Nobody buys before joining; everything is within the world's days.
    assert np.all(batch.at // world.SECONDS_PER_DAY >= members.join_day[batch.member])
    assert np.all(batch.at < YEAR.days * world.SECONDS_PER_DAY)
    # Members buy what they like: their favourite category is their most bought one, mostly.
    line_member = np.repeat(batch.member, np.diff(batch.line_start))
    favourite = members.tastes.argmax(axis=1)[line_member]
    assert np.mean(batch.category == favourite) > 0.5
    # The skus the demo's earning rules name exist, so those rules fire.
    named = {r["sku"] for r in RULES if isinstance(r, dict) and r["kind"] == "sku_multiplier"}
    assert named
    assert named <= set(catalog.sku.tolist())


def test_community_plan(
    year: tuple[world.Members, world.Catalog, list[world.PurchaseBatch]],
) -> None:
    members, _, _ = year
    plan = world.community(YEAR, members)
    daily = members.posts_per_day > 0.2
    assert 3 <= daily.sum() <= 12  # a few hundred per million
    posts_by_daily = np.isin(plan.post_author, np.flatnonzero(daily)).sum()
    assert posts_by_daily > 250 * daily.sum()  # they post most days
    assert np.all(np.diff(plan.post_at) >= 0)
    # Responses come after the post, from members already there, never the author, once each.
    assert np.all(plan.reaction_at >= plan.post_at[plan.reaction_post])
    assert np.all(plan.reaction_member != plan.post_author[plan.reaction_post])
    joined = members.join_day[plan.reaction_member].astype(np.int64) * world.SECONDS_PER_DAY
    assert np.all(joined <= plan.post_at[plan.reaction_post])
    pairs = plan.reaction_post * YEAR.members + plan.reaction_member
    assert len(np.unique(pairs)) == len(pairs)
    assert len(plan.reaction_post) > 3 * len(plan.post_author)
    assert len(plan.comment_post) > 0
    assert plan.reaction_kind.max() < len(world.REACTION_KINDS)


def test_the_truth_round_trips(tmp_path: Path) -> None:
    params = world.WorldParams(members=500, days=30, seed=3, start=date(2024, 5, 1))
    truth = Truth.of(params, world.make_members(params), world.make_catalog(params))
    write_truth(tmp_path, truth)
    back = read_truth(tmp_path)
    assert back.params == params
    for name, array in truth.arrays().items():
        stored = back.arrays()[name]
        assert stored.dtype == array.dtype, name
        assert np.array_equal(stored, array), name
    assert back.external_id[0] == world.external_id(3, 0)


def test_records_are_valid_service_input() -> None:
    params = world.WorldParams(
        members=300, days=60, seed=5, start=date(2024, 1, 1), chunk_members=100
    )
    members = world.make_members(params)
    catalog = world.make_catalog(params)
    lines = member_ndjson(params, members, 100, 200).splitlines()
    parsed = [MemberCreate.model_validate_json(line) for line in lines]
    assert [p.external_id for p in parsed] == [world.external_id(5, i) for i in range(100, 200)]
    assert all(p.interests for p in parsed)
    batch = world.purchases(params, members, catalog, 1)
    ids = [uuid.uuid4() for _ in range(100)]
    orders = historic_purchases(params, batch, catalog, ids, "EUR")
    assert len(orders) == len(batch)
    assert len({o.order_id for o in orders}) == len(orders)
    assert all(o.amount_minor == sum(line.amount_minor for line in o.lines) for o in orders)
    assert all(o.occurred_at.tzinfo is not None for o in orders)
    first = orders[0]
    assert first.member_id == ids[int(batch.member[0]) - 100]


def test_the_size_estimate_follows_the_world() -> None:
    params = world.WorldParams(members=20_000, days=365, seed=1, start=date(2023, 1, 1))
    members = world.make_members(params)
    catalog = world.make_catalog(params)
    orders = sum(len(b) for b in world.purchase_batches(params, members, catalog))
    # An upper bound (no churn), but not a wild one.
    assert orders <= world.expected_orders(params) <= 2 * orders
