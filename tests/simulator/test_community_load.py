"""`load_community` into a small simulated brand: the same seed gives the same community, the
community has the world's shape (a few daily posters write most posts, responses and follows come
from readers who like the post's or poster's category), and a rerun skips the chunks loaded."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from redis.asyncio import Redis
from sqlalchemy import select

from services.community.models import Comment, CommunityMember, Post
from services.community.posts.models import Reaction
from services.community.social.models import Follow
from services.demo.members import CATEGORIES
from services.kernel.db import Database
from services.kernel.runtime import Runtime
from services.kernel.settings import Settings
from services.members import service as members_service
from simulator import world
from simulator.community import (
    CommunityCounts,
    CommunityWorld,
    FollowPlan,
    chunks,
    load_community,
)
from simulator.run import STATE_FILE, Request, Summary, simulate
from simulator.truth import read_truth
from tests.conftest import make_runtime, purge_brand

SEED = 23
CHUNK_POSTS = 10  # several chunks, so resuming is tested


@pytest.fixture
async def committed(
    base_settings: Settings, engine_database: Database, redis: Redis
) -> AsyncIterator[tuple[Runtime, list[uuid.UUID]]]:
    """A runtime whose work commits, and the brands to purge at the end."""
    brands: list[uuid.UUID] = []
    yield make_runtime(base_settings, engine_database, redis), brands
    for brand_id in brands:
        await purge_brand(engine_database, brand_id)


def _request(out: Path, members: int = 300, days: int = 40) -> Request:
    name = f"Community {uuid.uuid4().hex[:8]}"
    return Request(members=members, days=days, seed=SEED, brand=name, out=out)


async def _brand(
    runtime: Runtime, brands: list[uuid.UUID], request: Request
) -> tuple[Summary, world.WorldParams, world.Members]:
    """A simulated brand: members, purchases and the community (`load_community`), settled."""
    summary = await simulate(runtime, request)
    brands.append(summary.brand_id)
    params = read_truth(request.out).params
    return summary, params, world.make_members(params)


async def _content(runtime: Runtime, brand_id: uuid.UUID, params: world.WorldParams) -> Any:
    """The brand's community, members as world indexes, posts (and so responses) in time order."""
    async with runtime.database.unit_of_work() as session:
        ids = await members_service.member_ids(
            session, brand_id, [world.external_id(params.seed, i) for i in range(params.members)]
        )
        index = {member_id: int(e.split("-")[1]) for e, member_id in ids.items()}
        # In time order (ids differ between brands, and sort by time but not within a second).
        posts = (
            await session.scalars(
                # The world's posts (prompt answers are the happenings', not the plan's).
                select(Post)
                .where(Post.brand_id == brand_id, Post.prompt_id.is_(None))
                .order_by(Post.created_at, Post.body)
            )
        ).all()
        by_id = [p.created_at for p in sorted(posts, key=lambda p: p.id)]
        number = {p.id: n for n, p in enumerate(posts)}
        comments = (
            await session.scalars(
                select(Comment)
                .where(Comment.brand_id == brand_id)
                .order_by(Comment.created_at, Comment.author_id)
            )
        ).all()
        reactions = (
            await session.scalars(
                select(Reaction)
                .where(Reaction.brand_id == brand_id)
                .order_by(Reaction.created_at, Reaction.member_id, Reaction.kind)
            )
        ).all()
        answer_authors = (
            await session.scalars(
                select(Post.author_id).where(Post.brand_id == brand_id, Post.prompt_id.is_not(None))
            )
        ).all()
        follows = (
            await session.scalars(
                select(Follow)
                .where(Follow.brand_id == brand_id)
                .order_by(Follow.created_at, Follow.follower_id)
            )
        ).all()
        reputation = dict(
            (
                await session.execute(
                    select(CommunityMember.member_id, CommunityMember.reputation).where(
                        CommunityMember.brand_id == brand_id
                    )
                )
            ).all()
        )
    return {
        "times_by_id": by_id,
        "answer_authors": [index[a] for a in answer_authors],
        "posts": [
            (
                index[p.author_id],
                p.body,
                p.tags,
                p.status,
                p.comment_count,
                p.reaction_count,
                p.created_at,
            )
            for p in posts
        ],
        "comments": [
            (number[c.post_id], index[c.author_id], c.body, c.status, c.created_at)
            for c in comments
        ],
        "reactions": [
            (number[r.post_id], index[r.member_id], r.kind, r.created_at) for r in reactions
        ],
        "follows": [(index[f.follower_id], index[f.followee_id], f.created_at) for f in follows],
        "reputation": {index[m]: r for m, r in reputation.items() if m in index},
    }


async def test_two_loads_of_one_seed_are_identical_and_shaped_like_the_world(
    committed: tuple[Runtime, list[uuid.UUID]], tmp_path: Path
) -> None:
    runtime, brands = committed
    loaded = []
    for name in ("a", "b"):
        request = _request(tmp_path / name, members=200, days=25)
        summary, params, members = await _brand(runtime, brands, request)
        loaded.append((summary.content, await _content(runtime, summary.brand_id, params)))
    (counts, content), (again, other) = loaded
    assert counts == again
    for part in ("posts", "comments", "reactions", "follows", "reputation"):
        assert content[part] == other[part], part

    community = CommunityWorld.of(params, members)
    plan = community.plan
    assert counts["posts"] == len(content["posts"]) == len(plan.post_author) > 20
    assert counts["comments"] == len(content["comments"]) == len(plan.comment_post) > 0
    assert counts["reactions"] == len(content["reactions"]) == len(plan.reaction_post)
    assert counts["follows"] == len(content["follows"]) == len(community.follows) > 0
    assert {p[3] for p in content["posts"]} == {"published"}  # none held
    # Counters match the responses.
    assert sum(p[4] for p in content["posts"]) == counts["comments"]
    assert sum(p[5] for p in content["posts"]) == counts["reactions"]

    # A few daily posters write most posts.
    daily = set(np.flatnonzero(members.posts_per_day > 0.2).tolist())
    assert 1 <= len(daily) <= 3
    by_daily = sum(1 for p in content["posts"] if p[0] in daily)
    assert by_daily > 0.7 * counts["posts"]
    # Responses come from readers whose tastes favour the post's category.
    readers = np.flatnonzero(members.reader)
    favour = []
    for post, member, *_ in content["reactions"] + content["comments"]:
        category = CATEGORIES.index(content["posts"][post][2][0])
        assert members.reader[member]
        favour.append(members.tastes[member, category] / members.tastes[readers, category].mean())
    assert np.mean(favour) > 1.3
    # Daily posters draw most followers.
    followers: dict[int, int] = {}
    for _, followee, _ in content["follows"]:
        followers[followee] = followers.get(followee, 0) + 1
    to_daily = sum(n for member, n in followers.items() if member in daily)
    assert to_daily > 0.4 * counts["follows"]
    # Feeds page by id: ids sort as the posts were written.
    assert content["times_by_id"] == sorted(content["times_by_id"])


async def test_a_rerun_skips_the_chunks_loaded_and_the_consumers_act(
    committed: tuple[Runtime, list[uuid.UUID]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime, brands = committed
    request = _request(tmp_path / "resume", members=200, days=30)
    runs: list[tuple[CommunityCounts, list[int]]] = []
    crashed: list[bool] = []

    class Crash(Exception):
        pass

    async def load_in_small_chunks(
        runtime: Runtime,
        params: world.WorldParams,
        members: world.Members,
        brand_id: uuid.UUID,
        progress: Callable[[int, int], None] | None = None,
        *,
        workers: int = 1,
    ) -> CommunityCounts:
        """The simulation's community phase, in chunks of 10 posts, crashing after the second
        chunk the first time."""
        parts = chunks(*_plans(params, members), CHUNK_POSTS)
        assert len(parts) >= 3
        seen: list[int] = []

        def advance(done: int, total: int) -> None:
            seen.append(done)
            if not crashed and done == parts[1].high:
                crashed.append(True)
                raise Crash

        counts = await load_community(
            runtime, params, members, brand_id, advance, chunk_posts=CHUNK_POSTS, workers=workers
        )
        runs.append((counts, seen))
        return counts

    monkeypatch.setattr("simulator.run.load_community", load_in_small_chunks)
    with pytest.raises(Crash):
        await simulate(runtime, request)
    state = json.loads((request.out / STATE_FILE).read_text())
    assert "community" not in state["phases"]
    brand_id = uuid.UUID(state["brand_id"])
    brands.append(brand_id)
    params = read_truth(request.out).params
    members = world.make_members(params)
    community = CommunityWorld.of(params, members)
    parts = chunks(community.plan, community.follows, CHUNK_POSTS)
    partial = await _content(runtime, brand_id, params)
    assert len(partial["posts"]) == parts[1].high

    summary = await simulate(runtime, request)  # resumes with the community phase
    assert summary.complete
    [(counts, seen)] = runs
    assert counts.skipped == 2
    assert counts.chunks == len(parts)
    assert seen == [part.high for part in parts]
    full = await _content(runtime, brand_id, params)
    assert len(full["posts"]) == counts.posts == len(community.plan.post_author)
    assert len(full["reactions"]) == counts.reactions == len(community.plan.reaction_post)
    assert len(full["comments"]) == counts.comments
    assert len(full["follows"]) == counts.follows == len(community.follows)

    # The simulation settled the events, so the consumers acted: reputation is 10 a post (prompt
    # answers included), 2 a comment and 1 a reaction received (reputation's table).
    expected = dict.fromkeys(range(params.members), 0)
    for author, *_ in full["posts"]:
        expected[author] += 10
    for author in full["answer_authors"]:  # prompt answers are posts too
        expected[author] += 10
    for _, author, *_ in full["comments"]:
        expected[author] += 2
    for post, *_ in full["reactions"]:
        expected[full["posts"][post][0]] += 1
    assert full["reputation"] == expected


def _plans(
    params: world.WorldParams, members: world.Members
) -> tuple[world.CommunityPlan, FollowPlan]:
    community = CommunityWorld.of(params, members)
    return community.plan, community.follows
