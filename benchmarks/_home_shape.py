"""The home screen's shape answered from memory: a strawberry schema with the fields the
home-screen query asks for, resolved from objects built once, with no service, no database and
no exposure logged behind it.

`benchmarks/graphql.py` measures it beside the bare `{ hello }` schema and the real home screen:
it is the floor of what any backend answering that query through strawberry on this server can
cost, so the target's distance from it is the part no change behind the gateway can close.
"""

from __future__ import annotations

from functools import partial

import strawberry
from strawberry.extensions import ParserCache, ValidationCache

# As the demo brand's home screen answers on average: 10 perks, 4 prompts, 10 posts.
PERKS, PROMPTS, POSTS = 10, 4, 10
BODY = (
    "Tried the new serum for a week now and my skin has never felt this soft, "
    "even after long flights."
)


@strawberry.type
class Tier:
    name: str


@strawberry.type
class NextTier:
    tier: Tier
    remaining_minor: int


@strawberry.type
class TierStatus:
    tier: Tier
    spend_minor: int
    next_tier: NextTier | None


@strawberry.type
class Expiring:
    points: int


@strawberry.type
class Points:
    available: int
    pending: int
    expiring_soon: list[Expiring]


@strawberry.type
class Perk:
    id: strawberry.ID
    name: str
    cost_points: int
    redeemable: bool


@strawberry.type
class Prompt:
    id: strawberry.ID
    title: str


@strawberry.type
class Author:
    display_name: str


@strawberry.type
class Post:
    id: strawberry.ID
    body: str
    author: Author


@strawberry.type
class RecommendedPerk:
    reason: str
    exposure_id: strawberry.ID
    item: Perk


@strawberry.type
class RecommendedPrompt:
    reason: str
    exposure_id: strawberry.ID
    item: Prompt


@strawberry.type
class RecommendedPost:
    reason: str
    exposure_id: strawberry.ID
    item: Post


def _id(n: int) -> strawberry.ID:
    return strawberry.ID(f"01a20f0d-3f26-742e-a559-{n:012d}")


_PERKS = [
    RecommendedPerk(
        reason="Because you loved hydrating serums",
        exposure_id=_id(1),
        item=Perk(id=_id(100 + n), name=f"Deluxe sample {n}", cost_points=500, redeemable=True),
    )
    for n in range(PERKS)
]
_PROMPTS = [
    RecommendedPrompt(
        reason="Popular in your tier",
        exposure_id=_id(2),
        item=Prompt(id=_id(200 + n), title=f"Show us your evening routine {n}"),
    )
    for n in range(PROMPTS)
]
_POSTS = [
    RecommendedPost(
        reason="From members you follow",
        exposure_id=_id(3),
        item=Post(id=_id(300 + n), body=BODY, author=Author(display_name=f"Member {n}")),
    )
    for n in range(POSTS)
]


@strawberry.type
class Me:
    display_name: str
    tier_status: TierStatus
    points: Points

    @strawberry.field
    async def recommended_perks(self, first: int) -> list[RecommendedPerk]:
        return _PERKS[:first]

    @strawberry.field
    async def recommended_prompts(self, first: int) -> list[RecommendedPrompt]:
        return _PROMPTS[:first]

    @strawberry.field
    async def for_you(self, first: int) -> list[RecommendedPost]:
        return _POSTS[:first]


_ME = Me(
    display_name="Member 0",
    tier_status=TierStatus(
        tier=Tier(name="VIB"),
        spend_minor=48_000,
        next_tier=NextTier(tier=Tier(name="Rouge"), remaining_minor=52_000),
    ),
    points=Points(available=1_250, pending=300, expiring_soon=[Expiring(points=200)]),
)


@strawberry.type
class HomeShapeQuery:
    @strawberry.field
    async def me(self) -> Me:
        return _ME


def home_shape_schema() -> strawberry.Schema:
    return strawberry.Schema(
        query=HomeShapeQuery,
        extensions=[partial(ParserCache, maxsize=1024), partial(ValidationCache, maxsize=1024)],
    )
