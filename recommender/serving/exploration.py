"""Exploration by Thompson sampling over items with little data, with logged propensities.

Each place of a list is explored with probability `share`. An explored place goes to the item
that wins one Thompson draw: a sample of Beta(taken + 1, shown - taken + 1) per candidate, the
largest wins. The draw is one of DRAWS draws made up front, picked at random, so the chance that
an item wins is known exactly (the share of the draws it wins among the candidates still
available): that chance, times `share`, is the item's logged propensity, which inverse
propensity estimators need to compare policies offline. Items of the model's list are shown in
places that were not explored: their propensity is 1 - share.

Everything random is seeded by the exposure id: a list can be replayed.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DRAWS = 200
# Items shown fewer times than this are still worth exploring.
LITTLE_DATA = 100
# The most candidates one list explores among (the least shown first): DRAWS samples of each
# are drawn on the request path.
POOL_SIZE = 50


@dataclass(frozen=True, slots=True)
class Candidate:
    item_id: str
    shown: int
    taken: int


@dataclass(frozen=True, slots=True)
class Pick:
    item_id: str
    probability: float  # of this item winning the draw, given the candidates then available


def generator(exposure_id: uuid.UUID) -> np.random.Generator:
    """The generator of a list's Thompson draws."""
    return np.random.default_rng(exposure_id.int)


def explored_places(exposure_id: uuid.UUID, count: int, share: float) -> list[bool]:
    """Which of a list's `count` places explore: each independently with probability `share`.
    (Python's generator: every request asks this, and seeding numpy's costs more.)"""
    if share <= 0.0:
        return [False] * count
    if share >= 1.0:
        return [True] * count
    rng = random.Random(exposure_id.int)
    return [rng.random() < share for _ in range(count)]


class ThompsonDraws:
    """DRAWS Thompson samples over `candidates`, from which places are filled one by one."""

    def __init__(self, rng: np.random.Generator, candidates: Sequence[Candidate]) -> None:
        self._rng = rng
        self._ids = [c.item_id for c in candidates]
        shown = np.array([max(c.shown, 0) for c in candidates], dtype=np.float64)
        taken = np.minimum(np.array([max(c.taken, 0) for c in candidates], dtype=np.float64), shown)
        self._samples = rng.beta(taken + 1.0, shown - taken + 1.0, size=(DRAWS, len(candidates)))
        self._available = np.ones(len(candidates), dtype=bool)

    def remaining(self) -> bool:
        """Whether a candidate is left to explore."""
        return bool(self._available.any())

    def pick(self) -> Pick | None:
        """The winner of one draw among the candidates not picked yet (None when none is left),
        with the probability of that outcome."""
        columns = np.flatnonzero(self._available)
        if columns.size == 0:
            return None
        winners = columns[np.argmax(self._samples[:, columns], axis=1)]
        chosen = int(winners[self._rng.integers(DRAWS)])
        probability = float(np.count_nonzero(winners == chosen)) / DRAWS
        self._available[chosen] = False
        return Pick(self._ids[chosen], probability)
