"""Serving a member's list through the API: the live business rules, variety, exploration with
its propensities, cold start and consent, the exposure log, feedback, and the shown counts."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from recommender.serving import service
from recommender.serving.exploration import (
    DRAWS,
    LITTLE_DATA,
    POOL_SIZE,
    Candidate,
    SampledPool,
    ThompsonDraws,
    list_random,
)
from recommender.serving.repository import _CANDIDATES, ServedLists, ServingRepository
from recommender.serving.rules import diversify
from recommender.serving.schemas import RecommendationList, RecommendationLists
from recommender.store.models import (
    Exposure,
    Interaction,
    InteractionKind,
    ItemStats,
    MemberFacts,
)
from recommender.surfaces import SURFACE_KINDS, SURFACES
from services.kernel.clock import utcnow
from services.kernel.db import Database, driver_connection
from services.kernel.ids import id_at
from services.kernel.settings import Settings
from tests.conftest import BrandFixture
from tests.recommender.serving_fixtures import (
    NIL,
    add_interaction,
    add_item,
    add_list,
    add_member,
    add_session,
    add_stats,
    api_client,
    count,
    error,
    exposures,
    ids_of,
    member_headers,
    staff_headers,
)

DAY = timedelta(days=1)


@pytest.fixture(autouse=True)
def fresh_caches() -> Iterator[None]:
    service.clear_caches()
    yield
    service.clear_caches()


@pytest.fixture
async def api(
    base_settings: Settings, database: Database, redis: Redis
) -> AsyncIterator[httpx.AsyncClient]:
    """No exploration: every list is the model's."""
    async with api_client(base_settings, database, redis, exploration_share=0.0) as client:
        yield client


@pytest.fixture
async def exploring(
    base_settings: Settings, database: Database, redis: Redis
) -> AsyncIterator[httpx.AsyncClient]:
    """Every place of every list explored (while candidates remain)."""
    async with api_client(base_settings, database, redis, exploration_share=1.0) as client:
        yield client


def url(member_id: uuid.UUID, surface: str = "perks", limit: int = 50) -> str:
    return f"/recommender/v1/members/{member_id}/recommendations?surface={surface}&limit={limit}"


# --- Business rules -----------------------------------------------------------------------------


async def test_perks_pass_only_when_redeemable_now_by_this_member(
    api: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, base_settings: Settings
) -> None:
    now = utcnow()
    gold, silver = uuid.uuid4(), uuid.uuid4()
    me = await add_member(session, brand.id, tier_id=gold)
    someone = await add_member(session, brand.id, tier_id=gold)
    perks = {
        "perk:ok": {},
        "perk:stock-left": {"stock": 1},
        "perk:out-of-stock": {"stock": 0},
        "perk:expired": {"valid_until": now - DAY},
        "perk:not-yet": {"valid_from": now + DAY},
        "perk:in-window": {"valid_from": now - DAY, "valid_until": now + DAY},
        "perk:gold-only": {"tier_ids": [gold]},
        "perk:silver-only": {"tier_ids": [silver]},
        "perk:limit-reached": {"per_member_limit": 1},
        "perk:redeemed": {},
        "perk:redeemed-then-cancelled": {"per_member_limit": 1},
        "perk:redeemed-by-someone-else": {"per_member_limit": 1},
        "perk:dismissed": {},
        "perk:removed": {"active": False},
    }
    for item_id, fields in perks.items():
        await add_item(session, brand.id, item_id, **fields)
    await add_item(session, brand.id, "post:in-the-wrong-list")
    redemption = InteractionKind.REDEMPTION
    await add_interaction(session, brand.id, me, "perk:limit-reached", redemption, 3.0)
    await add_interaction(session, brand.id, me, "perk:redeemed", redemption, 3.0)
    await add_interaction(session, brand.id, me, "perk:redeemed-then-cancelled", redemption, 3.0)
    await add_interaction(session, brand.id, me, "perk:redeemed-then-cancelled", redemption, -3.0)
    await add_interaction(
        session, brand.id, someone, "perk:redeemed-by-someone-else", redemption, 3
    )
    await add_interaction(session, brand.id, me, "perk:dismissed", InteractionKind.DISMISS, -2.0)
    stored = [*perks, "perk:not-in-the-catalog", "post:in-the-wrong-list"]
    await add_list(session, brand.id, me, "perks", stored)

    response = await api.get(url(me), headers=member_headers(base_settings, brand.id, me))

    assert response.status_code == 200, response.text
    assert ids_of(response.json()) == [
        "perk:ok",
        "perk:stock-left",
        "perk:in-window",
        "perk:gold-only",
        "perk:redeemed-then-cancelled",
        "perk:redeemed-by-someone-else",
    ]


async def test_items_that_fail_the_rules_do_not_use_up_the_window_the_list_is_cut_from(
    api: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, base_settings: Settings
) -> None:
    """A list is served from the first `limit x VARIETY_WINDOW` items of the stored list that
    pass the rules, however many before them fail: the rules are checked before the window is
    cut, and nothing past the window is looked at."""
    me = await add_member(session, brand.id)
    window = 2 * service.VARIETY_WINDOW
    failing = [f"perk:gone{n}" for n in range(window + 2)]
    passing = [f"perk:ok{n}" for n in range(window + 3)]
    for item_id in failing:
        await add_item(session, brand.id, item_id, stock=0)
    for item_id in passing:
        # One category: variety has nothing to separate, so the window keeps the list's order.
        await add_item(session, brand.id, item_id, category="skincare")
    await add_list(session, brand.id, me, "perks", [*failing, *passing])

    response = await api.get(url(me, limit=2), headers=member_headers(base_settings, brand.id, me))

    assert response.status_code == 200, response.text
    assert ids_of(response.json()) == ["perk:ok0", "perk:ok1"]
    candidates = await ServedLists(await driver_connection(session)).candidates(
        brand.id, me, "perks", ["perk"], personal=True, pool=[], window=window, now=utcnow()
    )
    assert [row.item_id for row in candidates.rows] == passing[:window]


async def test_experiences_need_a_bookable_session_and_nobody_is_shown_their_own_work(
    api: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, base_settings: Settings
) -> None:
    now = utcnow()
    me = await add_member(session, brand.id)
    sessions = {
        "experience:open": [{"starts_at": now + DAY, "capacity": 10, "booked": 9}],
        "experience:unlimited": [{"starts_at": now + DAY, "capacity": None, "booked": 500}],
        "experience:full": [{"starts_at": now + DAY, "capacity": 10, "booked": 10}],
        "experience:past": [{"starts_at": now - DAY, "capacity": 10, "booked": 0}],
        "experience:cancelled": [{"starts_at": now + DAY, "capacity": 10, "cancelled": True}],
        "experience:no-sessions": [],
        "experience:one-of-two-open": [
            {"starts_at": now + DAY, "capacity": 2, "booked": 2},
            {"starts_at": now + 2 * DAY, "capacity": 2, "booked": 1},
        ],
        "experience:mine": [{"starts_at": now + DAY, "capacity": 10}],
    }
    for item_id, planned in sessions.items():
        author = me if item_id == "experience:mine" else uuid.uuid4()
        await add_item(session, brand.id, item_id, author_id=author)
        for fields in planned:
            starts_at = fields.pop("starts_at")
            await add_session(session, brand.id, item_id, starts_at, **fields)
    await add_list(session, brand.id, me, "experiences", list(sessions))

    response = await api.get(
        url(me, "experiences"), headers=member_headers(base_settings, brand.id, me)
    )

    assert ids_of(response.json()) == [
        "experience:open",
        "experience:unlimited",
        "experience:one-of-two-open",
    ]


async def test_posts_by_the_member_and_prompts_out_of_their_window_are_left_out(
    api: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, base_settings: Settings
) -> None:
    now = utcnow()
    me = await add_member(session, brand.id)
    await add_item(session, brand.id, "post:theirs", author_id=uuid.uuid4())
    await add_item(session, brand.id, "post:mine", author_id=me)
    await add_item(session, brand.id, "post:removed", author_id=uuid.uuid4(), active=False)
    await add_item(session, brand.id, "prompt:open", valid_until=now + DAY)
    await add_item(session, brand.id, "prompt:closed", valid_until=now - DAY)
    await add_item(session, brand.id, "prompt:later", valid_from=now + DAY)
    await add_list(session, brand.id, me, "posts", ["post:mine", "post:theirs", "post:removed"])
    await add_list(
        session, brand.id, me, "prompts", ["prompt:closed", "prompt:later", "prompt:open"]
    )
    await add_list(
        session,
        brand.id,
        me,
        "discover",
        ["post:mine", "prompt:open", "post:theirs", "prompt:closed"],
    )
    headers = member_headers(base_settings, brand.id, me)

    posts = await api.get(url(me, "posts"), headers=headers)
    prompts = await api.get(url(me, "prompts"), headers=headers)
    discover = await api.get(url(me, "discover"), headers=headers)

    assert ids_of(posts.json()) == ["post:theirs"]
    assert ids_of(prompts.json()) == ["prompt:open"]
    assert ids_of(discover.json()) == ["prompt:open", "post:theirs"]


# --- Variety ------------------------------------------------------------------------------------


def test_diversify_keeps_the_best_first_and_separates_categories_when_it_can() -> None:
    items = [("a1", "a"), ("a2", "a"), ("b1", "b"), ("a3", "a"), ("c1", "c"), ("c2", "c")]
    ordered = diversify(items, lambda item: item[1], 10)
    assert [name for name, _ in ordered] == ["a1", "b1", "a2", "c1", "a3", "c2"]
    # Unavoidable neighbours stay in score order; items without a category never clash.
    tail = [("a1", "a"), ("a2", "a"), ("b1", "b"), ("a3", "a"), ("a4", "a")]
    assert [n for n, _ in diversify(tail, lambda i: i[1], 10)] == ["a1", "b1", "a2", "a3", "a4"]
    loose = [("x", None), ("y", None), ("a1", "a"), ("a2", "a")]
    assert [n for n, _ in diversify(loose, lambda i: i[1], 10)] == ["x", "y", "a1", "a2"]
    assert [n for n, _ in diversify(items, lambda i: i[1], 3)] == ["a1", "b1", "a2"]


async def test_the_list_is_reordered_so_no_two_neighbours_share_a_category(
    api: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, base_settings: Settings
) -> None:
    me = await add_member(session, brand.id)
    categories = {
        "perk:s1": "skincare",
        "perk:s2": "skincare",
        "perk:s3": "skincare",
        "perk:f1": "fragrance",
        "perk:m1": "makeup",
        "perk:m2": "makeup",
    }
    for item_id, category in categories.items():
        await add_item(session, brand.id, item_id, category=category)
    await add_list(session, brand.id, me, "perks", list(categories))

    response = await api.get(url(me, limit=5), headers=member_headers(base_settings, brand.id, me))

    body = response.json()
    assert ids_of(body) == ["perk:s1", "perk:f1", "perk:s2", "perk:m1", "perk:s3"]
    assert [item["position"] for item in body["items"]] == [1, 2, 3, 4, 5]
    # Reasons and scores travel with their items.
    assert [item["reason"] for item in body["items"]] == [
        "Because you liked it #1",
        "Because you liked it #4",
        "Because you liked it #2",
        "Because you liked it #5",
        "Because you liked it #3",
    ]
    assert [item["score"] for item in body["items"]] == pytest.approx([1.0, 0.97, 0.99, 0.96, 0.98])
    assert body["items"][0] | {"score": None} == {
        "item_id": "perk:s1",
        "kind": "perk",
        "id": "s1",
        "title": "Title of perk:s1",
        "category": "skincare",
        "score": None,
        "reason": "Because you liked it #1",
        "position": 1,
        "explored": False,
        "propensity": 1.0,
    }


# --- Exploration --------------------------------------------------------------------------------


async def _exploration_world(session: AsyncSession, brand_id: uuid.UUID) -> uuid.UUID:
    """A member with a model list of 4 perks, and perks with little data: 3 the member may be
    shown, one out of stock, one they redeemed, one of a tier they are not in; and a perk
    shown often (not explored)."""
    me = await add_member(session, brand_id)
    model = ["perk:m1", "perk:m2", "perk:m3", "perk:m4"]
    for item_id in model:
        await add_item(session, brand_id, item_id)
        await add_stats(session, brand_id, item_id, shown=5_000, taken=400)
    for item_id in ("perk:new1", "perk:new2", "perk:new3"):
        await add_item(session, brand_id, item_id)
    await add_stats(session, brand_id, "perk:new1", shown=10, taken=5)
    await add_stats(session, brand_id, "perk:new2", shown=99, taken=0)
    await add_item(session, brand_id, "perk:new-out-of-stock", stock=0)
    await add_item(session, brand_id, "perk:new-redeemed")
    await add_item(session, brand_id, "perk:new-other-tier", tier_ids=[uuid.uuid4()])
    await add_item(session, brand_id, "perk:seen-enough")
    await add_stats(session, brand_id, "perk:seen-enough", shown=100, taken=90)
    await add_item(session, brand_id, "post:new-but-not-a-perk")
    await add_interaction(
        session, brand_id, me, "perk:new-redeemed", InteractionKind.REDEMPTION, 3.0
    )
    await add_list(session, brand_id, me, "perks", model)
    return me


async def test_without_exploration_every_item_is_the_models_with_propensity_one(
    api: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, base_settings: Settings
) -> None:
    me = await _exploration_world(session, brand.id)
    headers = member_headers(base_settings, brand.id, me)

    for _ in range(5):
        body = (await api.get(url(me, limit=10), headers=headers)).json()
        assert ids_of(body) == ["perk:m1", "perk:m2", "perk:m3", "perk:m4"]
        assert [item["explored"] for item in body["items"]] == [False] * 4
        assert [item["propensity"] for item in body["items"]] == [1.0] * 4


async def test_the_list_statements_plan_costs_the_same_whatever_exploration_it_carries(
    session: AsyncSession, brand: BrandFixture
) -> None:
    """Planning the list's statement costs more than running it, so its prepared statement must
    settle on one generic plan. PostgreSQL makes custom plans for the first five runs and then
    keeps the generic plan unless a custom one looks cheaper. A custom plan sized the exploration
    candidates' array by its length, so a request without candidates (most: no place explored)
    looked cheaper and was planned anew every time (2.1 against 1.0 ms a request on
    `benchmarks/recommender_serving.py`'s data). Planned with the values, the statement must
    cost the same with no candidates as with fifty."""
    me = await _exploration_world(session, brand.id)
    driver = await driver_connection(session)

    async def cost(pool: list[str]) -> float:
        plan = await driver.fetchval(
            f"EXPLAIN (FORMAT JSON) {_CANDIDATES}",
            brand.id,
            me,
            "perks",
            ["perk"],
            True,
            pool,
            utcnow(),
            30,
        )
        return float(plan[0]["Plan"]["Total Cost"])  # the driver decodes JSON

    assert await cost([]) == await cost([f"perk:new{n}" for n in range(50)])


def _scans(plan: dict[str, object], table: str) -> list[dict[str, object]]:
    """The nodes of a JSON plan that read `table`."""
    found = [plan] if plan.get("Relation Name") == table else []
    for child in plan.get("Plans", []):  # type: ignore[attr-defined]
        found += _scans(child, table)
    return found


async def test_the_list_statement_looks_lists_and_items_up_one_by_one_without_statistics(
    session: AsyncSession, brand: BrandFixture
) -> None:
    """A connection keeps the generic plan its prepared statement settled on for its life. One
    made while the tables had no statistics (a new database, or one autovacuum has not reached)
    scanned every list of the brand's surface, and joined every item of the surface's kinds
    against the list's items: 7 against 0.3 ms a list on the demo brand. Written as lookups (the
    list by its primary key; each of its items by itself, in a subquery the planner cannot fold
    into a join), the statement is planned so whatever the statistics say (the test's tables
    have none)."""
    me = await _exploration_world(session, brand.id)
    driver = await driver_connection(session)
    await driver.execute("SET LOCAL plan_cache_mode = force_generic_plan")
    statement = await driver.prepare(f"EXPLAIN (FORMAT JSON) {_CANDIDATES}")
    plan = (
        await statement.fetchval(brand.id, me, "perks", ["perk"], True, ["perk:new1"], utcnow(), 30)
    )[0]["Plan"]
    lists = _scans(plan, "recommendations")
    assert len(lists) == 3  # the member's own, their tier's, the brand's
    for scan in lists:
        assert scan["Index Name"] == "pk_recommendations"
        assert "member_id = " in str(scan["Index Cond"])
    items = _scans(plan, "items")
    assert items
    for scan in items:
        assert scan["Parent Relationship"] == "Subquery"  # a lookup per item, not a join
        conditions = f"{scan.get('Index Cond', '')} {scan.get('Filter', '')}"
        assert "item_id = " in conditions


async def test_full_exploration_fills_places_by_thompson_sampling_among_eligible_new_items(
    exploring: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    base_settings: Settings,
) -> None:
    me = await _exploration_world(session, brand.id)
    headers = member_headers(base_settings, brand.id, me)

    body = (await exploring.get(url(me, limit=6), headers=headers)).json()

    items = body["items"]
    explored = [item for item in items if item["explored"]]
    assert {item["item_id"] for item in explored} == {"perk:new1", "perk:new2", "perk:new3"}
    assert [item["explored"] for item in items] == [True, True, True, False, False, False]
    # Once the candidates run out, the model fills the places, as it must: propensity 1.
    assert ids_of(body)[3:] == ["perk:m1", "perk:m2", "perk:m3"]
    assert [item["propensity"] for item in items[3:]] == [1.0, 1.0, 1.0]
    for item in explored:
        assert item["reason"] == "Something new you might like"
        assert item["score"] is None
        assert 0.0 < item["propensity"] <= 1.0
        assert item["propensity"] * DRAWS == pytest.approx(round(item["propensity"] * DRAWS))
    # The last candidate left is picked for certain.
    assert explored[-1]["propensity"] == 1.0


async def test_with_half_the_places_explored_model_items_carry_the_chance_of_not_exploring(
    base_settings: Settings,
    database: Database,
    redis: Redis,
    session: AsyncSession,
    brand: BrandFixture,
) -> None:
    me = await _exploration_world(session, brand.id)
    headers = member_headers(base_settings, brand.id, me)
    seen_explored = 0
    seen_uncertain = 0
    async with api_client(base_settings, database, redis, exploration_share=0.5) as half:
        for _ in range(8):
            items = (await half.get(url(me, limit=7), headers=headers)).json()["items"]
            explored_so_far = 0
            for item in items:
                if item["explored"]:
                    explored_so_far += 1
                    assert item["item_id"] in {"perk:new1", "perk:new2", "perk:new3"}
                    assert 0.0 < item["propensity"] <= 0.5
                    wins = item["propensity"] * 2 * DRAWS  # of the draws: a whole number
                    assert wins == pytest.approx(round(wins))
                else:
                    # While one of the 3 eligible candidates is left, the place could have
                    # explored (probability 0.5); after that the model's item was certain.
                    assert item["propensity"] == (0.5 if explored_so_far < 3 else 1.0)
                    seen_uncertain += item["propensity"] == 0.5
            seen_explored += explored_so_far
            model = [i["item_id"] for i in items if not i["explored"]]
            assert model == ["perk:m1", "perk:m2", "perk:m3", "perk:m4"][: len(model)]
    # Places are drawn from each exposure id: over 8 lists both kinds of place occur (the odds
    # against are below one in ten million).
    assert seen_explored > 0
    assert seen_uncertain > 0


async def test_propensities_are_those_of_the_draws_seeded_by_the_exposure_id(
    exploring: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    base_settings: Settings,
) -> None:
    me = await _exploration_world(session, brand.id)
    headers = member_headers(base_settings, brand.id, me)

    body = (await exploring.get(url(me, limit=2), headers=headers)).json()

    # Replaying the draws from the pool as read and the exposure id gives the same picks and
    # probabilities (every place explores, so no place's choice came before the draws).
    read = await ServingRepository(session).exploration_pool(
        brand.id, SURFACE_KINDS["perks"], threshold=LITTLE_DATA, size=POOL_SIZE, now=utcnow()
    )
    pool = SampledPool.of(read)
    # Read for every member: the member's own rules (redeemed, another tier) are checked later.
    assert {c.item_id for c in read} == {
        "perk:new1",
        "perk:new2",
        "perk:new3",
        "perk:new-redeemed",
        "perk:new-other-tier",
    }
    rng = list_random(uuid.UUID(body["exposure_id"]))
    draws = ThompsonDraws(pool, ["perk:new1", "perk:new2", "perk:new3"], rng)
    picks = [draws.pick(), draws.pick()]
    assert [(item["item_id"], item["propensity"]) for item in body["items"]] == [
        (pick.item_id, pytest.approx(pick.probability)) for pick in picks if pick is not None
    ]


def test_thompson_draws_favour_what_was_taken_and_give_every_winner_a_probability() -> None:
    pool = SampledPool.of([Candidate("good", 90, 80), Candidate("bad", 90, 1)])
    draws = ThompsonDraws(pool, ["bad", "good"], list_random(uuid.UUID(int=7)))
    first = draws.pick()
    assert first is not None
    assert (first.item_id, first.probability) == ("good", 1.0)
    second = draws.pick()
    assert second is not None
    assert (second.item_id, second.probability) == ("bad", 1.0)
    assert draws.pick() is None


# --- Which list: own, tier, brand, cold start ----------------------------------------------------


async def _brand_lists(session: AsyncSession, brand_id: uuid.UUID, tier: uuid.UUID) -> None:
    for item_id in ("perk:own", "perk:tier", "perk:everyone"):
        await add_item(session, brand_id, item_id)
    await add_list(
        session, brand_id, NIL, "perks", ["perk:tier"], segment=str(tier), reason="Popular in tier"
    )
    await add_list(session, brand_id, NIL, "perks", ["perk:everyone"], reason="Popular")


async def test_an_unknown_member_gets_the_brands_list_for_members_without_a_tier(
    api: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, base_settings: Settings
) -> None:
    await _brand_lists(session, brand.id, uuid.uuid4())
    stranger = uuid.uuid4()

    response = await api.get(
        url(stranger), headers=member_headers(base_settings, brand.id, stranger)
    )

    assert response.status_code == 200
    body = response.json()
    assert ids_of(body) == ["perk:everyone"]
    assert body["member_id"] == str(stranger)
    assert body["items"][0]["reason"] == "Popular #1"
    assert [e.member_id for e in await exposures(session, brand.id)] == [stranger]


async def test_a_member_without_a_list_of_their_own_gets_their_tiers_then_the_brands(
    api: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, base_settings: Settings
) -> None:
    tier = uuid.uuid4()
    await _brand_lists(session, brand.id, tier)
    in_tier = await add_member(session, brand.id, tier_id=tier)
    other_tier = await add_member(session, brand.id, tier_id=uuid.uuid4())
    no_tier = await add_member(session, brand.id)

    served = {
        member: ids_of(
            (
                await api.get(url(member), headers=member_headers(base_settings, brand.id, member))
            ).json()
        )
        for member in (in_tier, other_tier, no_tier)
    }

    assert served == {
        in_tier: ["perk:tier"],
        other_tier: ["perk:everyone"],
        no_tier: ["perk:everyone"],
    }


async def test_without_the_personalisation_consent_a_member_gets_the_non_personalised_list(
    api: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, base_settings: Settings
) -> None:
    tier = uuid.uuid4()
    await _brand_lists(session, brand.id, tier)
    consenting = await add_member(session, brand.id, tier_id=tier)
    declining = await add_member(session, brand.id, tier_id=tier, personalised=False)
    for member in (consenting, declining):
        await add_list(session, brand.id, member, "perks", ["perk:own"])

    yes = await api.get(
        url(consenting), headers=member_headers(base_settings, brand.id, consenting)
    )
    no = await api.get(url(declining), headers=member_headers(base_settings, brand.id, declining))

    assert ids_of(yes.json()) == ["perk:own"]
    assert ids_of(no.json()) == ["perk:tier"]


async def test_a_surface_nobody_computed_is_an_empty_list_not_an_error(
    api: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, base_settings: Settings
) -> None:
    me = await add_member(session, brand.id)

    response = await api.get(url(me, "new"), headers=member_headers(base_settings, brand.id, me))

    assert response.status_code == 200
    assert response.json()["items"] == []
    assert response.json()["version_id"] is None


# --- The exposure log ---------------------------------------------------------------------------


async def test_the_exposure_row_is_the_list_as_served(
    exploring: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    base_settings: Settings,
) -> None:
    me = await _exploration_world(session, brand.id)
    before = utcnow()

    body = (
        await exploring.get(url(me, limit=5), headers=member_headers(base_settings, brand.id, me))
    ).json()

    # The body, written without pydantic on the hot path, is exactly the documented schema.
    assert RecommendationList.model_validate(body).model_dump(mode="json") == body
    [exposure] = await exposures(session, brand.id)
    assert str(exposure.id) == body["exposure_id"]
    assert exposure.member_id == me
    assert exposure.surface == "perks"
    assert exposure.arm == body["arm"] == ""
    assert exposure.version_id is None  # the member's own list has no version here
    assert exposure.item_ids == ids_of(body)
    assert exposure.explored == [item["explored"] for item in body["items"]]
    assert exposure.propensities == pytest.approx([i["propensity"] for i in body["items"]])
    assert before <= exposure.served_at <= utcnow()


async def test_the_version_of_the_list_is_returned_and_logged(
    api: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, base_settings: Settings
) -> None:
    me = await add_member(session, brand.id)
    version = uuid.uuid4()
    await add_item(session, brand.id, "perk:a")
    await add_list(session, brand.id, me, "perks", ["perk:a"], version_id=version)

    body = (await api.get(url(me), headers=member_headers(base_settings, brand.id, me))).json()

    assert body["version_id"] == str(version)
    [exposure] = await exposures(session, brand.id)
    assert exposure.version_id == version


# --- Who may ask, and bad input -----------------------------------------------------------------


async def test_a_member_reads_only_their_own_list_and_staff_need_the_read_scope(
    api: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, base_settings: Settings
) -> None:
    me = await add_member(session, brand.id)
    other = await add_member(session, brand.id)
    await add_item(session, brand.id, "perk:a")
    await add_list(session, brand.id, other, "perks", ["perk:a"])
    reader = await staff_headers(api, brand, ["recommender:read"])
    outsider = await staff_headers(api, brand, ["members:read"])

    theirs = await api.get(url(other), headers=member_headers(base_settings, brand.id, me))
    no_scope = await api.get(url(other), headers=outsider)
    anonymous = await api.get(url(other))
    assert error(theirs) == (404, "MemberNotFound")
    assert error(no_scope) == (403, "Forbidden")
    assert error(anonymous) == (401, "Unauthorized")
    assert await count(session, Exposure, brand.id) == 0

    as_staff = await api.get(url(other), headers=reader)
    assert as_staff.status_code == 200
    assert ids_of(as_staff.json()) == ["perk:a"]


async def test_bad_input_is_refused_and_serves_nothing(
    api: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, base_settings: Settings
) -> None:
    me = await add_member(session, brand.id)
    headers = member_headers(base_settings, brand.id, me)
    base = f"/recommender/v1/members/{me}/recommendations"

    unknown = await api.get(base, params={"surface": "movies"}, headers=headers)
    assert error(unknown) == (422, "UnknownSurface")
    assert unknown.json()["detail"] == (
        "Unknown surface 'movies'; use one of: perks, prompts, experiences, posts, discover, new."
    )
    assert SURFACES == ("perks", "prompts", "experiences", "posts", "discover", "new")
    for limit in (0, 51, -1):
        out_of_range = await api.get(
            base, params={"surface": "perks", "limit": limit}, headers=headers
        )
        assert error(out_of_range) == (422, "ValidationError")
        assert out_of_range.json()["detail"][0]["loc"] == ["query", "limit"]
    missing = await api.get(base, headers=headers)
    assert error(missing) == (422, "ValidationError")
    bad_id = await api.get(
        "/recommender/v1/members/not-an-id/recommendations?surface=perks", headers=headers
    )
    assert error(bad_id) == (422, "ValidationError")
    assert await count(session, Exposure, brand.id) == 0

    for limit in (1, 50):
        ok = await api.get(base, params={"surface": "perks", "limit": limit}, headers=headers)
        assert ok.status_code == 200
    assert await count(session, Exposure, brand.id) == 2


# --- Several lists in one call ------------------------------------------------------------------


def lists_url(member_id: uuid.UUID, *lists: str) -> str:
    query = "&".join(f"list={one}" for one in lists)
    return f"/recommender/v1/members/{member_id}/recommendations/lists?{query}"


async def test_several_lists_in_one_call_are_each_what_one_call_serves_and_each_logged(
    api: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, base_settings: Settings
) -> None:
    me = await add_member(session, brand.id)
    headers = member_headers(base_settings, brand.id, me)
    perks = [f"perk:{n}" for n in range(14)]
    for item_id in [*perks, "prompt:a", "prompt:b", "post:x"]:
        await add_item(session, brand.id, item_id)
    await add_list(session, brand.id, me, "perks", perks)
    await add_list(session, brand.id, me, "prompts", ["prompt:b", "prompt:a"])
    await add_list(session, brand.id, me, "posts", ["post:x"])

    response = await api.get(lists_url(me, "prompts:1", "perks", "posts:5"), headers=headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert RecommendationLists.model_validate(body).model_dump(mode="json") == body
    lists = body["lists"]
    assert [one["surface"] for one in lists] == ["prompts", "perks", "posts"]
    assert [ids_of(one) for one in lists] == [["prompt:b"], perks[:10], ["post:x"]]
    # Each is what the one-list route serves, and each its own exposure, in the order asked.
    for one in lists:
        alone = await api.get(url(me, one["surface"], len(one["items"])), headers=headers)
        assert ids_of(alone.json()) == ids_of(one)
        assert [i["reason"] for i in alone.json()["items"]] == [i["reason"] for i in one["items"]]
    logged = await exposures(session, brand.id)
    assert [str(e.id) for e in logged[:3]] == [one["exposure_id"] for one in lists]
    assert [e.item_ids for e in logged[:3]] == [ids_of(one) for one in lists]
    assert len(logged) == 6


async def test_bad_lists_are_refused_whole_and_log_nothing(
    api: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, base_settings: Settings
) -> None:
    me = await add_member(session, brand.id)
    other = await add_member(session, brand.id)
    headers = member_headers(base_settings, brand.id, me)
    await add_item(session, brand.id, "perk:a")
    await add_list(session, brand.id, me, "perks", ["perk:a"])
    refused = {
        ("perks", "movies:3"): (422, "UnknownSurface"),
        ("perks:0",): (422, "ValidationError"),
        ("perks:51",): (422, "ValidationError"),
        ("perks:ten",): (422, "ValidationError"),
        ("perks:",): (422, "ValidationError"),
        ("perks:-1",): (422, "ValidationError"),
        ("perks:3", "prompts", "perks:5"): (422, "ValidationError"),
        ("perks", "prompts", "experiences", "posts", "discover", "new", "perks"): (
            422,
            "ValidationError",
        ),
    }
    for lists, expected in refused.items():
        assert error(await api.get(lists_url(me, *lists), headers=headers)) == expected, lists
    twice = await api.get(lists_url(me, "perks:3", "prompts", "perks:5"), headers=headers)
    assert twice.json()["detail"] == "list 'perks:5': the surface 'perks' is asked twice."
    malformed = await api.get(lists_url(me, "perks:ten"), headers=headers)
    assert malformed.json()["detail"] == (
        "list 'perks:ten': write the surface, or the surface and a limit from 1 to 50 after a "
        "colon (perks:10)."
    )
    long = await api.get(lists_url(me, "perks:" + "9" * 500), headers=headers)
    assert long.json()["detail"].startswith(f"list 'perks:{'9' * 34}...': write the surface")
    none = await api.get(f"/recommender/v1/members/{me}/recommendations/lists", headers=headers)
    assert error(none) == (422, "ValidationError")
    theirs = await api.get(lists_url(other, "perks"), headers=headers)
    assert error(theirs) == (404, "MemberNotFound")
    assert error(await api.get(lists_url(me, "perks"))) == (401, "Unauthorized")
    assert await count(session, Exposure, brand.id) == 0

    every = await api.get(lists_url(me, *SURFACES), headers=headers)
    assert [one["surface"] for one in every.json()["lists"]] == list(SURFACES)
    assert await count(session, Exposure, brand.id) == len(SURFACES)


# --- Feedback -----------------------------------------------------------------------------------


async def _served(
    api: httpx.AsyncClient, session: AsyncSession, brand_id: uuid.UUID, settings: Settings
) -> tuple[uuid.UUID, str, dict[str, str]]:
    """A member shown perk:a and perk:b; returns (member, exposure id, member headers)."""
    me = await add_member(session, brand_id)
    for item_id in ("perk:a", "perk:b"):
        await add_item(session, brand_id, item_id)
    await add_list(session, brand_id, me, "perks", ["perk:a", "perk:b"])
    headers = member_headers(settings, brand_id, me)
    body = (await api.get(url(me), headers=headers)).json()
    assert ids_of(body) == ["perk:a", "perk:b"]
    return me, body["exposure_id"], headers


async def _feedback_state(
    session: AsyncSession, brand_id: uuid.UUID, member_id: uuid.UUID
) -> tuple[list[tuple[str, str, float]], list[tuple[str, int]], object]:
    interactions = (
        await session.execute(
            select(Interaction.item_id, Interaction.kind, Interaction.weight)
            .where(Interaction.brand_id == brand_id)
            .order_by(Interaction.id)
        )
    ).all()
    stats = (
        await session.execute(
            select(ItemStats.item_id, ItemStats.taken)
            .where(ItemStats.brand_id == brand_id)
            .order_by(ItemStats.item_id)
        )
    ).all()
    stale = await session.scalar(
        select(MemberFacts.stale_since).where(MemberFacts.member_id == member_id)
    )
    return [tuple(r) for r in interactions], [tuple(r) for r in stats], stale  # type: ignore[misc]


async def test_a_click_is_an_interaction_the_next_fold_in_picks_up(
    api: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, base_settings: Settings
) -> None:
    me, exposure_id, headers = await _served(api, session, brand.id, base_settings)
    before = utcnow()

    response = await api.post(
        f"/recommender/v1/exposures/{exposure_id}/feedback",
        json={"item_id": "perk:b", "action": "click"},
        headers=headers,
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body | {"recorded_at": None} == {
        "exposure_id": exposure_id,
        "member_id": str(me),
        "item_id": "perk:b",
        "action": "click",
        "recorded_at": None,
    }
    [row] = (
        await session.scalars(select(Interaction).where(Interaction.brand_id == brand.id))
    ).all()
    assert (row.member_id, row.item_id, row.kind, row.weight) == (
        me,
        "perk:b",
        InteractionKind.CLICK,
        0.5,
    )
    assert str(row.exposure_id) == exposure_id
    assert before <= row.occurred_at <= utcnow()
    _, stats, stale = await _feedback_state(session, brand.id, me)
    assert stats == [("perk:b", 1)]
    assert stale == row.occurred_at

    # The same click again records nothing more and answers the first record.
    again = await api.post(
        f"/recommender/v1/exposures/{exposure_id}/feedback",
        json={"item_id": "perk:b", "action": "click"},
        headers=headers,
    )
    assert again.status_code == 201
    assert again.json() == body
    assert await _feedback_state(session, brand.id, me) == (
        [("perk:b", "click", 0.5)],
        [("perk:b", 1)],
        row.occurred_at,
    )


async def test_a_dismissed_item_is_never_shown_again_and_staleness_keeps_the_earliest_time(
    api: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, base_settings: Settings
) -> None:
    me, exposure_id, headers = await _served(api, session, brand.id, base_settings)
    earlier = utcnow() - timedelta(hours=2)
    await session.execute(
        MemberFacts.__table__.update()
        .where(MemberFacts.member_id == me)
        .values(stale_since=earlier)
    )

    response = await api.post(
        f"/recommender/v1/exposures/{exposure_id}/feedback",
        json={"item_id": "perk:a", "action": "dismiss"},
        headers=headers,
    )

    assert response.status_code == 201
    assert await _feedback_state(session, brand.id, me) == (
        [("perk:a", "dismiss", -2.0)],
        [],
        earlier,
    )
    after = await api.get(url(me), headers=headers)
    assert ids_of(after.json()) == ["perk:b"]


async def test_staff_with_the_write_scope_send_feedback_for_a_member_and_keys_replay(
    api: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, base_settings: Settings
) -> None:
    me, exposure_id, _ = await _served(api, session, brand.id, base_settings)
    reader = await staff_headers(api, brand, ["recommender:read"])
    writer = await staff_headers(api, brand, ["recommender:write"])
    path = f"/recommender/v1/exposures/{exposure_id}/feedback"
    click = {"item_id": "perk:a", "action": "click"}

    refused = await api.post(path, json=click, headers=reader)
    assert error(refused) == (403, "Forbidden")
    first = await api.post(path, json=click, headers={**writer, "Idempotency-Key": "k1"})
    replay = await api.post(path, json=click, headers={**writer, "Idempotency-Key": "k1"})
    reused = await api.post(
        path,
        json={"item_id": "perk:b", "action": "click"},
        headers={**writer, "Idempotency-Key": "k1"},
    )

    assert first.status_code == replay.status_code == 201
    assert replay.content == first.content
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert first.json()["member_id"] == str(me)
    assert error(reused) == (409, "IdempotencyKeyReused")
    interactions, stats, _ = await _feedback_state(session, brand.id, me)
    assert interactions == [("perk:a", "click", 0.5)]
    assert stats == [("perk:a", 1)]


async def test_bad_feedback_is_refused_and_changes_nothing(
    api: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
    base_settings: Settings,
) -> None:
    me, exposure_id, headers = await _served(api, session, brand.id, base_settings)
    other = await add_member(session, brand.id)
    path = f"/recommender/v1/exposures/{exposure_id}/feedback"
    before = await _feedback_state(session, brand.id, me)

    cases = [
        (
            f"/recommender/v1/exposures/{uuid.uuid4()}/feedback",
            {"item_id": "perk:a", "action": "click"},
            headers,
            (404, "ExposureNotFound"),
        ),
        (
            path,
            {"item_id": "perk:a", "action": "click"},
            member_headers(base_settings, brand.id, other),
            (404, "ExposureNotFound"),
        ),
        (
            path,
            {"item_id": "perk:a", "action": "click"},
            other_brand.headers,
            (404, "ExposureNotFound"),
        ),
        (path, {"item_id": "perk:zzz", "action": "click"}, headers, (422, "ItemNotInExposure")),
        (path, {"item_id": "perk:a", "action": "like"}, headers, (422, "ValidationError")),
        (path, {"item_id": "perk:a"}, headers, (422, "ValidationError")),
        (path, {"item_id": "perk:a", "action": "click", "x": 1}, headers, (422, "ValidationError")),
        (path, {"item_id": "perk:a", "action": "click"}, {}, (401, "Unauthorized")),
    ]
    for path_, body, headers_, expected in cases:
        response = await api.post(path_, json=body, headers=headers_)
        assert error(response) == expected, (body, response.text)

    assert await _feedback_state(session, brand.id, me) == before
    assert await count(session, Interaction, brand.id) == 0


# --- Shown counts -------------------------------------------------------------------------------


async def test_refresh_item_stats_counts_each_exposure_once_across_consecutive_windows(
    session: AsyncSession, brand: BrandFixture, other_brand: BrandFixture
) -> None:
    start = utcnow() - timedelta(hours=3)
    await add_stats(session, brand.id, "perk:a", shown=7, taken=2)

    def exposure(brand_id: uuid.UUID, minutes: float, items: list[str]) -> Exposure:
        at = start + timedelta(minutes=minutes)
        return Exposure(
            id=id_at(at),
            brand_id=brand_id,
            member_id=uuid.uuid4(),
            surface="perks",
            item_ids=items,
            propensities=[1.0] * len(items),
            explored=[False] * len(items),
            served_at=at,
        )

    session.add_all(
        [
            exposure(brand.id, 1, ["perk:a", "perk:b"]),
            exposure(brand.id, 30, ["perk:a"]),
            exposure(other_brand.id, 30, ["perk:a"]),
            exposure(brand.id, 60, ["perk:b"]),  # exactly on the second window's start
            exposure(brand.id, 90, ["perk:c"]),
            exposure(brand.id, 200, ["perk:a"]),  # after both windows
        ]
    )
    await session.flush()
    middle = start + timedelta(minutes=60)

    first = await service.refresh_item_stats(session, start, middle)
    second = await service.refresh_item_stats(session, first.until, start + timedelta(minutes=120))
    again = await service.refresh_item_stats(session, middle, middle)

    assert (first.exposures, first.items, first.until) == (3, 3, middle)
    assert (second.exposures, second.items) == (2, 2)
    assert (again.exposures, again.items) == (0, 0)
    rows = (
        await session.execute(
            select(ItemStats.brand_id, ItemStats.item_id, ItemStats.shown, ItemStats.taken)
            .where(ItemStats.brand_id.in_([brand.id, other_brand.id]))
            .order_by(ItemStats.brand_id == other_brand.id, ItemStats.item_id)
        )
    ).all()
    assert [tuple(r) for r in rows] == [
        (brand.id, "perk:a", 9, 2),
        (brand.id, "perk:b", 2, 0),
        (brand.id, "perk:c", 1, 0),
        (other_brand.id, "perk:a", 1, 0),
    ]
