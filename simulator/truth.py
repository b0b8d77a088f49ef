"""The hidden truth of a simulated world, kept next to the data (never in the services' tables):
what each member really likes, how price-sensitive they are, when they churn, how often they buy.

The recommender's quality, segments and churn models are measured against it. Two files in the
run's folder: `truth.npz` (numpy arrays, one row per member, plus the catalog) and `truth.json`
(the seed and every parameter, the categories and what each array means).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from services.demo.members import CATEGORIES
from simulator.world import NO_CHURN, Catalog, Members, WorldParams, external_id

ARRAYS_FILE = "truth.npz"
HEADER_FILE = "truth.json"
FORMAT = 1

_MEANING = {
    "external_id": "the member's external id in the members service",
    "join_day": "day (0-based, from start) the member joined",
    "tastes": "hidden taste mix over `categories` (rows sum to 1)",
    "price_sensitivity": "0 (indifferent) to 1 (buys the cheapest)",
    "churn_day": f"day the member's activity starts to decay; {NO_CHURN}: no churn in the run",
    "orders_per_year": "the member's base purchase rate before seasons and churn",
    "posts_per_day": "the member's posting rate (0: never posts)",
    "reader": "reacts to and comments on posts",
    "catalog_sku": "the catalog's skus",
    "catalog_category": "each sku's index into `categories`",
    "catalog_price_minor": "each sku's price in minor units (EUR cents)",
}


@dataclass(frozen=True, slots=True)
class Truth:
    params: WorldParams
    external_id: npt.NDArray[np.str_]
    join_day: npt.NDArray[np.int32]
    tastes: npt.NDArray[np.float64]
    price_sensitivity: npt.NDArray[np.float64]
    churn_day: npt.NDArray[np.int32]
    orders_per_year: npt.NDArray[np.float64]
    posts_per_day: npt.NDArray[np.float64]
    reader: npt.NDArray[np.bool_]
    catalog_sku: npt.NDArray[np.str_]
    catalog_category: npt.NDArray[np.int8]
    catalog_price_minor: npt.NDArray[np.int64]

    @classmethod
    def of(cls, params: WorldParams, members: Members, catalog: Catalog) -> Truth:
        ids = np.asarray([external_id(params.seed, i) for i in range(params.members)])
        return cls(
            params=params,
            external_id=ids,
            join_day=members.join_day,
            tastes=members.tastes,
            price_sensitivity=members.price_sensitivity,
            churn_day=members.churn_day,
            orders_per_year=members.orders_per_year,
            posts_per_day=members.posts_per_day,
            reader=members.reader,
            catalog_sku=catalog.sku,
            catalog_category=catalog.category,
            catalog_price_minor=catalog.price_minor,
        )

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "params"}


def write_truth(folder: Path, truth: Truth) -> Path:
    """Writes both files (the arrays first: a header without its arrays is never left)."""
    folder.mkdir(parents=True, exist_ok=True)
    # Uncompressed: tastes are dense floats that barely compress, and at a million members
    # compression costs seconds for little.
    partial = folder / f".{ARRAYS_FILE}.partial.npz"
    # (The stub cannot tell these names from savez's own `allow_pickle` keyword.)
    np.savez(partial, **truth.arrays())  # type: ignore[arg-type]
    partial.replace(folder / ARRAYS_FILE)
    header = {
        "format": FORMAT,
        "seed": truth.params.seed,
        "params": truth.params.to_json(),
        "categories": list(CATEGORIES),
        "members": truth.params.members,
        "arrays": _MEANING,
    }
    (folder / HEADER_FILE).write_text(json.dumps(header, indent=2) + "\n")
    return folder / HEADER_FILE


def read_truth(folder: Path) -> Truth:
    header = json.loads((folder / HEADER_FILE).read_text())
    if header.get("format") != FORMAT:
        raise ValueError(f"{folder / HEADER_FILE}: unknown truth format {header.get('format')!r}")
    params = WorldParams.from_json(header["params"])
    with np.load(folder / ARRAYS_FILE, allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in _MEANING}
    return Truth(params=params, **arrays)
