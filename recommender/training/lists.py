"""Turning a version's scores into each member's lists per surface, each item with a reason.

Lists hold more candidates than a page (serving filters them by the live rules: stock, tier,
bookable sessions) and leave out what a member cannot be shown whatever happens: their own items,
inactive or expired ones, products. Items newer than the version are scored by its content model
(their text against the member's profile), so a post from this morning can be recommended before
the next training run; they rank below confident candidates of the same surface.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
from numpy.typing import NDArray

from recommender.models.base import top_items
from recommender.surfaces import SERVED_KINDS, SURFACE_KINDS, SURFACES
from recommender.training.model import ProductionModel
from recommender.training.repository import ListRow, MemberRow
from recommender.training.snapshot import Catalog

# Candidates kept per list: serving pages hold at most 50 and the live rules drop some.
LIST_LENGTH = 100
# "New for you": items that appeared in this window.
NEW_WINDOW = timedelta(days=14)
# Fresh items (newer than the version) enter at this share of their content similarity, below
# the ranker's candidates (whose probabilities are mostly higher than a cosine halved).
FRESH_WEIGHT = 0.5

WEEKLY = frozenset({"discover", "new"})
SERVED = frozenset(kind.value for kind in SERVED_KINDS)
NON_PERSONALISED = uuid.UUID(int=0)

# How a reason names what the member did with an item of each kind.
VERBS = {
    "perk": "redeemed",
    "prompt": "answered",
    "experience": "booked",
    "post": "liked",
    "product": "bought",
}


@dataclass(frozen=True)
class Fresh:
    """Items the version does not know, as positions of a catalog, with their content vectors."""

    catalog: Catalog
    vectors: sp.csr_matrix  # fresh items x vocabulary of the version's content model

    @classmethod
    def of(cls, model: ProductionModel, catalog: Catalog) -> Fresh:
        unknown = np.array(
            [
                str(i) not in model.index and k in SERVED
                for i, k in zip(catalog.ids, catalog.kinds, strict=True)
            ],
            dtype=np.bool_,
        )
        fresh = catalog.take(np.flatnonzero(unknown & catalog.active))
        if model.content is None or not len(fresh):
            return cls(fresh.take(np.zeros(0, dtype=np.int64)), sp.csr_matrix((0, 0)))
        vectors = model.content.vectorizer.transform(fresh.texts)
        return cls(fresh, sp.csr_matrix(vectors, dtype=np.float32))


def member_lists(
    model: ProductionModel,
    version_id: uuid.UUID,
    members: Sequence[MemberRow],
    rows: sp.csr_matrix,
    fresh_seen: sp.csr_matrix,
    fresh: Fresh,
    now: datetime,
    *,
    arm: str = "",
    surfaces: Sequence[str] = SURFACES,
) -> list[ListRow]:
    """Each member's lists. `rows` are their interactions over the version's items,
    `fresh_seen` over the fresh items (what they already did with those).

    Scores of the version's items and of the fresh items sit side by side in one array, the
    fresh ones after the version's (`positions >= model.n_items`)."""
    if not members:
        return []
    catalog = model.catalog
    scores = model.score(rows, model.context(members)).copy()
    scores[:, ~_servable(catalog, now)] = -np.inf
    seen = rows.tocoo()
    scores[seen.row, seen.col] = -np.inf
    _hide_own(scores, catalog.authors, members)
    scores = np.hstack([scores, _fresh_scores(model, fresh, rows, members, fresh_seen)])
    ids = np.concatenate([model.item_ids, fresh.catalog.ids]).astype(object)
    kinds = np.concatenate([catalog.kinds, fresh.catalog.kinds])
    created = np.concatenate([catalog.created, fresh.catalog.created])
    explainers = [
        Explainer(model, fresh, rows[position], member) for position, member in enumerate(members)
    ]
    out: list[ListRow] = []
    for surface in surfaces:
        wanted = np.isin(kinds, [k.value for k in SURFACE_KINDS[surface]])
        if surface == "new":
            wanted &= created >= (now - NEW_WINDOW).timestamp()
        masked = np.where(wanted[None, :], scores, -np.inf)
        top = top_items(masked, LIST_LENGTH)
        values = np.take_along_axis(masked, top, axis=1)
        for position, member in enumerate(members):
            kept = top[position][np.isfinite(values[position])]
            if surface == "discover":
                kept = _alternate_kinds(kept, kinds)
            out.append(
                ListRow(
                    member.member_id,
                    surface,
                    "",
                    version_id,
                    arm,
                    ids[kept].tolist(),
                    masked[position, kept].tolist(),
                    explainers[position](kept),
                )
            )
    return out


def _servable(catalog: Catalog, now: datetime) -> NDArray[np.bool_]:
    served = np.array([k in SERVED for k in catalog.kinds], dtype=np.bool_)
    return served & catalog.active & (catalog.valid_until > now.timestamp())


def _hide_own(
    scores: NDArray[np.float32], authors: Sequence[uuid.UUID | None], members: Sequence[MemberRow]
) -> None:
    row_of = {m.member_id: r for r, m in enumerate(members)}
    for column, author in enumerate(authors):
        if author is not None and author in row_of:
            scores[row_of[author], column] = -np.inf


def _fresh_scores(
    model: ProductionModel,
    fresh: Fresh,
    rows: sp.csr_matrix,
    members: Sequence[MemberRow],
    fresh_seen: sp.csr_matrix,
) -> NDArray[np.float32]:
    if model.content is None or not len(fresh.catalog):
        return np.full((len(members), len(fresh.catalog)), -np.inf, dtype=np.float32)
    profiles = model.content.profiles(rows, model.context(members))
    scores = np.asarray((profiles @ fresh.vectors.T).toarray(), dtype=np.float32) * FRESH_WEIGHT
    seen = sp.csr_matrix(fresh_seen).tocoo()
    scores[seen.row, seen.col] = -np.inf
    _hide_own(scores, fresh.catalog.authors, members)
    return scores


def _alternate_kinds(positions: NDArray[np.int64], kinds: NDArray[np.str_]) -> NDArray[np.int64]:
    """Discover mixes surfaces: the best of each kind in turn, each kind in its own order."""
    queues: dict[str, list[int]] = {}
    for position in positions:
        queues.setdefault(str(kinds[position]), []).append(int(position))
    mixed: list[int] = []
    rounds = max((len(q) for q in queues.values()), default=0)
    for turn in range(rounds):
        # Within a round, kinds keep the order of their best remaining item.
        mixed += [q[turn] for q in queues.values() if turn < len(q)]
    return np.asarray(mixed, dtype=np.int64)


class Explainer:
    """Why each item is on a member's lists: the member's own item that pulled it up most
    (EASE's item-to-item weight times how much they did with it), else their stated interests or
    habits, else popularity. One member at a time, each item explained once for all lists."""

    def __init__(
        self,
        model: ProductionModel,
        fresh: Fresh,
        history: sp.csr_matrix,
        member: MemberRow,
    ) -> None:
        self.model = model
        self.fresh = fresh
        self.history = history
        self.member = member
        self.interests = {i.casefold() for i in member.interests}
        self.favourites = _favourite_categories(model, history)
        tier = model.tier_names.get(member.tier_id) if member.tier_id else None
        self.popular = f"Popular with {tier} members" if tier else "Popular with members like you"
        self.known: dict[tuple[int, bool], str] = {}

    def __call__(self, positions: NDArray[np.int64]) -> list[str]:
        """A reason per position (the version's items first, fresh ones after them)."""
        n_items = self.model.n_items
        todo = [int(p) for p in positions if p < n_items and (int(p), False) not in self.known]
        for position, source in zip(todo, self._strongest_sources(todo), strict=True):
            self.known[(position, False)] = self._reason(position, False, source)
        out = []
        for p in positions:
            key = (int(p), False) if p < n_items else (int(p) - n_items, True)
            if key not in self.known:
                self.known[key] = self._reason(key[0], True, None)
            out.append(self.known[key])
        return out

    def _strongest_sources(self, positions: list[int]) -> list[int | None]:
        ease = self.model.ease
        if ease is None or not self.history.nnz or not positions:
            return [None] * len(positions)
        pull = ease.weights[self.history.indices][:, positions] * self.history.data[:, None]
        best = np.argmax(pull, axis=0)
        strongest = pull[best, np.arange(len(positions))]
        return [
            int(self.history.indices[b]) if strength > 0 else None
            for b, strength in zip(best, strongest, strict=True)
        ]

    def _what_they_did(self, source: int) -> str | None:
        """What a reason says they did: redeemed “Hair mask mini”, liked a post about hair."""
        catalog = self.model.catalog
        kind = str(catalog.kinds[source])
        title, category = catalog.titles[source], catalog.categories[source]
        if kind == "product":
            return f"bought {category} products" if category else None
        if title:
            return f"{VERBS[kind]} “{title}”"
        return f"{VERBS[kind]} a {kind} about {category}" if category else None

    def _reason(self, position: int, is_fresh: bool, source: int | None) -> str:
        catalog = self.fresh.catalog if is_fresh else self.model.catalog
        category = catalog.categories[position]
        if source is not None:
            said = self._what_they_did(source)
            if said:
                return f"Because you {said}"
        if category:
            if category.casefold() in self.interests:
                return f"Matches your interest in {category}"
            if category in self.favourites:
                return f"You often choose {category}"
        return "New, and close to what you like" if is_fresh else self.popular


def _favourite_categories(model: ProductionModel, history: sp.csr_matrix) -> set[str]:
    totals: dict[str, float] = {}
    for column, weight in zip(history.indices, history.data, strict=True):
        category = model.catalog.categories[int(column)]
        if category:
            totals[category] = totals.get(category, 0.0) + float(weight)
    if not totals:
        return set()
    top = max(totals.values())
    return {c for c, w in totals.items() if w >= top * 0.5}


def popular_lists(
    model: ProductionModel,
    matrix: sp.csr_matrix,
    groups: NDArray[np.int64],
    version_id: uuid.UUID,
    now: datetime,
) -> list[ListRow]:
    """The non-personalised lists (cold start, holdout arms, members without the
    personalisation consent): most popular per tier, and overall for members without one."""
    binary = sp.csr_matrix(matrix > 0, dtype=np.float32)
    servable = _servable(model.catalog, now)
    rows: list[ListRow] = []
    segments: list[tuple[str, NDArray[np.float32], str]] = [
        ("", np.asarray(binary.sum(axis=0), dtype=np.float32).ravel(), "Popular with members")
    ]
    for index, tier in enumerate(model.tiers):
        counts = np.asarray(binary[groups == index].sum(axis=0), dtype=np.float32).ravel()
        name = model.tier_names.get(tier, "")
        segments.append(
            (str(tier), counts, f"Popular with {name} members" if name else "Popular with members")
        )
    for segment, counts, reason in segments:
        for surface, kinds in SURFACE_KINDS.items():
            wanted = servable & np.isin(model.catalog.kinds, [k.value for k in kinds])
            if surface == "new":
                wanted &= model.catalog.created >= (now - NEW_WINDOW).timestamp()
            # Overall popularity breaks ties within a tier, so a small tier still gets a full list.
            score = np.where(wanted, counts + model.popularity, -np.inf)
            order = [
                int(i)
                for i in np.argsort(-score, kind="stable")[:LIST_LENGTH]
                if np.isfinite(score[i])
            ]
            total = float(counts.sum()) or 1.0
            rows.append(
                ListRow(
                    NON_PERSONALISED,
                    surface,
                    segment,
                    version_id,
                    "",
                    [str(model.item_ids[i]) for i in order],
                    [float(counts[i] / total) for i in order],
                    [reason] * len(order),
                )
            )
    return rows
