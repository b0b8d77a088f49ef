"""The world's arrays as the services' bulk paths take them: NDJSON lines for the members import,
`HistoricPurchase`s for rewards' history loader. Pure functions, no database."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, timedelta

import orjson

from services.demo.members import CATEGORIES, CONCERNS, FIRST_NAMES, LAST_NAMES, LOCALES, SKIN_TYPES
from services.demo.members import TIME_ZONES as PLACES
from services.rewards.history.schemas import HistoricLine, HistoricPurchase
from simulator.world import (
    Catalog,
    Members,
    PurchaseBatch,
    WorldParams,
    external_id,
    favourite_categories,
)


def member_ndjson(params: WorldParams, members: Members, low: int, high: int) -> bytes:
    """Members `low` to `high` (exclusive) as an import file: one JSON object a line."""
    lines = []
    for i in range(low, high):
        first = FIRST_NAMES[members.first_name[i]]
        last = LAST_NAMES[members.last_name[i]]
        ext = external_id(params.seed, i)
        place = int(members.place[i])
        favourites = favourite_categories(members.tastes[i])
        bits = int(members.concerns[i])
        record = {
            "external_id": ext,
            "email": f"{first.lower()}.{last.lower()}.{ext}@example.com",
            "display_name": f"{first} {last[0]}.",
            "birthday": date.fromordinal(int(members.birthday[i])).isoformat(),
            "locale": LOCALES[place],
            "time_zone": PLACES[place],
            "traits": {
                "skin_type": SKIN_TYPES[members.skin_type[i]],
                "concerns": [c for k, c in enumerate(CONCERNS) if bits >> k & 1],
                "favourite_categories": favourites,
            },
            "interests": favourites,
        }
        lines.append(orjson.dumps(record))
    return b"\n".join(lines) + b"\n"


def order_id(seed: int, member: int, ordinal: int) -> str:
    return f"{external_id(seed, member)}-{ordinal:04d}"


def historic_purchases(
    params: WorldParams,
    batch: PurchaseBatch,
    catalog: Catalog,
    member_ids: Sequence[uuid.UUID],
    currency: str,
) -> list[HistoricPurchase]:
    """A chunk's orders for `load_history`. `member_ids[k]` is the id of member `low + k`, the
    chunk's members in order (see `WorldParams.chunk_range`)."""
    low, _ = params.chunk_range(batch.chunk)
    start = params.start_at
    skus = catalog.sku.tolist()
    # Python scalars once per array: far cheaper than numpy scalars one at a time.
    line_sku = batch.sku.tolist()
    line_category = batch.category.tolist()
    line_quantity = batch.quantity.tolist()
    line_amount = batch.line_amount_minor.tolist()
    bounds = batch.line_start.tolist()
    purchases = []
    for k, (member, ordinal, at, amount) in enumerate(
        zip(
            batch.member.tolist(),
            batch.ordinal.tolist(),
            batch.at.tolist(),
            batch.amount_minor.tolist(),
            strict=True,
        )
    ):
        lines = tuple(
            HistoricLine(
                sku=skus[line_sku[j]],
                category=CATEGORIES[line_category[j]],
                quantity=line_quantity[j],
                amount_minor=line_amount[j],
            )
            for j in range(bounds[k], bounds[k + 1])
        )
        purchases.append(
            HistoricPurchase(
                member_id=member_ids[member - low],
                order_id=order_id(params.seed, member, ordinal),
                occurred_at=start + timedelta(seconds=at),
                currency=currency,
                amount_minor=amount,
                lines=lines,
            )
        )
    return purchases


def chunk_external_ids(params: WorldParams, chunk: int) -> list[str]:
    low, high = params.chunk_range(chunk)
    return [external_id(params.seed, i) for i in range(low, high)]
