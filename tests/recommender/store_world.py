"""A small brand written straight into the recommender's store: members who each favour one
category, a catalog of perks, posts, prompts and products in four categories, and interactions
that follow the tastes. For training and fold-in tests (the intake has tests of its own)."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from recommender.store.models import (
    Interaction,
    InteractionKind,
    Item,
    ItemKind,
    MemberFacts,
    item_id_of,
)

CATEGORIES = ("skincare", "makeup", "fragrance", "hair")
KIND_OF = {
    ItemKind.PERK: InteractionKind.REDEMPTION,
    ItemKind.POST: InteractionKind.REACTION,
    ItemKind.PROMPT: InteractionKind.ANSWER,
    ItemKind.PRODUCT: InteractionKind.PURCHASE,
}
WEIGHT = {
    InteractionKind.REDEMPTION: 3.0,
    InteractionKind.REACTION: 1.0,
    InteractionKind.ANSWER: 2.0,
    InteractionKind.PURCHASE: 1.0,
}


@dataclass
class World:
    brand_id: uuid.UUID
    now: datetime
    taste: dict[uuid.UUID, str] = field(default_factory=dict)  # member -> favourite category
    items: dict[str, Item] = field(default_factory=dict)
    tier_ids: dict[str, uuid.UUID] = field(default_factory=dict)

    def category(self, item_id: str) -> str | None:
        return self.items[item_id].category

    def of_kind(self, kind: ItemKind, category: str | None = None) -> list[str]:
        return [
            i.item_id
            for i in self.items.values()
            if i.kind == kind and (category is None or i.category == category)
        ]


def _uuid(rng: random.Random) -> uuid.UUID:
    """Ids from the world's own generator: the same seed gives the same world, so the same
    members are held out for evaluation and training comes out the same every run."""
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _item(
    world: World, kind: ItemKind, category: str, n: int, created: datetime, rng: random.Random
) -> Item:
    key = f"{category}-{n}" if kind == ItemKind.PRODUCT else str(_uuid(rng))
    title = f"{category.title()} {kind.value} {n}"
    return Item(
        brand_id=world.brand_id,
        item_id=item_id_of(kind, key),
        kind=kind,
        title=title,
        content=f"{title} all about {category}",
        category=category,
        tags=[category],
        cost_points=100 * (n + 1) if kind == ItemKind.PERK else None,
        tier_ids=[],
        active=True,
        created_at=created,
        updated_at=created,
    )


async def build_world(
    session: AsyncSession,
    *,
    members: int = 200,
    per_member: tuple[int, int] = (8, 14),
    seed: int = 7,
    now: datetime,
) -> World:
    rng = random.Random(seed)
    world = World(brand_id=_uuid(rng), now=now)
    created = now - timedelta(days=120)
    for category in CATEGORIES:
        for kind, count in (
            (ItemKind.PERK, 6),
            (ItemKind.POST, 12),
            (ItemKind.PROMPT, 3),
            (ItemKind.PRODUCT, 8),
        ):
            for n in range(count):
                item = _item(world, kind, category, n, created, rng)
                world.items[item.item_id] = item
    world.tier_ids = {"Insider": _uuid(rng), "VIB": _uuid(rng)}
    facts, interactions = [], []
    learned = list(world.items.values())
    for m in range(members):
        member_id = _uuid(rng)
        favourite = CATEGORIES[m % len(CATEGORIES)]
        world.taste[member_id] = favourite
        tier = "VIB" if m % 5 == 0 else "Insider"
        facts.append(
            {
                "member_id": member_id,
                "brand_id": world.brand_id,
                "tier_id": world.tier_ids[tier],
                "tier_name": tier,
                "points_available": 500,
                "interests": [],
                "personalised": True,
                "erased": False,
                "joined_at": created,
            }
        )
        liked = [i for i in learned if i.category == favourite]
        for _ in range(rng.randint(*per_member)):
            pool = liked if rng.random() < 0.9 else learned
            item = rng.choice(pool)
            kind = KIND_OF[item.kind]
            interactions.append(
                {
                    "brand_id": world.brand_id,
                    "member_id": member_id,
                    "item_id": item.item_id,
                    "kind": kind,
                    "weight": WEIGHT[kind],
                    "occurred_at": created + timedelta(days=rng.randint(1, 110)),
                }
            )
    session.add_all(world.items.values())
    await session.flush()
    await session.execute(insert(MemberFacts), facts)
    await session.execute(insert(Interaction), interactions)
    return world


async def interact(
    session: AsyncSession,
    world: World,
    member_id: uuid.UUID,
    item_ids: list[str],
    when: datetime,
) -> None:
    """The member does something with each item, and awaits a fold-in, as the intake leaves it."""
    rows = []
    for item_id in item_ids:
        kind = KIND_OF[world.items[item_id].kind]
        rows.append(
            {
                "brand_id": world.brand_id,
                "member_id": member_id,
                "item_id": item_id,
                "kind": kind,
                "weight": WEIGHT[kind],
                "occurred_at": when,
            }
        )
    await session.execute(insert(Interaction), rows)
    member = await session.get(MemberFacts, member_id)
    assert member is not None
    member.stale_since = when
    await session.flush()
