"""An item's audience: the brand's members ranked by the serving model's score for the item,
scored a chunk at a time; members the model knows nothing of, or may not profile, last; the
first share of them. Checked against each member scored on their own."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
import scipy.sparse as sp  # type: ignore[import-untyped]
from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from recommender.serving import audience
from recommender.store.models import Interaction, Item, ItemKind, MemberFacts, item_id_of
from recommender.training import repository, service
from recommender.training.snapshot import pair_matrix
from services.kernel.clock import utcnow
from services.kernel.ids import new_id
from tests.conftest import BrandFixture
from tests.recommender.serving_fixtures import staff_headers
from tests.recommender.store_world import World, build_world

NOW = utcnow().replace(microsecond=0)


@dataclass(frozen=True)
class Trained:
    world: World
    empty: uuid.UUID  # a member with no interactions
    private: uuid.UUID  # a member with interactions but no personalisation consent


async def move(session: AsyncSession, world: World, brand_id: uuid.UUID) -> None:
    """The world into the brand (whose key the API takes)."""
    for table in (MemberFacts, Interaction, Item):
        await session.execute(
            update(table).where(table.brand_id == world.brand_id).values(brand_id=brand_id)
        )
    world.brand_id = brand_id


async def trained_world(session: AsyncSession, brand_id: uuid.UUID, members: int = 80) -> Trained:
    world = await build_world(session, members=members, now=NOW)
    await move(session, world, brand_id)
    empty, private = uuid.UUID(int=1), uuid.UUID(int=2)
    await session.execute(
        insert(MemberFacts),
        [
            {"member_id": m, "brand_id": brand_id, "personalised": p, "joined_at": NOW}
            for m, p in ((empty, True), (private, False))
        ],
    )
    perk = world.of_kind(ItemKind.PERK, "skincare")[0]
    await session.execute(
        insert(Interaction),
        [
            {
                "brand_id": brand_id,
                "member_id": private,
                "item_id": perk,
                "kind": "redemption",
                "weight": 3.0,
                "occurred_at": NOW - timedelta(days=3),
            }
        ],
    )
    assert await service.train_brand(session, brand_id, NOW) is not None
    audience.clear_cache()
    return Trained(world, empty, private)


async def expected_order(
    session: AsyncSession, brand_id: uuid.UUID, item_id: str
) -> list[uuid.UUID]:
    """Each member scored on their own row, then sorted: known members by score, best first,
    ties and the rest by member id."""
    version = await repository.serving_version(session, brand_id)
    assert version is not None
    model = await service.load_model(session, version)
    members = await repository.read_members(session, brand_id)
    pairs = await repository.read_pairs(
        session, brand_id, [m.member_id for m in members], [str(i) for i in model.item_ids], NOW
    )
    matrix = pair_matrix(pairs, len(members), model.n_items)
    column = model.index[item_id]
    keyed = []
    for row, member in enumerate(members):
        own = sp.csr_matrix(matrix[row : row + 1])
        score = float(model.score(own, model.context([member]))[0, column])
        known = own.nnz > 0 and member.personalised
        keyed.append((0 if known else 1, -score if known else 0.0, member.member_id.bytes, member))
    return [k[3].member_id for k in sorted(keyed, key=lambda k: k[:3])]


async def ask(
    client: httpx.AsyncClient, headers: dict[str, str], item_id: str, share: float | str
) -> httpx.Response:
    return await client.get(
        f"/recommender/v1/items/{item_id}/audience", params={"top_share": share}, headers=headers
    )


async def test_the_audience_is_the_top_share_by_score_with_the_unknown_last(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trained = await trained_world(session, brand.id)
    world = trained.world
    perk = world.of_kind(ItemKind.PERK, "skincare")[1]
    expected = await expected_order(session, brand.id, perk)
    total = len(world.taste) + 2
    assert len(expected) == total

    monkeypatch.setattr(audience, "SCORE_CELLS", 7 * 200)  # several chunks of a few members
    answer = await ask(client, brand.headers, perk, 0.25)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    version = await repository.serving_version(session, brand.id)
    assert version is not None
    assert body["version_id"] == str(version.id)
    assert (body["item_id"], body["top_share"], body["members"], body["note"]) == (
        perk,
        0.25,
        total,
        None,
    )
    assert body["scored"] == len(world.taste)  # everyone but the empty and the private
    take = math.ceil(0.25 * total)
    assert [uuid.UUID(m) for m in body["member_ids"]] == expected[:take]
    # The model follows taste: most of the top quarter favour skincare.
    skincare = sum(world.taste.get(uuid.UUID(m)) == "skincare" for m in body["member_ids"])
    assert skincare / take >= 0.8

    everyone = (await ask(client, brand.headers, perk, 1)).json()["member_ids"]
    assert [uuid.UUID(m) for m in everyone] == expected
    assert everyone[-2:] == [str(trained.empty), str(trained.private)]  # by id, last
    one = (await ask(client, brand.headers, perk, 1e-9)).json()["member_ids"]
    assert one == [str(expected[0])]


async def test_the_ranking_is_computed_once_per_version_and_item(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trained = await trained_world(session, brand.id, members=40)
    calls: list[str] = []
    rank = audience._rank

    async def counted(*args: object) -> audience.Ranked:
        calls.append("rank")
        return await rank(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(audience, "_rank", counted)
    perk = trained.world.of_kind(ItemKind.PERK, "hair")[0]
    first = await ask(client, brand.headers, perk, 0.5)
    second = await ask(client, brand.headers, perk, 0.1)
    assert (
        first.json()["member_ids"][: len(second.json()["member_ids"])]
        == second.json()["member_ids"]
    )
    assert calls == ["rank"]


async def test_an_item_newer_than_the_model_is_scored_by_its_text(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture
) -> None:
    trained = await trained_world(session, brand.id)
    fresh = item_id_of(ItemKind.PERK, new_id())
    session.add(
        Item(
            brand_id=brand.id,
            item_id=fresh,
            kind=ItemKind.PERK,
            title="Fragrance discovery set",
            content="fragrance fragrance perfume",
            category="fragrance",
            tags=["fragrance"],
            active=True,
            created_at=NOW + timedelta(minutes=1),
        )
    )
    await session.flush()
    body = (await ask(client, brand.headers, fresh, 0.25)).json()
    assert body["note"] is None
    ids = [uuid.UUID(m) for m in body["member_ids"]]
    assert len(ids) == math.ceil(0.25 * body["members"])
    fans = sum(trained.world.taste.get(m) == "fragrance" for m in ids)
    assert fans / len(ids) >= 0.8


async def test_without_a_model_that_ranks_members_nobody_is_picked(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture
) -> None:
    world = await build_world(session, members=10, now=NOW)
    await move(session, world, brand.id)
    perk = world.of_kind(ItemKind.PERK)[0]
    untrained = (await ask(client, brand.headers, perk, 0.5)).json()
    assert (untrained["version_id"], untrained["member_ids"]) == (None, [])
    assert untrained["note"] == "The brand has no serving model yet."

    # No interactions at all: the model is popularity, the same for everyone.
    await session.execute(Interaction.__table__.delete().where(Interaction.brand_id == brand.id))  # type: ignore[attr-defined]
    assert await service.train_brand(session, brand.id, NOW) is not None
    audience.clear_cache()
    popular = (await ask(client, brand.headers, perk, 0.5)).json()
    assert popular["version_id"] is not None
    assert popular["member_ids"] == []
    assert "popularity" in popular["note"]


async def test_bad_requests_are_refused(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
) -> None:
    world = await build_world(session, members=10, now=NOW)
    await move(session, world, brand.id)
    perk = world.of_kind(ItemKind.PERK)[0]
    for share, code in (
        (0, "InvalidShare"),
        (1.5, "InvalidShare"),
        (-0.1, "InvalidShare"),
        ("x", "ValidationError"),
    ):
        refused = await ask(client, brand.headers, perk, share)
        assert (refused.status_code, refused.json()["error"]) == (422, code)
    unknown = await ask(client, brand.headers, f"perk:{uuid.uuid4()}", 0.5)
    assert (unknown.status_code, unknown.json()["error"]) == (404, "ItemNotFound")
    elsewhere = await ask(client, other_brand.headers, perk, 0.5)
    assert (elsewhere.status_code, elsewhere.json()["error"]) == (404, "ItemNotFound")
    marketer = await staff_headers(client, brand, ["marketing:read"])
    forbidden = await ask(client, marketer, perk, 0.5)
    assert (forbidden.status_code, forbidden.json()["error"]) == (403, "Forbidden")
    reader = await staff_headers(client, brand, ["recommender:read"])
    assert (await ask(client, reader, perk, 0.5)).status_code == 200
    not_a_share = await ask(client, brand.headers, perk, "nan")
    assert (not_a_share.status_code, not_a_share.json()["error"]) == (422, "InvalidShare")
