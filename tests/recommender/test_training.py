"""Training, the gate, the precomputed lists and the fold-in, on a brand written into the store."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from recommender.serving.experiments import arms_of, assign_arm
from recommender.store.models import (
    OUTBOX,
    ArtifactChunk,
    Experiment,
    Interaction,
    Item,
    ItemKind,
    MemberFacts,
    ModelVersion,
    Recommendation,
    VersionStatus,
    item_id_of,
)
from recommender.surfaces import SURFACES
from recommender.training import model, service, tasks
from recommender.training.gate import is_evaluation_member, not_worse
from recommender.training.lists import NON_PERSONALISED
from services.kernel.auth import Scope
from services.kernel.clock import utcnow
from services.kernel.ids import new_id
from services.kernel.jobs import Continue
from services.members import service as members_service
from services.members.schemas import ApiKeyCreate
from tests.conftest import BrandFixture, bearer, until_done
from tests.recommender.store_world import World, build_world, interact

NOW = utcnow().replace(microsecond=0)


async def own_lists(session: AsyncSession, world: World, surface: str) -> list[Recommendation]:
    result = await session.scalars(
        select(Recommendation).where(
            Recommendation.brand_id == world.brand_id,
            Recommendation.surface == surface,
            Recommendation.member_id != NON_PERSONALISED,
        )
    )
    return list(result)


async def list_of(
    session: AsyncSession, world: World, member_id: uuid.UUID, surface: str
) -> Recommendation:
    row = await session.get(Recommendation, (world.brand_id, member_id, surface, ""))
    assert row is not None
    await session.refresh(row)
    return row


@pytest.fixture
async def world(session: AsyncSession) -> World:
    return await build_world(session, now=NOW)


async def test_a_first_version_serves_and_every_member_gets_lists_that_follow_their_taste(
    session: AsyncSession, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A brand this small would get the rank fusion (below); the ranker is what big ones get.
    monkeypatch.setattr(model, "RANKER_MIN_MEMBERS", 50)
    trained = await service.train_brand(session, world.brand_id, NOW)

    assert trained is not None
    assert trained.promoted
    version = trained.version
    assert (version.number, version.status, version.compared_to) == (1, VersionStatus.SERVING, None)
    evaluation = sum(is_evaluation_member(m) for m in world.taste)
    assert version.metrics["members"] == len(world.taste) - evaluation
    assert version.metrics["model"] == "ranker"
    assert version.metrics["items"] == len(world.items)
    assert version.metrics["ndcg@100"] > 0.1
    chunks = await session.scalar(
        select(func.sum(func.length(ArtifactChunk.data))).where(
            ArtifactChunk.version_id == version.id
        )
    )
    assert chunks == version.artifact_bytes > 0
    events = (await session.execute(select(OUTBOX.table.c.type, OUTBOX.table.c.payload))).all()
    assert [(t, p["data"]["status"], p["data"]["number"]) for t, p in events] == [
        ("recommendation.model_trained", "serving", 1)
    ]
    # Every member with interactions waits for a fold-in with the new version.
    stale = await session.scalar(
        select(func.count()).where(
            MemberFacts.brand_id == world.brand_id, MemberFacts.stale_since.is_not(None)
        )
    )
    assert stale == len(world.taste)

    assert await service.fold_in(session, NOW) == len(world.taste)

    for surface in SURFACES:
        rows = await own_lists(session, world, surface)
        assert len(rows) == len(world.taste), surface
    perks = await own_lists(session, world, "perks")
    on_taste = sum(
        world.category(i) == world.taste[row.member_id] for row in perks for i in row.item_ids[:3]
    )
    assert on_taste / (3 * len(perks)) > 0.85
    done = (
        await session.execute(
            select(Interaction.member_id, Interaction.item_id).where(
                Interaction.brand_id == world.brand_id
            )
        )
    ).all()
    for row in perks + await own_lists(session, world, "posts"):
        assert not {i for m, i in done if m == row.member_id} & set(row.item_ids)
        assert len(row.item_ids) == len(row.scores) == len(row.reasons)
        assert row.scores == sorted(row.scores, reverse=True)
        assert row.version_id == version.id
    assert all(i.startswith("perk:") for row in perks for i in row.item_ids)
    first = perks[0]
    assert first.reasons[0].startswith(("Because you ", "You often choose", "Popular with"))
    remaining = await session.scalar(
        select(func.count()).where(MemberFacts.stale_since.is_not(None))
    )
    assert remaining == 0


async def test_the_non_personalised_lists_rank_by_popularity_within_each_tier(
    session: AsyncSession, world: World
) -> None:
    await service.train_brand(session, world.brand_id, NOW)

    rows = (
        await session.scalars(
            select(Recommendation).where(
                Recommendation.brand_id == world.brand_id,
                Recommendation.member_id == NON_PERSONALISED,
            )
        )
    ).all()
    segments = {"", *(str(t) for t in world.tier_ids.values())}
    assert {(r.segment, r.surface) for r in rows} == {(s, x) for s in segments for x in SURFACES}
    vib = next(r for r in rows if r.segment == str(world.tier_ids["VIB"]) and r.surface == "perks")
    assert vib.reasons == ["Popular with VIB members"] * len(vib.item_ids)
    assert vib.scores == sorted(vib.scores, reverse=True)
    assert len(vib.item_ids) == len(world.of_kind(ItemKind.PERK))
    # Nothing new in the last fortnight: the brand-wide "new" list is empty.
    new = next(r for r in rows if r.segment == "" and r.surface == "new")
    assert new.item_ids == []


async def test_a_fold_in_moves_a_member_towards_what_they_do_now_and_says_why(
    session: AsyncSession, world: World
) -> None:
    await service.train_brand(session, world.brand_id, NOW)
    await service.fold_in(session, NOW)
    member_id = next(m for m, c in world.taste.items() if c == "skincare")
    before = list((await list_of(session, world, member_id, "perks")).item_ids)

    liked = (
        world.of_kind(ItemKind.POST, "fragrance")[:6]
        + world.of_kind(ItemKind.PERK, "fragrance")[:2]
    )
    later = NOW + timedelta(hours=1)
    await interact(session, world, member_id, liked, later)
    assert await service.fold_in(session, later) == 1

    after = await list_of(session, world, member_id, "perks")
    fragrant_before = sum(world.category(i) == "fragrance" for i in before[:8])
    fragrant_after = sum(world.category(i) == "fragrance" for i in after.item_ids[:8])
    assert fragrant_after >= 3 > fragrant_before
    assert not set(liked) & set(after.item_ids)
    fragrant = [
        r
        for i, r in zip(after.item_ids, after.reasons, strict=True)
        if world.category(i) == "fragrance"
    ]
    assert any("Fragrance" in reason for reason in fragrant[:3]), fragrant[:3]


async def test_items_newer_than_the_version_reach_the_lists_of_members_they_suit(
    session: AsyncSession, world: World
) -> None:
    await service.train_brand(session, world.brand_id, NOW)
    later = NOW + timedelta(hours=2)
    author = next(m for m, c in world.taste.items() if c == "hair")
    post = Item(
        brand_id=world.brand_id,
        item_id=item_id_of(ItemKind.POST, new_id()),
        kind=ItemKind.POST,
        title="Hair oil routine",
        content="hair oil routine hair",
        category="hair",
        tags=["hair"],
        author_id=author,
        active=True,
        created_at=later,
        updated_at=later,
    )
    session.add(post)
    await session.flush()

    await service.fold_in(session, later)

    fan = next(m for m, c in world.taste.items() if c == "hair" and m != author)
    posts = await list_of(session, world, fan, "posts")
    assert post.item_id in posts.item_ids
    new = await list_of(session, world, fan, "new")
    assert new.item_ids[0] == post.item_id
    assert post.item_id not in (await list_of(session, world, author, "posts")).item_ids


async def test_weekly_lists_stay_put_for_the_week_while_the_others_follow_the_member(
    session: AsyncSession, world: World
) -> None:
    await service.train_brand(session, world.brand_id, NOW)
    await service.fold_in(session, NOW)
    member_id = next(iter(world.taste))
    discover = await list_of(session, world, member_id, "discover")
    top_perk = (await list_of(session, world, member_id, "perks")).item_ids[0]
    shown = discover.item_ids[:3]
    kinds = {i.split(":")[0] for i in discover.item_ids[:4]}
    assert len(kinds) >= 3  # Discover mixes surfaces

    # Same week: the member acts on Discover's top items; perks move, Discover stays.
    later = NOW + timedelta(minutes=5)
    await interact(session, world, member_id, [*shown, top_perk], later)
    await service.fold_in(session, later)
    assert (await list_of(session, world, member_id, "discover")).item_ids[:3] == shown
    assert top_perk not in (await list_of(session, world, member_id, "perks")).item_ids

    # Next week the list is made again, without what they already did.
    next_week = NOW + timedelta(days=7)
    member = await session.get(MemberFacts, member_id)
    assert member is not None
    member.stale_since = next_week
    await service.fold_in(session, next_week)
    assert not set(shown) & set((await list_of(session, world, member_id, "discover")).item_ids)


async def test_a_version_worse_than_the_serving_one_is_kept_but_does_not_serve(
    session: AsyncSession, world: World
) -> None:
    first = await service.train_brand(session, world.brand_id, NOW)
    second = await service.train_brand(session, world.brand_id, NOW)
    assert first is not None
    assert second is not None
    assert second.promoted  # the same data: not worse
    assert second.version.compared_to == {
        k: first.version.metrics[k]
        for k in ("ndcg@100", "recall@20", "recall@50", "evaluated_members")
    }
    await session.refresh(first.version)
    assert first.version.status == VersionStatus.RETIRED

    # The training members' histories turn to noise: each interaction on a random item.
    trainees = [m for m in world.taste if not is_evaluation_member(m)]
    await session.execute(select(func.setseed(0.25)))
    await session.execute(
        text(
            "UPDATE recommender.interactions"
            " SET item_id = (CAST(:items AS text[]))[1 + floor(random() * :n)::int]"
            " WHERE member_id = ANY(:trainees)"
        ),
        {"items": sorted(world.items), "n": len(world.items), "trainees": trainees},
    )
    third = await service.train_brand(session, world.brand_id, NOW)

    assert third is not None
    assert not third.promoted
    assert third.version.status == VersionStatus.REJECTED
    assert third.version.metrics["ndcg@100"] < second.version.metrics["ndcg@100"] * 0.99
    serving = await session.scalars(
        select(ModelVersion.number).where(
            ModelVersion.brand_id == world.brand_id,
            ModelVersion.status == VersionStatus.SERVING,
        )
    )
    assert list(serving) == [2]
    statuses = [
        p["data"]["status"] for p in (await session.scalars(select(OUTBOX.table.c.payload)))
    ]
    assert statuses == ["serving", "serving", "rejected"]


async def test_a_process_keeps_only_its_three_most_recent_models_however_often_it_trains(
    session: AsyncSession, world: World
) -> None:
    """A young brand retrains every five minutes, so its process may not keep every model it
    trained (each holds its EASE weights, megabytes to hundreds of them): found by the soak,
    where the dev server grew by each training's model."""
    trained = [await service.train_brand(session, world.brand_id, NOW) for _ in range(5)]
    kept = service._MODELS.keys()  # the process's cache of models, least recently used first
    assert kept == [t.version.id for t in trained[-3:] if t is not None]


def test_the_gate_lets_through_what_is_within_noise_and_judges_nothing_without_figures() -> None:
    assert not_worse({"ndcg@100": 0.297}, {"ndcg@100": 0.30})
    assert not not_worse({"ndcg@100": 0.29}, {"ndcg@100": 0.30})
    assert not_worse(None, {"ndcg@100": 0.30})
    assert not_worse({"ndcg@100": 0.1}, None)


async def test_a_brand_with_members_but_no_interactions_serves_popularity(
    session: AsyncSession,
) -> None:
    brand_id = new_id()
    session.add(MemberFacts(member_id=new_id(), brand_id=brand_id, joined_at=NOW))
    await session.flush()

    trained = await service.train_brand(session, brand_id, NOW)

    assert trained is not None
    assert trained.promoted
    assert trained.version.metrics["model"] == "popular"
    assert await service.train_brand(session, new_id(), NOW) is None  # no members: nothing


async def test_staff_list_versions_and_queue_a_training_run(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, redis: object
) -> None:
    world = await build_world(session, members=40, now=NOW)
    await session.execute(
        MemberFacts.__table__.update()  # type: ignore[attr-defined]
        .where(MemberFacts.brand_id == world.brand_id)
        .values(brand_id=brand.id)
    )
    await session.execute(
        Interaction.__table__.update()  # type: ignore[attr-defined]
        .where(Interaction.brand_id == world.brand_id)
        .values(brand_id=brand.id)
    )
    await session.execute(
        Item.__table__.update().where(Item.brand_id == world.brand_id).values(brand_id=brand.id)  # type: ignore[attr-defined]
    )
    await service.train_brand(session, brand.id, NOW)

    listed = await client.get("/recommender/v1/models", headers=brand.headers)
    assert listed.status_code == 200
    assert [(v["number"], v["status"]) for v in listed.json()] == [(1, "serving")]

    queued = await client.post("/recommender/v1/models/train", headers=brand.headers)
    assert queued.status_code == 202
    assert queued.json() == {"job_id": f"recommender.train:{brand.id}", "brand_id": str(brand.id)}
    again = await client.post("/recommender/v1/models/train", headers=brand.headers)
    assert again.json() == queued.json()

    _, reader = await members_service.create_api_key(
        session, brand.id, ApiKeyCreate(name="reader", scopes=[Scope.RECOMMENDER_READ])
    )
    await session.commit()
    assert (await client.get("/recommender/v1/models", headers=bearer(reader))).status_code == 200
    refused = await client.post("/recommender/v1/models/train", headers=bearer(reader))
    assert refused.status_code == 403
    assert refused.json()["error"] == "Forbidden"


async def test_a_small_brand_fuses_ease_and_the_content_model(
    session: AsyncSession, world: World
) -> None:
    trained = await service.train_brand(session, world.brand_id, NOW)

    assert trained is not None
    assert trained.version.metrics["model"] == "fusion"
    assert trained.version.metrics["ndcg@100"] > 0.1


async def test_members_in_an_arm_of_another_version_are_folded_in_by_that_version(
    session: AsyncSession, world: World
) -> None:
    first = await service.train_brand(session, world.brand_id, NOW)
    second = await service.train_brand(session, world.brand_id, NOW)
    assert first is not None
    assert second is not None
    arms = [
        {
            "name": "previous",
            "share": 0.5,
            "policy": "version",
            "version_id": str(first.version.id),
        },
        {"name": "holdout", "share": 0.2, "policy": "popular", "version_id": None},
    ]
    experiment = Experiment(
        id=new_id(), brand_id=world.brand_id, name="v1 vs v2", arms=arms, started_at=NOW
    )
    session.add(experiment)
    await session.flush()

    await service.fold_in(session, NOW)

    rows = await own_lists(session, world, "perks")
    assert len(rows) == len(world.taste)
    expected = {
        "previous": first.version.id,
        "holdout": second.version.id,
        "serving": second.version.id,
    }
    seen = set()
    for row in rows:
        arm = assign_arm(experiment.id, arms_of(arms), row.member_id).name
        assert (row.arm, row.version_id) == (arm, expected[arm])
        seen.add(arm)
    assert seen == {"previous", "holdout", "serving"}


async def test_young_brands_are_retrained_as_their_data_grows_and_only_then(
    session: AsyncSession, world: World
) -> None:
    async def versions() -> list[tuple[uuid.UUID, int]]:
        rows = await session.execute(
            select(ModelVersion.brand_id, ModelVersion.number).order_by(ModelVersion.number)
        )
        return [(brand_id, number) for brand_id, number in rows]

    assert await until_done(tasks.train_young_brands, session, now=NOW) == [1, 0]
    assert await versions() == [(world.brand_id, 1)]
    # Nothing new since: not due.
    assert await until_done(tasks.train_young_brands, session, now=NOW) == [0]

    member_id = next(iter(world.taste))
    await interact(session, world, member_id, world.of_kind(ItemKind.POST)[:1], NOW)
    assert await until_done(tasks.train_young_brands, session, now=NOW) == [1, 0]
    assert await versions() == [(world.brand_id, 1), (world.brand_id, 2)]


async def test_the_nightly_training_takes_one_brand_a_run_each_queueing_the_next(
    session: AsyncSession,
) -> None:
    first = await build_world(session, members=30, seed=1, now=NOW)
    second = await build_world(session, members=30, seed=2, now=NOW)
    ordered = sorted((first.brand_id, second.brand_id))
    # Each run trains one brand in its own transaction; the first names where the next starts.
    runs = await until_done(tasks.train, session, now=NOW)
    assert runs == [1, 1]
    versions = (
        await session.execute(
            select(ModelVersion.brand_id, func.count()).group_by(ModelVersion.brand_id)
        )
    ).all()
    assert sorted(versions) == [(ordered[0], 1), (ordered[1], 1)]
    first_run = await tasks.train(session, now=NOW)
    assert isinstance(first_run, Continue)
    assert first_run.arguments == {"now": NOW, "after": str(ordered[0])}


async def test_young_brands_are_trained_one_a_run_until_none_is_left(
    session: AsyncSession,
) -> None:
    await build_world(session, members=30, seed=3, now=NOW)
    await build_world(session, members=30, seed=4, now=NOW)
    # Each young brand in a run of its own; the last run finds none left.
    assert await until_done(tasks.train_young_brands, session, now=NOW) == [1, 1, 0]
    assert await until_done(tasks.train_young_brands, session, now=NOW) == [0]
