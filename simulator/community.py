"""The world's community, loaded through the community's bulk history path (`load_posts`).

`world.community` plans who posts when, on what category, and who reacts and comments; this
module adds what a loader needs besides:

- **bodies**: short templated texts from the post's category, deterministic. A category's posts
  in time order walk through every combination of the templates before one repeats (thousands
  per category, far more than a day's posts even at millions of members), so the first pass
  never takes one for duplicate spam; comments are shorter than the duplicate rule's minimum;
- **tags**: the post's category;
- **follows** (random stream 100): each reader follows a few posters (Poisson, mean
  `FOLLOWS_PER_READER`), each picked through a category the reader likes, weighted by how much
  the poster writes about it; so daily posters draw most followers. A follow happens at a
  uniform time after both have joined;
- **keys**: `s<seed>-p<index>` per post (the post's index in the plan), unique per brand.

**Chunks.** The posts in time order, `chunk_posts` a chunk, each with the reactions and comments
to its posts and the follows made between its first post and the next chunk's (the first chunk
also takes earlier ones, the last later ones). Each chunk is one transaction. A chunk committed
before a crash is recognised by its last post (`posts_loaded`) and skipped when loading again,
so nothing is loaded twice. Chunks are independent (`load_community_chunk`): worker processes
may load them side by side; the events' ids are of their moments, so the relay hands them to the
consumers in time order once the chunks are in.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.history.schemas import (
    HistoricComment,
    HistoricContent,
    HistoricFollow,
    HistoricPost,
    HistoricReaction,
)
from services.community.history.service import load_posts, posts_loaded
from services.community.moderation.schemas import DEFAULT_SETTINGS
from services.demo.members import CATEGORIES
from services.kernel.db import Database
from services.kernel.runtime import Runtime
from services.members import service as members_service
from simulator import world
from simulator.chunks import WorldView
from simulator.workers import load_chunks

CHUNK_POSTS = 5_000
FOLLOWS_PER_READER = 3.0
# Random streams (world.py uses 0-99, the happenings 200-299).
_FOLLOWS = 100

ProgressCallback = Callable[[int, int], None]  # (posts done, posts in all)

# --- Bodies -----------------------------------------------------------------------------------

_OPENERS = {
    "skincare": (
        "Week three of my new skincare routine",
        "Finally found a moisturiser that works for me",
        "My evening skincare steps, for anyone who asked",
        "Swapped my cleanser last month",
        "Honest skincare update",
        "A skincare tip I wish I had known sooner",
    ),
    "makeup": (
        "Tried a new foundation this week",
        "My five-minute makeup for busy mornings",
        "Testing a long-wear lipstick",
        "Recreated a makeup look from the autumn campaign",
        "Honest review of the new palette",
        "Makeup question for the group",
    ),
    "fragrance": (
        "Found my signature scent at last",
        "Layering two fragrances this season",
        "A fragrance for warm evenings",
        "Sampled the new eau de parfum",
        "My fragrance wardrobe for the colder months",
        "Trying a woody fragrance for a change",
    ),
    "hair": (
        "My wash-day routine for curly hair",
        "Trying a hair mask every Sunday",
        "Heat protection that actually works",
        "Hair update after cutting out sulphates",
        "Styling my hair without a dryer",
        "Looking after coloured hair",
    ),
    "bath": (
        "My slow Sunday bath ritual",
        "Switched to a body oil after the shower",
        "A bath soak that helps me sleep",
        "Trying a new body scrub",
        "Shower routine for dry winter skin",
        "Hand cream that survives hand washing",
    ),
    "tools": (
        "Finally bought a proper brush set",
        "A sponge that blends better than my fingers",
        "Cleaning my makeup brushes every week",
        "Trying a facial roller each morning",
        "The eyelash curler I keep coming back to",
        "Travel kit of tools I actually use",
    ),
}
_DETAILS = {
    "skincare": (
        "with a vitamin C serum in the morning",
        "with a gentle exfoliant twice a week",
        "with SPF every single day",
        "with a richer night cream",
        "with a hydrating toner",
        "with fewer steps than before",
    ),
    "makeup": (
        "with a dewy finish",
        "with a matte setting spray",
        "with a bold red lip",
        "with soft brown liner",
        "with a cream blush",
        "with just concealer and mascara",
    ),
    "fragrance": (
        "with notes of bergamot",
        "with a hint of vanilla",
        "with a fresh citrus opening",
        "with a musky base",
        "with a floral heart",
        "with a spicy finish",
    ),
    "hair": (
        "with a leave-in conditioner",
        "with a silk pillowcase",
        "with a lightweight oil on the ends",
        "with a clarifying shampoo once a week",
        "with overnight braids",
        "with a diffuser on low heat",
    ),
    "bath": (
        "with magnesium salts",
        "with a lavender candle",
        "with a shea body butter after",
        "with an oat-based wash",
        "with lukewarm water only",
        "with a dry brush first",
    ),
    "tools": (
        "with a gentle brush shampoo",
        "with a damp sponge",
        "with a cool jade roller",
        "with a heated curler",
        "with a slanted brush for brows",
        "with a tidy pouch for everything",
    ),
}
_VERDICTS = (
    "Really happy with the results so far.",
    "Not convinced yet, I will keep testing.",
    "Noticeable difference after two weeks.",
    "It took a while but now I love it.",
    "Good value for what you get.",
    "My skin and my wallet both approve.",
    "Mixed feelings so far, but I can see the potential.",
    "Would buy it again without thinking twice.",
    "It works, but I miss my old favourite.",
    "Better than I expected.",
)
_CLOSERS = (
    "What do you use?",
    "Any tips welcome!",
    "Happy to answer questions.",
    "Has anyone else tried this?",
    "Let me know your thoughts.",
    "More updates soon.",
    "Recommendations welcome.",
    "Thanks for reading!",
)
_COMBINATIONS = 6 * 6 * len(_VERDICTS) * len(_CLOSERS)
# Coprime with _COMBINATIONS: consecutive ordinals land on combinations far apart.
_STRIDE = 1_009
assert all(len(o) == 6 for o in _OPENERS.values())
assert all(len(d) == 6 for d in _DETAILS.values())
assert np.gcd(_STRIDE, _COMBINATIONS) == 1

# Shorter than the duplicate rule's minimum (20 by default): never taken for duplicate spam.
_COMMENTS = (
    "Love this!",
    "So helpful, thanks",
    "Need to try this",
    "Same here!",
    "Great tip!",
    "Adding to my list",
    "Obsessed!",
    "Looks amazing",
    "Thanks for sharing",
    "Agreed!",
    "Saving this",
)
assert all(len(c) < DEFAULT_SETTINGS.duplicate_min_length for c in _COMMENTS)


def post_body(category: int, ordinal: int) -> str:
    """The text of the `ordinal`-th post (0-based, in time order) on a category."""
    name = CATEGORIES[category]
    m = (ordinal * _STRIDE + category) % _COMBINATIONS
    m, opener = divmod(m, 6)
    m, detail = divmod(m, 6)
    closer, verdict = divmod(m, len(_VERDICTS))
    return (
        f"{_OPENERS[name][opener]} {_DETAILS[name][detail]}. {_VERDICTS[verdict]} "
        f"{_CLOSERS[closer]}"
    )


def comment_body(index: int) -> str:
    return _COMMENTS[index * 7 % len(_COMMENTS)]


def post_key(seed: int, index: int) -> str:
    return f"s{seed}-p{index:08d}"


# --- Follows ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FollowPlan:
    """Who follows whom from when (member indexes, seconds since the start), by time."""

    follower: world.I64
    followee: world.I64
    at: world.I64

    def __len__(self) -> int:
        return len(self.follower)


def follows(params: world.WorldParams, members: world.Members) -> FollowPlan:
    rng = world._rng(params, _FOLLOWS)
    posters = np.flatnonzero(members.posts_per_day > 0)
    readers = np.flatnonzero(members.reader)
    if len(posters) == 0 or len(readers) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return FollowPlan(empty, empty, empty)
    follower = np.repeat(readers, rng.poisson(FOLLOWS_PER_READER, len(readers)))
    category = world._pick_categories(rng, members.tastes[follower])
    followee = np.empty(len(follower), dtype=np.int64)
    for c in range(len(CATEGORIES)):
        rows = category == c
        cdf = np.cumsum(members.tastes[posters, c] * members.posts_per_day[posters])
        u = rng.random(int(rows.sum())) * cdf[-1]
        followee[rows] = posters[np.minimum(np.searchsorted(cdf, u), len(posters) - 1)]
    since = np.maximum(members.join_day[follower], members.join_day[followee]).astype(np.float64)
    days = since + rng.random(len(follower)) * (params.days - since)
    at = np.minimum(
        (days * world.SECONDS_PER_DAY).astype(np.int64), params.days * world.SECONDS_PER_DAY - 1
    )
    keep = follower != followee
    follower, followee, at = follower[keep], followee[keep], at[keep]
    _, first = np.unique(follower * params.members + followee, return_index=True)
    first.sort()
    follower, followee, at = follower[first], followee[first], at[first]
    order = np.argsort(at, kind="stable")
    return FollowPlan(follower[order].astype(np.int64), followee[order].astype(np.int64), at[order])


# --- Chunks -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Chunk:
    """Posts `low` to `high` (exclusive) of the plan, the responses to them and some follows
    (indexes into the plan's and the follow plan's arrays)."""

    index: int
    low: int
    high: int
    reactions: world.I64
    comments: world.I64
    follows: world.I64


def chunks(
    plan: world.CommunityPlan, follow_plan: FollowPlan, chunk_posts: int = CHUNK_POSTS
) -> list[Chunk]:
    posts = len(plan.post_author)
    if posts == 0:
        return []
    lows = np.arange(0, posts, chunk_posts)

    def split(chunk_of: world.I64) -> list[world.I64]:
        order = np.argsort(chunk_of, kind="stable").astype(np.int64)
        bounds = np.searchsorted(chunk_of[order], np.arange(len(lows) + 1))
        return [order[bounds[k] : bounds[k + 1]] for k in range(len(lows))]

    reactions = split(plan.reaction_post // chunk_posts)
    comments = split(plan.comment_post // chunk_posts)
    # A follow goes with the chunk whose posts began before it (the first chunk: all earlier).
    starts = plan.post_at[lows]
    follow_chunk = np.maximum(np.searchsorted(starts, follow_plan.at, side="right") - 1, 0)
    follow_rows = split(follow_chunk.astype(np.int64))
    return [
        Chunk(k, low, min(low + chunk_posts, posts), reactions[k], comments[k], follow_rows[k])
        for k, low in enumerate(lows.tolist())
    ]


def _category_ordinals(category: world.I8) -> world.I64:
    """Each post's rank among the posts on its category, in time order."""
    ordinal = np.zeros(len(category), dtype=np.int64)
    for c in range(len(CATEGORIES)):
        rows = np.flatnonzero(category == c)
        ordinal[rows] = np.arange(len(rows))
    return ordinal


@dataclass(frozen=True, slots=True)
class CommunityWorld:
    """The world's community as the loader needs it, made once."""

    params: world.WorldParams
    plan: world.CommunityPlan
    follows: FollowPlan
    ordinals: world.I64
    _parts: dict[int, list[Chunk]] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, params: world.WorldParams, members: world.Members) -> CommunityWorld:
        plan = world.community(params, members)
        return cls(params, plan, follows(params, members), _category_ordinals(plan.post_category))

    def parts(self, chunk_posts: int = CHUNK_POSTS) -> list[Chunk]:
        """The chunks of `chunk_posts` posts (`chunks`), made once."""
        if chunk_posts not in self._parts:
            self._parts[chunk_posts] = chunks(self.plan, self.follows, chunk_posts)
        return self._parts[chunk_posts]

    def members_of(self, chunk: Chunk) -> world.I64:
        """The member indexes a chunk names."""
        plan, follow_plan = self.plan, self.follows
        return np.unique(
            np.concatenate(
                [
                    plan.post_author[chunk.low : chunk.high],
                    plan.reaction_member[chunk.reactions],
                    plan.comment_member[chunk.comments],
                    follow_plan.follower[chunk.follows],
                    follow_plan.followee[chunk.follows],
                ]
            )
        )

    def content(self, chunk: Chunk, ids: dict[int, uuid.UUID]) -> HistoricContent:
        """The chunk for `load_posts`; `ids` maps member indexes to member ids."""
        params, plan, follow_plan = self.params, self.plan, self.follows
        start, seed = params.start_at, params.seed
        posts = [
            HistoricPost(
                key=post_key(seed, i),
                author_id=ids[author],
                body=post_body(category, ordinal),
                created_at=start + timedelta(seconds=seconds),
                tags=(CATEGORIES[category],),
            )
            for i, author, seconds, category, ordinal in zip(
                range(chunk.low, chunk.high),
                plan.post_author[chunk.low : chunk.high].tolist(),
                plan.post_at[chunk.low : chunk.high].tolist(),
                plan.post_category[chunk.low : chunk.high].tolist(),
                self.ordinals[chunk.low : chunk.high].tolist(),
                strict=True,
            )
        ]
        comments = [
            HistoricComment(
                post=post_key(seed, post),
                author_id=ids[member],
                body=comment_body(k),
                created_at=start + timedelta(seconds=seconds),
            )
            for k, post, member, seconds in zip(
                chunk.comments.tolist(),
                plan.comment_post[chunk.comments].tolist(),
                plan.comment_member[chunk.comments].tolist(),
                plan.comment_at[chunk.comments].tolist(),
                strict=True,
            )
        ]
        reactions = [
            HistoricReaction(
                post=post_key(seed, post),
                member_id=ids[member],
                kind=world.REACTION_KINDS[kind].value,
                created_at=start + timedelta(seconds=seconds),
            )
            for post, member, kind, seconds in zip(
                plan.reaction_post[chunk.reactions].tolist(),
                plan.reaction_member[chunk.reactions].tolist(),
                plan.reaction_kind[chunk.reactions].tolist(),
                plan.reaction_at[chunk.reactions].tolist(),
                strict=True,
            )
        ]
        follows_ = [
            HistoricFollow(ids[a], ids[b], start + timedelta(seconds=seconds))
            for a, b, seconds in zip(
                follow_plan.follower[chunk.follows].tolist(),
                follow_plan.followee[chunk.follows].tolist(),
                follow_plan.at[chunk.follows].tolist(),
                strict=True,
            )
        ]
        return HistoricContent(posts, comments, reactions, follows_)


# --- The load ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CommunityCounts:
    posts: int
    comments: int
    reactions: int
    follows: int
    events: int  # written by this load (a skipped chunk's are not counted again)
    held: int  # content the first pass held (none, for the world's own texts)
    chunks: int
    skipped: int  # chunks found loaded already

    def __add__(self, other: CommunityCounts) -> CommunityCounts:
        return CommunityCounts(
            *(getattr(self, f) + getattr(other, f) for f in self.__dataclass_fields__)
        )


NO_COUNTS = CommunityCounts(0, 0, 0, 0, 0, 0, 0, 0)


async def _member_ids(
    session: AsyncSession, params: world.WorldParams, brand_id: uuid.UUID, indexes: Sequence[int]
) -> dict[int, uuid.UUID]:
    external = [world.external_id(params.seed, i) for i in indexes]
    found = await members_service.member_ids(session, brand_id, external)
    missing = [e for e in external if e not in found]
    if missing:
        raise RuntimeError(
            f"{len(missing)} of the world's members are not in the brand (e.g. {missing[0]}): "
            "load the members before the community"
        )
    return {i: found[e] for i, e in zip(indexes, external, strict=True)}


async def load_community_chunk(
    database: Database, community: CommunityWorld, brand_id: uuid.UUID, chunk: Chunk
) -> CommunityCounts:
    """One chunk in one transaction, or nothing if it was loaded before. Chunks do not depend on
    each other (each holds the responses to its own posts; the world's texts are never
    duplicates; every follow is in one chunk), so they may load side by side; the events'
    ids are of their moments, so the consumers still see them in time order once all are in."""
    async with database.unit_of_work() as session:
        indexes = community.members_of(chunk).tolist()
        ids = await _member_ids(session, community.params, brand_id, indexes)
        content = community.content(chunk, ids)
        sizes = (len(content.posts), len(content.comments), len(content.reactions))
        # A chunk commits whole or not at all: its last post tells whether it did.
        if await posts_loaded(session, brand_id, content.posts[-1:]):
            return CommunityCounts(*sizes, len(content.follows), 0, 0, 1, 1)
        report = await load_posts(session, brand_id, content)
    return CommunityCounts(*sizes, len(content.follows), report.events, report.held, 1, 0)


def community_of(view: WorldView) -> CommunityWorld:
    return CommunityWorld.of(view.params, view.members)


async def _load_part(
    database: Database, view: WorldView, brand_id: uuid.UUID, part: int, args: tuple[Any, ...]
) -> dict[str, int]:
    """`load_community_chunk` as a worker process runs it: the part-th chunk of `args[0]` posts."""
    (chunk_posts,) = args
    community = view.plan(community_of)
    counts = await load_community_chunk(
        database, community, brand_id, community.parts(chunk_posts)[part]
    )
    return asdict(counts)


async def load_community(
    runtime: Runtime,
    params: world.WorldParams,
    members: world.Members,
    brand_id: uuid.UUID,
    progress_callback: ProgressCallback | None = None,
    *,
    chunk_posts: int | None = None,  # default: CHUNK_POSTS
    workers: int = 1,
) -> CommunityCounts:
    """Loads the world's posts, comments, reactions and follows into the brand (whose members
    must be loaded and known to the community), chunk by chunk, each in its own transaction, in
    `workers` processes side by side (in time order with one); chunks loaded before are
    skipped. The events are left in the community's outbox for the consumers (drain them, or let
    the relay and workers deliver them)."""
    chunk_posts = chunk_posts or CHUNK_POSTS
    view = WorldView.of(params, members)
    community = view.plan(community_of)
    parts = community.parts(chunk_posts)
    total = len(community.plan.post_author)
    counts = NO_COUNTS
    async for _, loaded in load_chunks(
        _load_part,
        runtime.database,
        view,
        brand_id,
        range(len(parts)),
        workers=workers,
        args=(chunk_posts,),
    ):
        counts += CommunityCounts(**loaded)
        if progress_callback is not None:
            progress_callback(counts.posts, total)
    return counts
