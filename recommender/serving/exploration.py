"""Exploration by Thompson sampling over items with little data, with logged propensities.

Each place of a list is explored with probability `share`. An explored place goes to the item
that wins one Thompson draw: a sample of Beta(taken + 1, shown - taken + 1) per candidate, the
largest wins. The draw is one of DRAWS draws, picked at random, so the chance that an item wins
is known exactly (the share of the draws it wins among the candidates still available): that
chance, times `share`, is the item's logged propensity, which inverse propensity estimators
need to compare policies offline. Items of the model's list are shown in places that were not
explored: their propensity is 1 - share.

The DRAWS samples are drawn once for each read of a brand's pool (`SampledPool`, cached with the
pool for half a minute), not for each list: drawing them cost more than the rest of arranging a
list, and the lists served from one read of the pool differ only in which draws they pick and
which candidates their member may see. The samples are seeded by the pool as read and the picks
by the exposure id, so a list can be replayed from its pool and its exposure id.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

DRAWS = 200
# Items shown fewer times than this are still worth exploring.
LITTLE_DATA = 100
# The most candidates one list explores among (the least shown first).
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


@dataclass(frozen=True, slots=True)
class SampledPool:
    """A pool's candidates and DRAWS Thompson samples of each (one column per candidate)."""

    candidates: tuple[Candidate, ...]
    samples: npt.NDArray[np.float64]
    columns: dict[str, int]

    @classmethod
    def of(cls, candidates: Sequence[Candidate]) -> SampledPool:
        shown = np.array([max(c.shown, 0) for c in candidates], dtype=np.float64)
        taken = np.minimum(np.array([max(c.taken, 0) for c in candidates], dtype=np.float64), shown)
        rng = np.random.default_rng(_seed_of(candidates))
        samples = rng.beta(taken + 1.0, shown - taken + 1.0, size=(DRAWS, len(candidates)))
        columns = {c.item_id: index for index, c in enumerate(candidates)}
        return cls(tuple(candidates), samples, columns)

    @property
    def item_ids(self) -> list[str]:
        return [c.item_id for c in self.candidates]


def _seed_of(candidates: Sequence[Candidate]) -> int:
    digest = hashlib.blake2b(digest_size=16)
    for c in candidates:
        digest.update(f"{c.item_id}\x00{c.shown}\x00{c.taken}\x00".encode())
    return int.from_bytes(digest.digest(), "big")


def list_random(exposure_id: uuid.UUID) -> random.Random:
    """The generator of a list's random choices: which places explore, then which draws."""
    return random.Random(exposure_id.int)


def explored_places(rng: random.Random, count: int, share: float) -> list[bool]:
    """Which of a list's `count` places explore: each independently with probability `share`."""
    if share <= 0.0:
        return [False] * count
    if share >= 1.0:
        return [True] * count
    return [rng.random() < share for _ in range(count)]


class ThompsonDraws:
    """The draws of `pool` over the candidates this list may explore (`eligible`, in the pool's
    order), from which places are filled one by one."""

    def __init__(self, pool: SampledPool, eligible: Iterable[str], rng: random.Random) -> None:
        allowed = set(eligible)
        self._rng = rng
        self._ids = [c.item_id for c in pool.candidates if c.item_id in allowed]
        self._samples = pool.samples[:, [pool.columns[item_id] for item_id in self._ids]]
        self._available = np.ones(len(self._ids), dtype=bool)

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
        chosen = int(winners[self._rng.randrange(DRAWS)])
        probability = float(np.count_nonzero(winners == chosen)) / DRAWS
        self._available[chosen] = False
        return Pick(self._ids[chosen], probability)
