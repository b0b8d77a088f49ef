"""An item's audience: the brand's members the serving model ranks most likely to engage with
one item, for other services (marketing's affinity segments) that may not read our tables.

Every member of the brand is scored for the item by the serving version, a chunk at a time,
and ranked: members with interactions (and the personalisation consent) by score, best
first; then members the model knows nothing about (no interactions) or may not profile (no
personalisation consent), by member id, since their score would say nothing of them. Ties
break by member id, so the same data gives the same list.

A ranking costs one read of the brand's interactions and a scoring pass over every member, so
it is kept a few minutes per (version, item) in this process: a marketer previewing a segment
again, then materialising it, pays once.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
from numpy.typing import NDArray
from sqlalchemy.ext.asyncio import AsyncSession

from recommender.serving.cache import TtlCache
from recommender.store.models import Item, ModelVersion
from recommender.training import repository
from recommender.training.repository import MemberRow
from services.kernel.clock import utcnow
from services.kernel.errors import NotFound, ValidationFailed
from services.kernel.loops import off_loop

if TYPE_CHECKING:
    from recommender.training.lists import Fresh
    from recommender.training.model import ProductionModel

# Members scored per call of the model: a chunk's score block (members x items, float32) stays
# around 80 MB whatever the catalog's size.
SCORE_CELLS = 20_000_000
CACHE_SECONDS = 300.0


class ItemNotFound(NotFound):
    """No such item in this brand's catalog."""

    code = "ItemNotFound"


class InvalidShare(ValidationFailed):
    """`top_share` is a share of the brand's members: more than 0, at most 1."""

    code = "InvalidShare"


@dataclass(frozen=True)
class Ranked:
    """The brand's members in rank order for one item (ids as 16-byte rows: a million
    members hold 16 MB), and how many of them the model could rank."""

    member_ids: NDArray[np.uint8]
    scored: int
    note: str | None = None


@dataclass(frozen=True)
class ItemAudience:
    item_id: str
    top_share: float
    version_id: uuid.UUID | None
    members: int  # the brand's members ranked
    scored: int  # of which the model ranked by score (the rest follow by id)
    member_ids: list[uuid.UUID]
    note: str | None


_RANKED: TtlCache[tuple[uuid.UUID, str], Ranked] = TtlCache(CACHE_SECONDS, max_entries=8)


def clear_cache() -> None:
    _RANKED.clear()


async def item_audience(
    session: AsyncSession, brand_id: uuid.UUID, item_id: str, top_share: float
) -> ItemAudience:
    """The first `ceil(top_share x members)` of the brand's members for the item. With no
    serving version yet, nobody (and a note saying why)."""
    if not (0 < top_share <= 1) or math.isnan(top_share):
        raise InvalidShare(f"top_share must be more than 0 and at most 1, not {top_share}.")
    item = await session.get(Item, (brand_id, item_id))
    if item is None:
        raise ItemNotFound(f"No item {item_id!r} in this brand's catalog.")
    version = await repository.serving_version(session, brand_id)
    if version is None:
        return ItemAudience(
            item_id, top_share, None, 0, 0, [], "The brand has no serving model yet."
        )
    ranked = await _RANKED.get((version.id, item_id), partial(_rank, session, version, item))
    total = len(ranked.member_ids)
    # A share of a member is a member: 20% of 7 members is 2, of 1 member is 1. A model that
    # cannot tell members apart for this item (the note says why) picks nobody.
    take = 0 if ranked.note else min(total, math.ceil(round(top_share * total, 9)))
    chosen = [uuid.UUID(bytes=row.tobytes()) for row in ranked.member_ids[:take]]
    return ItemAudience(item_id, top_share, version.id, total, ranked.scored, chosen, ranked.note)


async def _rank(session: AsyncSession, version: ModelVersion, item: Item) -> Ranked:
    # Imported here: the model and its loader pull in scikit-learn, which the serving paths
    # that never rank an audience should not pay for at start.
    from recommender.training.lists import Fresh
    from recommender.training.service import load_model
    from recommender.training.snapshot import Catalog, pair_matrix

    model = await load_model(session, version)
    members = await repository.read_members(session, version.brand_id)
    ids = np.frombuffer(b"".join(m.member_id.bytes for m in members), dtype=np.uint8)
    ids = ids.reshape(len(members), 16)
    if not members:
        return Ranked(ids, 0)
    if model.kind == "popular":
        note = "The serving model ranks by popularity alone: it does not tell members apart."
        return Ranked(ids, 0, note)
    column = model.index.get(item.item_id)
    fresh = None
    if column is None:
        # Newer than the version: its text against the members' profiles, as lists do.
        fresh = Fresh.of(model, Catalog.of([item]))
        if not len(fresh.catalog):
            note = "The item is newer than the serving model, which cannot score it yet."
            return Ranked(ids, 0, note)
    pairs = await repository.read_pairs(
        session,
        version.brand_id,
        [m.member_id for m in members],
        [str(i) for i in model.item_ids],
        utcnow(),
    )
    matrix = pair_matrix(pairs, len(members), model.n_items)

    def score() -> NDArray[np.float32]:
        return _scores(model, matrix, members, column, fresh)

    scores = await off_loop(score)
    known = (np.diff(matrix.indptr) > 0) & np.array([m.personalised for m in members])
    order = _order(scores, known)
    return Ranked(ids[order], int(known.sum()))


def _scores(
    model: ProductionModel,
    matrix: sp.csr_matrix,
    members: list[MemberRow],
    column: int | None,
    fresh: Fresh | None,
) -> NDArray[np.float32]:
    out = np.empty(len(members), dtype=np.float32)
    step = max(1, SCORE_CELLS // max(1, model.n_items))
    for start in range(0, len(members), step):
        stop = min(len(members), start + step)
        rows = sp.csr_matrix(matrix[start:stop])
        context = model.context(members[start:stop])
        if column is not None:
            out[start:stop] = model.score(rows, context)[:, column]
        else:
            assert fresh is not None
            assert model.content is not None
            profiles = model.content.profiles(rows, context)
            out[start:stop] = np.asarray((profiles @ fresh.vectors.T).toarray()).ravel()
    return out


def _order(scores: NDArray[np.float32], known: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Known members by score (best first), then the others; ties by position (member id)."""
    position = np.arange(len(scores))
    value = np.where(known & np.isfinite(scores), scores, -np.inf).astype(np.float64)
    value[~known] = 0.0  # not compared: the unknown follow the known by id
    return np.lexsort((position, -value, ~known)).astype(np.int64)
