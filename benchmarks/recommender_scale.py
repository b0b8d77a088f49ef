"""Training and folding in at a brand's full size: 1,000,000 members, 5,000 perks, 20,000,000
interactions, in the recommender's own store.

The members are the simulator's (`simulator.world.make_members`: their hidden category tastes and
how active they are); each interaction picks a category from the member's tastes and a perk of it
by the perk's popularity (Zipf within the category), as a redemption (weight 3) or a click (0.5).
The store is loaded with binary COPY, then the real training job runs on it
(`recommender.training.service.train_brand`: snapshot, fit, gate, artifact, lists) in a fresh
process, whose peak memory is its own. The anchor is `implicit`'s ALS fit on the same matrix (64
factors, 15 iterations). Then a fold-in of 10,000 members through the serving version.

Target (issue #6): training under 5 minutes. Run: python -m benchmarks.recommender_scale
"""

from __future__ import annotations

import asyncio
import io
import json
import multiprocessing
import os
import struct
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
from sqlalchemy import text, update

from benchmarks._harness import peak_rss_mb, report, scratch_database, servers
from recommender.store.models import Interaction, Item, ItemKind, MemberFacts
from recommender.training import service
from services.demo.members import CATEGORIES
from services.kernel.db import Database, driver_connection
from simulator.world import WorldParams, make_members

MEMBERS = int(os.environ.get("KINFOLK_BENCH_MEMBERS", "1000000"))
PERKS = int(os.environ.get("KINFOLK_BENCH_PERKS", "5000"))
INTERACTIONS = int(os.environ.get("KINFOLK_BENCH_INTERACTIONS", "20000000"))
FOLD_IN_MEMBERS = 10_000
SEED = 11
NOW = datetime(2026, 11, 1, tzinfo=UTC)
PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
TARGET_SECONDS = 300.0
CHUNK = 2_000_000


def _uuids(rng: np.random.Generator, n: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40  # version 4, as PostgreSQL prints any 16 bytes anyway
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    return raw


def world() -> dict[str, Any]:
    """Members (ids, tastes, tiers), perks (ids, categories, costs) and interactions."""
    params = WorldParams(members=MEMBERS, days=365, seed=SEED, start=date(2025, 11, 1))
    members = make_members(params)
    rng = np.random.default_rng(SEED)
    member_ids = _uuids(rng, MEMBERS)
    perk_ids = [uuid.UUID(bytes=bytes(b)) for b in _uuids(rng, PERKS)]
    shares = np.asarray(members.tastes.mean(axis=0))
    perk_category = rng.choice(len(CATEGORIES), size=PERKS, p=shares / shares.sum())
    # Within a category, perks are popular by Zipf's law (a few best sellers, a long tail).
    popularity = 1.0 / np.arange(1, PERKS + 1) ** 0.9
    rng.shuffle(popularity)
    by_category = [np.flatnonzero(perk_category == c) for c in range(len(CATEGORIES))]
    cdfs = [np.cumsum(popularity[p]) / popularity[p].sum() for p in by_category]
    activity = members.orders_per_year / members.orders_per_year.sum()
    counts = np.maximum(1, np.round(activity * INTERACTIONS)).astype(np.int64)
    owner = np.repeat(np.arange(MEMBERS), counts)[:INTERACTIONS]
    perk = np.empty(len(owner), dtype=np.int32)
    for start in range(0, len(owner), CHUNK):
        who = owner[start : start + CHUNK]
        taste_cdf = np.cumsum(members.tastes[who], axis=1)
        category = (rng.random(len(who))[:, None] > taste_cdf).sum(axis=1)
        category = np.minimum(category, len(CATEGORIES) - 1)
        chosen = np.empty(len(who), dtype=np.int32)
        for c, (items, cdf) in enumerate(zip(by_category, cdfs, strict=True)):
            mask = category == c
            chosen[mask] = items[np.searchsorted(cdf, rng.random(int(mask.sum())))]
        perk[start : start + CHUNK] = chosen
    seconds_ago = rng.integers(0, 365 * 86_400, size=len(owner))
    redemption = rng.random(len(owner)) < 0.3
    return {
        "member_ids": member_ids,
        "tiers": (members.orders_per_year > 6).astype(np.int8) + (members.orders_per_year > 20),
        "perk_ids": perk_ids,
        "perk_category": perk_category,
        "owner": owner,
        "perk": perk,
        "seconds_ago": seconds_ago,
        "redemption": redemption,
    }


def _binary_copy(dtype: np.dtype[Any], rows: np.ndarray[Any, Any]) -> bytes:
    header = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
    return header + rows.astype(dtype).tobytes() + struct.pack(">h", -1)


def _interaction_rows(
    data: dict[str, Any], brand: uuid.UUID, select: np.ndarray[Any, Any], kind: bytes
) -> bytes:
    """Binary COPY rows of (brand_id, member_id, item_id, kind, weight, occurred_at)."""
    item_len = len("perk:") + 36
    dtype = np.dtype(
        [
            ("n", ">i2"),
            ("bl", ">i4"), ("brand", "V16"),
            ("ml", ">i4"), ("member", "V16"),
            ("il", ">i4"), ("item", f"S{item_len}"),
            ("kl", ">i4"), ("kind", f"S{len(kind)}"),
            ("wl", ">i4"), ("weight", ">f4"),
            ("tl", ">i4"), ("at", ">i8"),
        ]
    )  # fmt: skip
    rows = np.zeros(int(select.sum()), dtype=dtype)
    rows["n"] = 6
    rows["bl"], rows["ml"], rows["il"], rows["kl"], rows["wl"], rows["tl"] = (
        16,
        16,
        item_len,
        len(kind),
        4,
        8,
    )
    rows["brand"] = np.frombuffer(brand.bytes, dtype="V16")[0]
    rows["member"] = data["member_ids"][data["owner"][select]].view("V16").ravel()
    names = np.array([f"perk:{p}".encode() for p in data["perk_ids"]], dtype=f"S{item_len}")
    rows["item"] = names[data["perk"][select]]
    rows["kind"] = kind
    rows["weight"] = 3.0 if kind == b"redemption" else 0.5
    now_us = int((NOW - PG_EPOCH).total_seconds() * 1_000_000)
    rows["at"] = now_us - data["seconds_ago"][select] * 1_000_000
    return _binary_copy(dtype, rows)


def _create_index(session: Any, index: Any) -> None:
    index.create(session.connection())


async def load(database_url: str, data: dict[str, Any], brand: uuid.UUID) -> None:
    database = Database(database_url)
    tier_ids = [uuid.uuid4() for _ in range(3)]
    names = ["Insider", "VIB", "Rouge"]
    async with database.unit_of_work() as session:
        connection = await driver_connection(session)
        member_dtype = np.dtype(
            [
                ("n", ">i2"),
                ("ml", ">i4"), ("member", "V16"),
                ("bl", ">i4"), ("brand", "V16"),
                ("tl", ">i4"), ("tier", "V16"),
                ("pl", ">i4"), ("points", ">i4"),
                ("jl", ">i4"), ("joined", ">i8"),
            ]
        )  # fmt: skip
        rows = np.zeros(MEMBERS, dtype=member_dtype)
        rows["n"] = 5
        rows["ml"], rows["bl"], rows["tl"], rows["pl"], rows["jl"] = 16, 16, 16, 4, 8
        rows["member"] = data["member_ids"].view("V16").ravel()
        rows["brand"] = np.frombuffer(brand.bytes, dtype="V16")[0]
        tiers = np.array([np.frombuffer(t.bytes, dtype="V16")[0] for t in tier_ids])
        rows["tier"] = tiers[data["tiers"]]
        rows["points"] = (np.arange(MEMBERS) * 7919) % 3000
        rows["joined"] = int((NOW - timedelta(days=400) - PG_EPOCH).total_seconds() * 1e6)
        await connection.copy_to_table(
            "members",
            schema_name="recommender",
            columns=["member_id", "brand_id", "tier_id", "points_available", "joined_at"],
            source=io.BytesIO(_binary_copy(member_dtype, rows)),
            format="binary",
        )
        for index, tier in enumerate(tier_ids):
            await session.execute(
                update(MemberFacts)
                .where(MemberFacts.tier_id == tier)
                .values(tier_name=names[index])
            )
        created = NOW - timedelta(days=400)
        session.add_all(
            Item(
                brand_id=brand,
                item_id=f"perk:{perk}",
                kind=ItemKind.PERK,
                title=f"{CATEGORIES[int(c)].title()} perk {n}",
                content=f"{CATEGORIES[int(c)]} perk reward",
                category=CATEGORIES[int(c)],
                tags=[CATEGORIES[int(c)]],
                cost_points=100 + 50 * (n % 20),
                active=True,
                created_at=created,
                updated_at=created,
            )
            for n, (perk, c) in enumerate(zip(data["perk_ids"], data["perk_category"], strict=True))
        )
        await session.flush()
        # As a bulk load does: the secondary indexes are built once at the end, not row by row.
        indexes = list(Interaction.__table__.indexes)  # type: ignore[attr-defined]
        for index in indexes:
            await session.execute(text(f'DROP INDEX recommender."{index.name}"'))
        for kind, select in ((b"redemption", data["redemption"]), (b"click", ~data["redemption"])):
            for start in range(0, len(select), CHUNK):
                part = np.zeros(len(select), dtype=np.bool_)
                part[start : start + CHUNK] = select[start : start + CHUNK]
                await connection.copy_to_table(
                    "interactions",
                    schema_name="recommender",
                    columns=["brand_id", "member_id", "item_id", "kind", "weight", "occurred_at"],
                    source=io.BytesIO(_interaction_rows(data, brand, part, kind)),
                    format="binary",
                )
        for index in indexes:
            await session.run_sync(_create_index, index)
        await session.execute(text("ANALYZE recommender.interactions"))
    await database.dispose()


def _train_in_child(database_url: str, brand: str, out: Any) -> None:
    """The training job alone in a fresh process: its peak memory is the job's own."""

    async def run() -> dict[str, Any]:
        database = Database(database_url)
        started = time.perf_counter()
        async with database.unit_of_work() as session:
            trained = await service.train_brand(session, uuid.UUID(brand), NOW)
        seconds = time.perf_counter() - started
        await database.dispose()
        assert trained is not None
        return {"seconds": seconds, "metrics": trained.version.metrics}

    result = asyncio.run(run())
    result["peak_rss_mb"] = peak_rss_mb()
    out.put(result)


async def fold_in(database_url: str, data: dict[str, Any]) -> float:
    database = Database(database_url)
    chosen = [uuid.UUID(bytes=bytes(b)) for b in data["member_ids"][:: MEMBERS // FOLD_IN_MEMBERS]]
    async with database.unit_of_work() as session:
        await session.execute(update(MemberFacts).values(stale_since=None))
        await session.execute(
            update(MemberFacts).where(MemberFacts.member_id.in_(chosen)).values(stale_since=NOW)
        )
    started = time.perf_counter()
    done = 0
    while done < len(chosen):
        async with database.unit_of_work() as session:
            step = await service.fold_in(session, NOW, budget_seconds=30.0)
        if not step:
            break
        done += step
    seconds = time.perf_counter() - started
    await database.dispose()
    print(f"fold-in: {done:,} members in {seconds:.1f} s", flush=True)
    return done / seconds


def als_seconds(data: dict[str, Any]) -> float:
    from implicit.cpu.als import AlternatingLeastSquares  # type: ignore[import-untyped]
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    weights = np.where(data["redemption"], 3.0, 0.5).astype(np.float32)
    matrix = sp.csr_matrix(
        (np.log1p(weights), (data["owner"], data["perk"])), shape=(MEMBERS, PERKS)
    )
    started = time.perf_counter()
    with threadpool_limits(1, "blas"):
        AlternatingLeastSquares(factors=64, iterations=15, random_state=SEED).fit(
            matrix, show_progress=False
        )
    return time.perf_counter() - started


async def scale(server_url: str) -> dict[str, Any]:
    started = time.perf_counter()
    data = world()
    print(
        f"world: {MEMBERS:,} members, {PERKS:,} perks, {len(data['owner']):,} interactions "
        f"in {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    brand = uuid.uuid4()
    async with scratch_database(server_url, "kinfolk_bench_recommender_scale") as url:
        started = time.perf_counter()
        await load(url, data, brand)
        print(f"store loaded (binary COPY) in {time.perf_counter() - started:.0f} s", flush=True)
        queue: Any = multiprocessing.get_context("spawn").Queue()
        child = multiprocessing.get_context("spawn").Process(
            target=_train_in_child, args=(url, str(brand), queue)
        )
        child.start()
        trained = queue.get()
        child.join()
        print(
            f"training job: {trained['seconds']:.1f} s, "
            f"peak memory {trained['peak_rss_mb']:,.0f} MB; {json.dumps(trained['metrics'])}",
            flush=True,
        )
        per_second = await fold_in(url, data)
    anchor = als_seconds(data)
    print(f"anchor: implicit ALS (64 factors, 15 iterations) fit in {anchor:.1f} s", flush=True)
    return {"train": trained, "anchor": anchor, "fold_in_per_second": per_second}


def main() -> None:
    with servers() as urls:
        result = asyncio.run(scale(urls.database_url))
    trained = result["train"]
    report(
        "recommender_scale",
        value=trained["seconds"],
        unit=f"seconds to train ({MEMBERS:,} members, {PERKS:,} perks, "
        f"{INTERACTIONS:,} interactions)",
        anchor="implicit ALS fit on the same matrix",
        anchor_value=result["anchor"],
        target=f"training under {TARGET_SECONDS:.0f} s",
        peak_rss_mb=round(trained["peak_rss_mb"]),
        fold_in_members_per_second=round(result["fold_in_per_second"], 1),
        metrics=trained["metrics"],
    )


if __name__ == "__main__":
    main()
