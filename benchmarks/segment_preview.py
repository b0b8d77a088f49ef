"""Segment previews on a 1,000,000-member brand: the count and a sample of 20 members, for a
few realistic rules, next to a plain `SELECT count(*)` with the same conditions.

The brand is `benchmarks.marketing_world` (the simulator's members and a year of their orders
in marketing's store). Each rule goes through the real preview (`segments.service.preview`:
checked, compiled, counted and sampled) several times; the anchor is a count written by hand
over the same tables with the same conditions, run the same number of times in the same run.

Target (issue #8): a preview of a million-member brand in under 2 s.
Run: python -m benchmarks.segment_preview   (KINFOLK_BENCH_MEMBERS=50000 for a quick check)
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import Select, any_, func, literal, or_, select

from benchmarks._harness import report, scratch_database, servers
from benchmarks.marketing_world import MEMBERS, NOW, World, build
from services.kernel.db import Database
from services.marketing.models import ActivityKind, JournalEntry, MemberView, SegmentPurpose
from services.marketing.segments import service as segments

RUNS = int(os.environ.get("KINFOLK_BENCH_RUNS", "15"))
TARGET_SECONDS = 2.0


def _bought(world: World, days: int, at_least: int, category: str | None = None) -> Any:
    """Members with at least `at_least` purchases over the last `days` (of `category`)."""
    conditions = [
        JournalEntry.brand_id == world.brand_id,
        JournalEntry.kind == ActivityKind.PURCHASE,
        JournalEntry.occurred_at > NOW - timedelta(days=days),
    ]
    if category is not None:
        conditions.append(literal(category) == any_(JournalEntry.categories))
    return (
        select(JournalEntry.member_id)
        .where(*conditions)
        .group_by(JournalEntry.member_id)
        .having(func.count() >= at_least)
    )


def _cases(world: World) -> list[tuple[str, dict[str, Any], SegmentPurpose, Select[Any]]]:
    """(name, rule, purpose, the hand-written count)."""
    brand = MemberView.brand_id == world.brand_id
    consented = MemberView.consents.contains(["email_marketing"])
    skincare = _bought(world, 90, 2, "skincare").subquery()
    recent = _bought(world, 30, 1).subquery()
    return [
        (
            "field: spend over the last year >= EUR 300",
            {"field": "spend_365d_minor", "op": "gte", "value": 30_000},
            SegmentPurpose.ANALYTICS,
            select(func.count()).where(brand, MemberView.spend_365d_minor >= 30_000),
        ),
        (
            "event: 2+ skincare purchases in 90 days",
            {
                "event": "purchase",
                "where": {"category": "skincare"},
                "within_days": 90,
                "count": {"op": "gte", "value": 2},
            },
            SegmentPurpose.ANALYTICS,
            select(func.count())
            .select_from(MemberView)
            .join(skincare, skincare.c.member_id == MemberView.member_id)
            .where(brand),
        ),
        (
            "and/or, email consent: (VIB or Rouge) and (bought in 30 days or 500+ points)",
            {
                "and": [
                    {"field": "tier", "op": "in", "value": ["VIB", "Rouge"]},
                    {
                        "or": [
                            {"event": "purchase", "within_days": 30},
                            {"field": "points_available", "op": "gte", "value": 500},
                        ]
                    },
                ]
            },
            SegmentPurpose.EMAIL_MARKETING,
            select(func.count())
            .select_from(MemberView)
            .outerjoin(recent, recent.c.member_id == MemberView.member_id)
            .where(
                brand,
                consented,
                MemberView.tier.in_(["VIB", "Rouge"]),
                or_(recent.c.member_id.is_not(None), MemberView.points_available >= 500),
            ),
        ),
    ]


async def _timed(runs: int, call: Callable[[], Awaitable[int]]) -> tuple[list[float], int]:
    await call()  # warm: plans and caches, as a preview after the first keystroke would be
    seconds: list[float] = []
    count = 0
    for _ in range(runs):
        started = time.perf_counter()
        count = await call()
        seconds.append(time.perf_counter() - started)
    return seconds, count


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


async def bench(server_url: str) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    async with scratch_database(server_url, "kinfolk_bench_segment_preview") as url:
        world = await build(url)
        database = Database(url)
        for name, rule, purpose, anchor in _cases(world):

            async def preview(
                rule: dict[str, Any] = rule, purpose: SegmentPurpose = purpose
            ) -> int:
                async with database.unit_of_work() as session:
                    found = await segments.preview(
                        session, world.brand_id, rule, purpose=purpose, now=NOW
                    )
                    assert len(found.sample) == min(20, found.count)
                    return found.count

            async def count(anchor: Select[Any] = anchor) -> int:
                async with database.unit_of_work() as session:
                    return int(await session.scalar(anchor) or 0)

            seconds, found = await _timed(RUNS, preview)
            anchor_seconds, expected = await _timed(RUNS, count)
            assert found == expected, (name, found, expected)
            result = {
                "rule": name,
                "members": found,
                "median_s": statistics.median(seconds),
                "p99_s": p99(seconds),
                "anchor_median_s": statistics.median(anchor_seconds),
                "anchor_p99_s": p99(anchor_seconds),
            }
            results.append(result)
            print(
                f"{name}: {found:,} members; preview median {result['median_s']:.3f} s, "
                f"p99 {result['p99_s']:.3f} s; plain count median "
                f"{result['anchor_median_s']:.3f} s, p99 {result['anchor_p99_s']:.3f} s",
                flush=True,
            )
        await database.dispose()
    return results


def main() -> None:
    with servers() as urls:
        results = asyncio.run(bench(urls.database_url))
    slowest = max(results, key=lambda r: r["p99_s"])
    report(
        "segment_preview",
        value=slowest["p99_s"],
        unit=f"seconds, p99 of the slowest rule's preview (count + 20 members) over "
        f"{MEMBERS:,} members, {RUNS} runs each",
        anchor="plain SELECT count(*) with the same conditions, p99",
        anchor_value=slowest["anchor_p99_s"],
        target=f"< {TARGET_SECONDS:.0f} s",
        rules={
            r["rule"]: {
                k: round(v, 4) if isinstance(v, float) else v for k, v in r.items() if k != "rule"
            }
            for r in results
        },
    )


if __name__ == "__main__":
    main()
