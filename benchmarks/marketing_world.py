"""A brand of 1,000,000 members with a year of activity, in marketing's own store: the member
360 (`marketing.members`) and the journal (`marketing.journal`), for the export and segment
preview benchmarks.

The members are the simulator's (`simulator.world.make_members`: tastes, purchase rates, churn,
profiles) and so are their orders (`purchase_batches`: a year of them, about 2.6 per member).
Each order is a `purchase` journal row with the categories of its lines; each daily or
occasional poster's posts are `post` rows. The 360 rows are the aggregates of the same orders
(spend over the windows, order count, first and last purchase, categories bought), computed in
numpy rather than by the projection statement, which would take an hour at this size; consents,
tiers, points and scores follow simple rules from the same arrays. Both tables are loaded with
CSV COPY, their indexes built after.

KINFOLK_BENCH_MEMBERS shrinks the brand for a quick check.
"""

from __future__ import annotations

import io
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import text

from services.demo.members import CATEGORIES, FIRST_NAMES, LAST_NAMES, LOCALES, SKIN_TYPES
from services.demo.members import TIME_ZONES as PLACES
from services.kernel.db import Database, driver_connection
from services.marketing.models import JournalEntry, MemberView
from simulator.world import (
    SECONDS_PER_DAY,
    WorldParams,
    external_id,
    make_catalog,
    make_members,
    purchase_batches,
)

MEMBERS = int(os.environ.get("KINFOLK_BENCH_MEMBERS", "1000000"))
SEED = 11
START = date(2025, 11, 1)
NOW = datetime(2026, 11, 1, tzinfo=UTC)  # the end of the simulated year
# Consent shares: most members accept email, fewer SMS and push.
CONSENT_SHARES = {"email_marketing": 0.75, "sms_marketing": 0.30, "push": 0.45}

_MEMBER_COLUMNS = [
    "brand_id", "member_id", "external_id", "email", "display_name", "locale", "time_zone",
    "birthday", "status", "traits", "interests", "consents", "joined_at", "tier_id", "tier",
    "tier_since", "points_available", "points_pending", "points_lifetime",
    "spend_lifetime_minor", "spend_year_minor", "spend_30d_minor", "spend_90d_minor",
    "spend_365d_minor", "order_count", "first_purchase_at", "last_purchase_at",
    "categories_bought", "redemptions", "posts", "comments", "reactions", "prompts_answered",
    "experiences_attended", "last_active_at", "rfm_recency", "rfm_frequency", "rfm_monetary",
    "churn_probability", "scored_at", "refreshed_at",
]  # fmt: skip
_JOURNAL_COLUMNS = [
    "event_id", "brand_id", "member_id", "kind", "occurred_at", "amount_minor", "categories",
    "ref",
]  # fmt: skip
TIERS = ("Insider", "VIB", "Rouge")


@dataclass(frozen=True)
class World:
    brand_id: uuid.UUID
    members: int
    journal_rows: int
    email_consented: int


def _iso(seconds: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Seconds since the world's start as `YYYY-MM-DDTHH:MM:SS+00`."""
    start = np.datetime64(START.isoformat(), "s")
    moments = start + seconds.astype("timedelta64[s]")
    return np.char.add(np.datetime_as_string(moments, unit="s"), "+00")


def _category_literals() -> list[str]:
    """Every set of categories (a bit mask) as a quoted PostgreSQL array literal for CSV."""
    literals = []
    for mask in range(1 << len(CATEGORIES)):
        names = [name for bit, name in enumerate(CATEGORIES) if mask & (1 << bit)]
        literals.append('"{' + ",".join(names) + '}"')
    return literals


def _quantile_scores(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Quintiles 1..5 by rank (ties share the lower rank's quintile)."""
    ranks = np.argsort(np.argsort(values, kind="stable"), kind="stable")
    return (1 + ranks * 5 // len(values)).astype(np.int64)


def _uuid_strings(rng: np.random.Generator, n: int) -> list[str]:
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    return [str(uuid.UUID(bytes=bytes(row))) for row in raw]


def _create_index(session: Any, index: Any) -> None:
    index.create(session.connection())


def _csv(rows: Iterator[tuple[str, ...]] | zip[tuple[str, ...]]) -> io.BytesIO:
    return io.BytesIO(("\n".join(map(",".join, rows)) + "\n").encode())


async def build(database_url: str) -> World:
    """Loads the brand into an empty, migrated database."""
    started = time.perf_counter()
    params = WorldParams(members=MEMBERS, days=365, seed=SEED, start=START)
    people = make_members(params)
    catalog = make_catalog(params)
    rng = np.random.default_rng(SEED)
    brand = uuid.uuid4()
    brand_text = str(brand)
    member_ids = _uuid_strings(rng, MEMBERS)
    member_array = np.asarray(member_ids, dtype=object)
    literals = np.asarray(_category_literals(), dtype=object)
    end = 365 * SECONDS_PER_DAY

    order_count = np.zeros(MEMBERS, dtype=np.int64)
    spend = {window: np.zeros(MEMBERS, dtype=np.int64) for window in ("all", 365, 90, 30, "year")}
    first = np.full(MEMBERS, -1, dtype=np.int64)
    last = np.full(MEMBERS, -1, dtype=np.int64)
    bought = np.zeros(MEMBERS, dtype=np.int64)
    year_start = int((datetime(NOW.year, 1, 1, tzinfo=UTC) - params.start_at).total_seconds())

    database = Database(database_url)
    journal_rows = 0
    async with database.unit_of_work() as session:
        connection = await driver_connection(session)
        # As a bulk load does: secondary indexes built once at the end, not row by row.
        indexes = [*JournalEntry.__table__.indexes, *MemberView.__table__.indexes]  # type: ignore[attr-defined]
        for index in indexes:
            await session.execute(text(f'DROP INDEX marketing."{index.name}"'))
        for batch in purchase_batches(params, people, catalog):
            n = len(batch)
            if n == 0:
                continue
            member = batch.member
            masks = np.bitwise_or.reduceat(
                (1 << batch.category.astype(np.int64)), batch.line_start[:-1]
            )
            np.add.at(order_count, member, 1)
            np.add.at(spend["all"], member, batch.amount_minor)
            for days in (365, 90, 30):
                recent = batch.at >= end - days * SECONDS_PER_DAY
                np.add.at(spend[days], member[recent], batch.amount_minor[recent])
            this_year = batch.at >= year_start
            np.add.at(spend["year"], member[this_year], batch.amount_minor[this_year])
            # Batches are sorted by member, then time: first and last orders by position.
            starts = np.flatnonzero(np.r_[True, member[1:] != member[:-1]])
            stops = np.r_[starts[1:], n] - 1
            first[member[starts]] = batch.at[starts]
            last[member[stops]] = batch.at[stops]
            np.bitwise_or.at(bought, member, masks)
            event_ids = [f"00000000-0000-4000-8000-{journal_rows + k:012x}" for k in range(n)]
            refs = [
                f"{external_id(SEED, int(m))}-{int(o)}"
                for m, o in zip(member, batch.ordinal, strict=True)
            ]
            rows = zip(
                event_ids,
                [brand_text] * n,
                member_array[member].tolist(),
                ["purchase"] * n,
                _iso(batch.at).tolist(),
                batch.amount_minor.astype(str).tolist(),
                literals[masks].tolist(),
                refs,
                strict=True,
            )
            await connection.copy_to_table(
                "journal", schema_name="marketing", columns=_JOURNAL_COLUMNS,
                source=_csv(rows), format="csv",
            )  # fmt: skip
            journal_rows += n
        # Posts: each poster's over their active days.
        active_days = np.maximum(365 - people.join_day, 0)
        posts = rng.poisson(people.posts_per_day * active_days)
        owner = np.repeat(np.arange(MEMBERS), posts)
        at = (people.join_day[owner] * SECONDS_PER_DAY) + (
            rng.random(len(owner)) * active_days[owner] * SECONDS_PER_DAY
        ).astype(np.int64)
        for low in range(0, len(owner), 200_000):
            part = slice(low, low + 200_000)
            k = len(owner[part])
            rows = zip(
                [f"00000000-0000-4000-9000-{journal_rows + j:012x}" for j in range(k)],
                [brand_text] * k,
                member_array[owner[part]].tolist(),
                ["post"] * k,
                _iso(at[part]).tolist(),
                [""] * k,
                [""] * k,
                [str(uuid.UUID(int=journal_rows + j)) for j in range(k)],
                strict=True,
            )
            await connection.copy_to_table(
                "journal", schema_name="marketing", columns=_JOURNAL_COLUMNS,
                source=_csv(rows), format="csv",
            )  # fmt: skip
            journal_rows += k
        post_last = np.full(MEMBERS, -1, dtype=np.int64)
        np.maximum.at(post_last, owner, at)
        print(
            f"journal: {journal_rows:,} rows in {time.perf_counter() - started:.0f} s",
            flush=True,
        )

        # The 360.
        consent_draws = {p: rng.random(MEMBERS) < s for p, s in CONSENT_SHARES.items()}
        consent_mask = np.zeros(MEMBERS, dtype=np.int64)
        for i, draw in enumerate(consent_draws.values()):
            consent_mask |= draw.astype(np.int64) << i
        consent_literals = []
        for mask in range(1 << len(CONSENT_SHARES)):
            names = [p for i, p in enumerate(CONSENT_SHARES) if mask & (1 << i)]
            consent_literals.append('"{' + ",".join(names) + '}"')
        consents = np.asarray(consent_literals, dtype=object)[consent_mask]
        favourite = people.tastes >= 0.2
        top = np.argmax(people.tastes, axis=1)
        favourite[np.arange(MEMBERS), top] = True
        interest_mask = (favourite * (1 << np.arange(len(CATEGORIES)))).sum(axis=1)
        interests = literals[interest_mask]
        points_lifetime = spend["all"] // 100
        points_available = points_lifetime * 3 // 5
        # Tiers by the year's spend: EUR 300 and EUR 1,000.
        tier_index = np.where(spend[365] >= 100_000, 2, np.where(spend[365] >= 30_000, 1, 0))
        tier_ids = [str(uuid.uuid4()) for _ in TIERS]
        tier_id = np.asarray(tier_ids, dtype=object)[tier_index]
        tier_name = np.asarray(TIERS, dtype=object)[tier_index]
        recency = np.where(last >= 0, last, -end)
        rfm_r = _quantile_scores(recency)
        rfm_f = _quantile_scores(order_count)
        rfm_m = _quantile_scores(spend["all"])
        joined_at = people.join_day.astype(np.int64) * SECONDS_PER_DAY
        days_quiet = (end - np.maximum(last, joined_at)) / SECONDS_PER_DAY
        churn = np.round(1.0 / (1.0 + np.exp(-(days_quiet - 90.0) / 30.0)), 4)
        joined = people.join_day.astype(np.int64) * SECONDS_PER_DAY + 9 * 3600
        last_active = np.maximum(last, post_last)
        birthday = (people.birthday - date(1970, 1, 1).toordinal()).astype("datetime64[D]")
        first_names = np.asarray(FIRST_NAMES, dtype=object)[people.first_name]
        last_names = np.asarray(LAST_NAMES, dtype=object)[people.last_name]
        skin = np.asarray(['"{""skin_type"": ""' + s + '""}"' for s in SKIN_TYPES], dtype=object)[
            people.skin_type
        ]
        places = np.asarray(PLACES, dtype=object)[people.place]
        locales = np.asarray(LOCALES, dtype=object)[people.place % len(LOCALES)]
        now_text = NOW.isoformat()

        def when(values: np.ndarray[Any, Any]) -> list[str]:
            texts = _iso(np.maximum(values, 0)).astype(object)
            texts[values < 0] = ""
            return list(texts.tolist())

        chunk = 100_000
        for low in range(0, MEMBERS, chunk):
            s = slice(low, min(low + chunk, MEMBERS))
            k = s.stop - s.start
            index = range(s.start, s.stop)
            rows = zip(
                [brand_text] * k,
                member_ids[s],
                [external_id(SEED, i) for i in index],
                [f"member{i}@example.com" for i in index],
                (first_names[s] + " " + last_names[s]).tolist(),
                locales[s].tolist(),
                places[s].tolist(),
                np.datetime_as_string(birthday[s]).tolist(),
                ["active"] * k,
                skin[s].tolist(),
                interests[s].tolist(),
                consents[s].tolist(),
                when(joined[s]),
                tier_id[s].tolist(),
                tier_name[s].tolist(),
                when(joined[s]),
                points_available[s].astype(str).tolist(),
                ["0"] * k,
                points_lifetime[s].astype(str).tolist(),
                spend["all"][s].astype(str).tolist(),
                spend["year"][s].astype(str).tolist(),
                spend[30][s].astype(str).tolist(),
                spend[90][s].astype(str).tolist(),
                spend[365][s].astype(str).tolist(),
                order_count[s].astype(str).tolist(),
                when(first[s]),
                when(last[s]),
                literals[bought[s]].tolist(),
                ["0"] * k,
                posts[s].astype(str).tolist(),
                ["0"] * k,
                ["0"] * k,
                ["0"] * k,
                ["0"] * k,
                when(last_active[s]),
                rfm_r[s].astype(str).tolist(),
                rfm_f[s].astype(str).tolist(),
                rfm_m[s].astype(str).tolist(),
                churn[s].astype(str).tolist(),
                [now_text] * k,
                [now_text] * k,
                strict=True,
            )
            await connection.copy_to_table(
                "members", schema_name="marketing", columns=_MEMBER_COLUMNS,
                source=_csv(rows), format="csv",
            )  # fmt: skip
        print(f"member 360: {MEMBERS:,} rows in {time.perf_counter() - started:.0f} s", flush=True)
        for index in indexes:
            await session.run_sync(_create_index, index)
        await session.execute(text("ANALYZE marketing.journal"))
        await session.execute(text("ANALYZE marketing.members"))
    await database.dispose()
    print(f"indexes and statistics: done at {time.perf_counter() - started:.0f} s", flush=True)
    return World(
        brand_id=brand,
        members=MEMBERS,
        journal_rows=journal_rows,
        email_consented=int(consent_draws["email_marketing"].sum()),
    )


def days_ago(days: int) -> datetime:
    return NOW - timedelta(days=days)
