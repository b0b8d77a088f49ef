"""A brand's store as arrays: the catalog, the members and who did what, read in one go for a
training run or for the members of one fold-in."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
from numpy.typing import NDArray
from sqlalchemy.ext.asyncio import AsyncSession

from recommender.store.models import Item
from recommender.training import repository
from recommender.training.repository import MemberRow, Pairs


@dataclass(frozen=True)
class Catalog:
    """Every item of the brand, one entry per position, in item id order."""

    ids: NDArray[np.str_]
    kinds: NDArray[np.str_]
    titles: list[str]
    texts: list[str]
    categories: list[str | None]
    costs: NDArray[np.float64]  # NaN when the item has no points cost
    created: NDArray[np.float64]  # epoch seconds
    valid_until: NDArray[np.float64]  # epoch seconds; +inf when open-ended
    active: NDArray[np.bool_]
    authors: list[uuid.UUID | None]

    @classmethod
    def of(cls, items: Sequence[Item]) -> Catalog:
        return cls(
            ids=np.array([i.item_id for i in items], dtype=np.str_),
            kinds=np.array([i.kind.value for i in items], dtype=np.str_),
            titles=[i.title for i in items],  # posts have none
            texts=[_text(i) for i in items],
            categories=[i.category for i in items],
            costs=np.array(
                [np.nan if i.cost_points is None else i.cost_points for i in items],
                dtype=np.float64,
            ),
            created=np.array([i.created_at.timestamp() for i in items], dtype=np.float64),
            valid_until=np.array(
                [np.inf if i.valid_until is None else i.valid_until.timestamp() for i in items],
                dtype=np.float64,
            ),
            active=np.array([i.active for i in items], dtype=np.bool_),
            authors=[i.author_id for i in items],
        )

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, index: NDArray[np.int64]) -> Catalog:
        return Catalog(
            ids=self.ids[index],
            kinds=self.kinds[index],
            titles=[self.titles[int(i)] for i in index],
            texts=[self.texts[int(i)] for i in index],
            categories=[self.categories[int(i)] for i in index],
            costs=self.costs[index],
            created=self.created[index],
            valid_until=self.valid_until[index],
            active=self.active[index],
            authors=[self.authors[int(i)] for i in index],
        )


def _text(item: Item) -> str:
    """What the content model reads: title, category, tags and description."""
    parts = [item.title, item.category or "", " ".join(item.tags), item.content]
    return " ".join(p for p in parts if p)


@dataclass(frozen=True)
class Snapshot:
    brand_id: uuid.UUID
    now: datetime
    catalog: Catalog
    members: list[MemberRow]
    matrix: sp.csr_matrix  # members x items, damped summed weights
    tiers: list[uuid.UUID]  # group index -> tier id

    @property
    def tier_names(self) -> dict[uuid.UUID, str]:
        return {m.tier_id: m.tier_name or "" for m in self.members if m.tier_id is not None}

    @property
    def member_ids(self) -> list[uuid.UUID]:
        return [m.member_id for m in self.members]

    def groups(self, members: Sequence[MemberRow]) -> NDArray[np.int64]:
        position = {tier: index for index, tier in enumerate(self.tiers)}
        return np.array([position.get(m.tier_id, -1) if m.tier_id else -1 for m in members])


def pair_matrix(pairs: Pairs, n_members: int, n_items: int) -> sp.csr_matrix:
    """Members x items: each pair's summed weight, damped (log1p) so a member who buys one
    lipstick twenty times does not drown everything else; pairs that sum to nothing or less (a
    return, a reaction taken back) are left out."""
    matrix = sp.csr_matrix(
        (pairs.weights, (pairs.members, pairs.items)), shape=(n_members, n_items), dtype=np.float32
    )  # duplicates add up
    matrix.data[matrix.data < 0] = 0
    matrix.eliminate_zeros()
    matrix.data = np.log1p(matrix.data)
    matrix.sort_indices()
    return matrix


async def load_snapshot(session: AsyncSession, brand_id: uuid.UUID, now: datetime) -> Snapshot:
    items = await repository.read_items(session, brand_id)
    members = await repository.read_members(session, brand_id)
    catalog = Catalog.of(items)
    pairs = await repository.read_pairs(
        session, brand_id, [m.member_id for m in members], list(catalog.ids), now
    )
    matrix = pair_matrix(pairs, len(members), len(catalog))
    tiers = sorted({m.tier_id for m in members if m.tier_id is not None}, key=str)
    return Snapshot(brand_id, now, catalog, members, matrix, tiers)
