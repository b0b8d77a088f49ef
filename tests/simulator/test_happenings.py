"""The world's prompts and experiences: generated deterministically from the members' hidden
tastes, then loaded into a simulated brand through the community's own paths, resumably."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import fields, replace
from datetime import date, timedelta
from typing import Any

import numpy as np
import orjson
import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.experiences.models import (
    Booking,
    BookingStatus,
    Experience,
    ExperienceReview,
    ExperienceSession,
)
from services.community.members.projection import apply_member_events
from services.community.models import OUTBOX, Post, Prompt
from services.demo.members import CATEGORIES
from services.kernel.db import Database
from services.kernel.events import parse_event
from services.kernel.runtime import Runtime
from services.kernel.settings import Settings
from services.members import service as members_service
from services.members.importing import NDJSON
from services.members.models import OUTBOX as MEMBERS_OUTBOX
from simulator import happenings, world
from simulator.happenings import (
    FAVOUR,
    UPCOMING_DAYS,
    ExperiencePlan,
    PromptPlan,
    load_happenings,
    plan_experiences,
    plan_prompts,
)
from simulator.records import member_ndjson
from simulator.world import SECONDS_PER_DAY
from tests.conftest import make_runtime, purge_brand

PARAMS = world.WorldParams(members=2_000, days=120, seed=3, start=date(2025, 3, 1))


def _arrays(plan: PromptPlan | ExperiencePlan) -> dict[str, Any]:
    return {f.name: getattr(plan, f.name) for f in fields(plan)}


def test_the_same_seed_makes_the_same_happenings() -> None:
    members = world.make_members(PARAMS)
    first = {**_arrays(plan_prompts(PARAMS, members)), **_arrays(plan_experiences(PARAMS, members))}
    again = {**_arrays(plan_prompts(PARAMS, members)), **_arrays(plan_experiences(PARAMS, members))}
    assert first.keys() == again.keys()
    for name, values in first.items():
        assert values.dtype == again[name].dtype, name
        assert np.array_equal(values, again[name]), name
    other_params = world.WorldParams(members=2_000, days=120, seed=4, start=date(2025, 3, 1))
    other = plan_prompts(other_params, world.make_members(other_params))
    assert not np.array_equal(other.answer_member, first["answer_member"])


def test_answers_come_from_members_who_favour_the_category() -> None:
    members = world.make_members(PARAMS)
    plan = plan_prompts(PARAMS, members)
    end = PARAMS.days * SECONDS_PER_DAY
    # Two a week, each open 10 to 14 days; the last ones still open when the days end.
    assert len(plan.category) == 35
    assert ((plan.ends_at - plan.starts_at) // SECONDS_PER_DAY).min() >= 10
    assert (plan.ends_at > end).sum() >= 2
    assert set(np.unique(plan.points)) == {0, happenings.PROMPT_POINTS}
    who, prompt, at = plan.answer_member, plan.answer_prompt, plan.answer_at
    category = plan.category[prompt]
    taste = members.tastes[who, category]
    assert len(who) > 150
    assert (taste >= FAVOUR).all()
    assert (members.reader[who] | (members.posts_per_day[who] > 0)).all()
    assert ((plan.starts_at[prompt] <= at) & (at < np.minimum(plan.ends_at[prompt], end))).all()
    assert ((members.join_day[who].astype(np.int64) + 1) * SECONDS_PER_DAY <= at).all()
    churn = members.churn_day[who].astype(np.int64)
    assert ((churn == world.NO_CHURN) | (at < churn * SECONDS_PER_DAY)).all()
    assert len(np.unique(prompt * PARAMS.members + who)) == len(who)  # one answer each
    assert (np.diff(at) >= 0).all()
    # Answerers like the category far more than the members at large do.
    for c in range(len(CATEGORIES)):
        mine = taste[category == c]
        if len(mine) > 20:
            assert mine.mean() > 2 * members.tastes[:, c].mean(), CATEGORIES[c]
    # Bodies differ, so the first pass never takes one for a copy of another.
    bodies = {happenings.answer_body(plan, row) for row in range(len(who))}
    assert len(bodies) == len(who)


def test_an_experience_has_one_session_at_a_moment() -> None:
    # A rerun recognises a chunk of sessions by its last session's experience and start: a twin
    # in the next chunk, loaded first by another worker, was taken for it (seen at 100,000
    # members, which drew 35 twins; 20,000 drew 7).
    params = replace(PARAMS, members=20_000, days=365, seed=1)
    plan = plan_experiences(params, world.make_members(params))
    moments = set(
        zip(plan.session_experience.tolist(), plan.session_starts_at.tolist(), strict=True)
    )
    assert len(moments) == len(plan.session_starts_at) > 600


def test_bookings_follow_tastes_and_places_and_sessions_go_on_after_the_last_day() -> None:
    members = world.make_members(PARAMS)
    plan = plan_experiences(PARAMS, members)
    end = PARAMS.days * SECONDS_PER_DAY
    starts, session = plan.session_starts_at, plan.booking_session
    assert (np.diff(starts) >= 0).all()
    assert (plan.session_scheduled_at < starts).all()
    assert (plan.session_scheduled_at < end).all()
    upcoming = (starts >= end) & (starts < end + UPCOMING_DAYS * SECONDS_PER_DAY)
    assert upcoming.sum() >= 4
    assert np.isin(np.flatnonzero(upcoming), session).any()  # seats booked next week
    experience = plan.session_experience[session]
    who = plan.booking_member
    assert (members.tastes[who, plan.experience_category[experience]] >= FAVOUR).all()
    place = plan.experience_place[experience]
    in_person = place >= 0
    assert (members.place[who][in_person] == place[in_person]).all()
    at = plan.booking_at
    assert ((plan.session_scheduled_at[session] <= at) & (at < starts[session])).all()
    assert (at < end).all()
    assert len(np.unique(session * PARAMS.members + who)) == len(who)
    cancelled = plan.booking_cancel_at >= 0
    assert ((at < plan.booking_cancel_at) & (plan.booking_cancel_at < starts[session]))[
        cancelled
    ].all()
    checked = plan.booking_check_in_at >= 0
    assert (plan.booking_check_in_at[checked] < end).all()
    reviewed = plan.booking_review_at >= 0
    assert (checked | ~reviewed).all()
    assert (plan.booking_review_at[reviewed] >= plan.session_ends_at[session][reviewed]).all()
    # Demand outgrows some sessions: their waitlists fill.
    asked = np.bincount(session, weights=plan.booking_seats, minlength=len(starts))
    assert (asked > plan.session_capacity).sum() >= 3
    # Ratings follow the taste for the category.
    taste = members.tastes[who, plan.experience_category[experience]]
    high = plan.booking_rating >= 5
    assert taste[high].mean() > taste[plan.booking_rating <= 3].mean()


@pytest.fixture
async def committed(
    base_settings: Settings, engine_database: Database, redis: Redis
) -> AsyncIterator[tuple[Runtime, list[uuid.UUID]]]:
    """A runtime whose work commits, and the brands to purge at the end."""
    brands: list[uuid.UUID] = []
    yield make_runtime(base_settings, engine_database, redis), brands
    for brand_id in brands:
        await purge_brand(engine_database, brand_id)


async def _one(body: bytes) -> AsyncIterator[bytes]:
    yield body


async def _brand_with_members(
    runtime: Runtime, params: world.WorldParams, members: world.Members
) -> uuid.UUID:
    """A brand with the world's members, known to the community: what the simulator's brand,
    members and events phases leave (without the purchases, which the happenings do not need)."""
    async with runtime.database.unit_of_work() as session:
        brand, _ = await members_service.create_brand(session, f"Sim {uuid.uuid4().hex[:8]}")
        body = member_ndjson(params, members, 0, params.members)
        report = await members_service.import_members(
            session, brand.id, NDJSON, _one(body), dry_run=False
        )
        assert report.imported == params.members
    async with runtime.database.unit_of_work() as session:
        table = MEMBERS_OUTBOX.table
        rows = await session.scalars(
            select(table.c.payload).where(table.c.brand_id == brand.id).order_by(table.c.id)
        )
        # As the community's consumer of member events would.
        await apply_member_events(session, [parse_event(orjson.dumps(p)) for p in rows])
    return brand.id


async def _count(session: AsyncSession, statement: Any) -> int:
    return int(await session.scalar(statement) or 0)


async def test_happenings_load_through_the_community_and_a_rerun_resumes(
    committed: tuple[Runtime, list[uuid.UUID]], monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime, brands = committed
    params = world.WorldParams(
        members=300, days=60, seed=5, start=date.today() - timedelta(days=60)
    )
    members = world.make_members(params)
    brand_id = await _brand_with_members(runtime, params, members)
    brands.append(brand_id)
    prompt_plan = plan_prompts(params, members)
    plan = plan_experiences(params, members)
    answers, sessions = len(prompt_plan.answer_at), len(plan.session_starts_at)

    # Small chunks, and a first load that breaks off in its second chunk of sessions.
    monkeypatch.setattr(happenings, "ANSWER_CHUNK", 7)
    monkeypatch.setattr(happenings, "SESSION_CHUNK", 4)
    replay = happenings._replay_session
    calls = 0

    def crashing(*args: Any, **kwargs: Any) -> uuid.UUID:
        nonlocal calls
        calls += 1
        if calls == 6:
            raise RuntimeError("the machine went away")
        return replay(*args, **kwargs)

    monkeypatch.setattr(happenings, "_replay_session", crashing)
    with pytest.raises(RuntimeError, match="went away"):
        await load_happenings(runtime, params, members, brand_id)
    monkeypatch.setattr(happenings, "_replay_session", replay)
    counts = await load_happenings(runtime, params, members, brand_id)
    assert counts.chunks_skipped == -(-answers // 7) + 1

    async with runtime.database.unit_of_work() as session:
        ids = await members_service.member_ids(
            session, brand_id, [world.external_id(params.seed, i) for i in range(params.members)]
        )
        index = {member_id: int(ext.split("-")[1]) for ext, member_id in ids.items()}
        prompts = (
            await session.scalars(
                select(Prompt).where(Prompt.brand_id == brand_id).order_by(Prompt.starts_at)
            )
        ).all()
        assert [p.title for p in prompts] == [
            happenings.prompt_title(prompt_plan, k) for k in range(len(prompt_plan.category))
        ]
        posted = (
            await session.execute(
                select(Post.prompt_id, Post.author_id, Post.created_at, Post.status).where(
                    Post.brand_id == brand_id, Post.prompt_id.is_not(None)
                )
            )
        ).all()
        position: dict[uuid.UUID | None, int] = {p.id: k for k, p in enumerate(prompts)}
        assert sorted(
            (position[prompt], index[author], int((at - params.start_at).total_seconds()))
            for prompt, author, at, _ in posted
        ) == sorted(
            zip(
                prompt_plan.answer_prompt.tolist(),
                prompt_plan.answer_member.tolist(),
                prompt_plan.answer_at.tolist(),
                strict=True,
            )
        )
        assert sum(p.answer_count for p in prompts) == answers
        assert {status for *_, status in posted} == {"published"}
        table = OUTBOX.table
        answered = await _count(
            session,
            select(func.count())
            .select_from(table)
            .where(table.c.brand_id == brand_id, table.c.type == "prompt.answered"),
        )
        assert answered == answers

        rows = (
            await session.scalars(
                select(ExperienceSession).where(ExperienceSession.brand_id == brand_id)
            )
        ).all()
        assert len(rows) == sessions
        end = params.start_at + timedelta(days=params.days)
        booked = (await session.scalars(select(Booking).where(Booking.brand_id == brand_id))).all()
        by_session: dict[uuid.UUID, list[Booking]] = {}
        for booking in booked:
            by_session.setdefault(booking.session_id, []).append(booking)
        for row in rows:
            held = [b for b in by_session.get(row.id, []) if b.status == BookingStatus.CONFIRMED]
            # Capacity is never exceeded: the seats held are the confirmed bookings' seats.
            assert row.seats_taken == sum(b.seats for b in held) <= row.capacity
            for booking in by_session.get(row.id, []):
                assert booking.created_at < min(row.starts_at, end)
                if booking.checked_in_at is not None:
                    assert booking.status == BookingStatus.CONFIRMED
                    assert row.ends_at <= end + timedelta(hours=6)
        upcoming = [row for row in rows if row.starts_at >= end]
        assert len(upcoming) == counts.upcoming_sessions >= 4
        assert sum(row.seats_taken for row in upcoming) > 0
        reviews = (
            await session.scalars(
                select(ExperienceReview).where(ExperienceReview.brand_id == brand_id)
            )
        ).all()
        attended = {(b.session_id, b.member_id) for b in booked if b.checked_in_at is not None}
        assert {(r.session_id, r.member_id) for r in reviews} <= attended
        experiences = await _count(
            session,
            select(func.count()).select_from(Experience).where(Experience.brand_id == brand_id),
        )
    assert (counts.prompts, counts.answers, counts.answers_held) == (len(prompts), answers, 0)
    assert (counts.experiences, counts.sessions) == (experiences, sessions)
    statuses = [b.status for b in booked]
    assert counts.confirmed == statuses.count(BookingStatus.CONFIRMED) > 0
    assert counts.waitlisted == statuses.count(BookingStatus.WAITLISTED)
    assert counts.cancelled == statuses.count(BookingStatus.CANCELLED) > 0
    assert counts.check_ins == len(attended) > 0
    assert counts.reviews == len(reviews) > 0

    # A rerun finds every chunk loaded and writes nothing.
    again = await load_happenings(runtime, params, members, brand_id)
    assert again.chunks_skipped == -(-answers // 7) + -(-sessions // 4)
    assert {**again.as_dict(), "chunks_skipped": 0, "answers_held": 0} == {
        **counts.as_dict(),
        "chunks_skipped": 0,
    }
    async with runtime.database.unit_of_work() as session:
        assert await _count(
            session, select(func.count()).select_from(Post).where(Post.brand_id == brand_id)
        ) == len(posted) + await _count(
            session,
            select(func.count())
            .select_from(Post)
            .where(Post.brand_id == brand_id, Post.prompt_id.is_(None)),
        )
        assert await _count(
            session, select(func.count()).select_from(Booking).where(Booking.brand_id == brand_id)
        ) == len(booked)


def test_a_member_who_cancels_does_not_check_in() -> None:
    # Drawn apart, one booking of this world was checked in minutes before its session and
    # cancelled after that, which the community refuses: the whole load failed.
    params = replace(PARAMS, members=5_000, days=365, seed=1)
    plan = plan_experiences(params, world.make_members(params))

    cancels = plan.booking_cancel_at >= 0
    assert cancels.sum() > 500
    assert not (cancels & (plan.booking_check_in_at >= 0)).any()
    assert not (cancels & (plan.booking_review_at >= 0)).any()
    assert (plan.booking_check_in_at >= 0).sum() > 2_000
