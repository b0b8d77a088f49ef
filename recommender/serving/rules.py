"""The limits of a list, and the re-ordering that keeps it varied (what each surface serves is
`recommender.surfaces`).

The rules that depend on live data (stock, validity, tier, bookable sessions, what the member
redeemed or dismissed) are one SQL query in `repository`; what is here needs no data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

DEFAULT_LIMIT = 10
MAX_LIMIT = 50


def diversify(items: Sequence[T], category: Callable[[T], str | None], count: int) -> list[T]:
    """The first `count` of `items` (best first) re-ordered so that no two of the same category
    stand side by side when another item can go between them.

    Greedy: each place takes the best remaining item whose category differs from the one before
    it, or the best remaining one when all share that category. So the best item always leads
    and an item moves down only as far as needed. An item without a category never clashes.
    """
    remaining = list(items)
    chosen: list[T] = []
    previous: str | None = None
    while remaining and len(chosen) < count:
        pick = 0
        if previous is not None:
            pick = next(
                (k for k, item in enumerate(remaining) if category(item) != previous),
                0,
            )
        item = remaining.pop(pick)
        chosen.append(item)
        previous = category(item)
    return chosen
