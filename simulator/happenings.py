"""The brand's prompts and experiences in a simulated world, and the members who take part,
driven by their hidden tastes; and loading them through the community service's own paths.

**Generation** (numpy, deterministic per seed; streams 200-299 of `world._rng`):

- Prompts: one every `PROMPT_EVERY_DAYS` from the first day, each about a category, open for
  `PROMPT_OPEN_DAYS` from 09:00 UTC, for every member; about half advertise points. The last
  ones are still open when the simulated days end, so the brand has prompts to answer now.
- Answers: members who take part in the community (readers and posters) and favour the
  prompt's category (it makes up at least `FAVOUR` of their tastes, as their stated interests
  do) answer with a chance that grows with that taste (the daily posters more often), at most
  once each, soon after it opens (an exponential delay), within its window and the simulated
  days, after the day they joined and before they churn.
- Experiences: a masterclass or workshop per category in each of the demo's places (its time
  zones: Paris, London, New York, Los Angeles, Tokyo), and an online Q&A per category; all free.
- Sessions: `sessions_per_week` of them, in the evening (local time) of days spread over the
  simulated days and the `UPCOMING_DAYS` after the last one, each scheduled 10 to 28 days
  before it starts, with a capacity.
- Bookings: members of the session's place (anyone, online) who favour its category, drawn by
  taste, about the capacity times a demand (so some sessions fill and have a waitlist); booked
  between the scheduling and the start (and before the simulated days end), once joined and not
  churned. A few cancel. Each booker means to attend (most) and to review (some), with a rating
  that follows their taste; who actually attends is the service's answer: a booker who meant to
  come checks in (before the simulated days end) if their booking is confirmed by then.

**Loading** (`load_happenings`), in chunks, each committed on its own and recognised when a rerun
finds it loaded (so nothing is loaded twice): the prompts (staff writing each the day before it
opens: `prompts.service.create_prompt`), the answers (`prompts.bulk.load_answers`, COPY:
hundreds of thousands at a million members), the experiences (staff: `experiences.service
.create_experience`), then the sessions with everything that happens on them, step by step at
each step's moment through `experiences.bulk.SessionsReplay` (the online rules: capacity, the
waitlist moving up, the check-in window; COPY at the end of each chunk). The chunks of answers,
and of sessions, do not depend on each other: worker processes load them side by side when asked.
Every happening is at or before the end of the last simulated day; sessions after it are only
scheduled and booked. A refusal (which would be a bug here) raises, and its chunk writes nothing.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.access import Actor
from services.community.experiences import bulk as experiences_bulk
from services.community.experiences import service as experiences
from services.community.experiences.bulk import SessionsReplay
from services.community.experiences.lookup import get_experience
from services.community.experiences.models import (
    Booking,
    BookingStatus,
    Experience,
    ExperienceKind,
)
from services.community.experiences.schemas import (
    AddressPlace,
    BookingCreate,
    ExperienceCreate,
    OnlinePlace,
    ReviewCreate,
    SessionCreate,
)
from services.community.members.repository import CommunityMemberRepository
from services.community.models import AudienceKind, CommunityMember
from services.community.posts.schemas import PostCreate
from services.community.prompts import service as prompts
from services.community.prompts.bulk import (
    HistoricAnswer,
    find_prompt,
    has_answered,
    load_answers,
)
from services.community.prompts.schemas import PromptCreate
from services.demo.members import CATEGORIES
from services.demo.members import TIME_ZONES as PLACES
from services.kernel.auth import Scope, StaffPrincipal
from services.kernel.clock import utcnow
from services.kernel.db import Database
from services.kernel.pagination import PageRequest
from services.kernel.runtime import Runtime
from services.members import service as members_service
from simulator.chunks import WorldView
from simulator.workers import ChunkLoader, load_chunks
from simulator.world import (
    CATEGORY_SHARE,
    I8,
    I32,
    I64,
    NO_CHURN,
    SECONDS_PER_DAY,
    Bools,
    Members,
    WorldParams,
    _rng,
    external_id,
)

# Random streams (world.py uses 0-99; these are the happenings').
_PROMPTS, _ANSWERS, _SESSIONS, _BOOKINGS = 200, 201, 202, 203

FAVOUR = 0.2  # a member favours the categories making up at least this share of their tastes
PROMPT_EVERY_DAYS = 3.5  # two a week
PROMPT_OPEN_DAYS = (10, 15)  # a window of 10 to 14 days
PROMPT_HOUR = 9  # opens at 09:00 UTC
PROMPT_POINTS = 50  # what the prompts with points advertise
ANSWER_RATE = 0.12  # chance of answering = rate x the member's taste for the category
DAILY_POSTER_BOOST = 3.0
ANSWER_DELAY_DAYS = 2.0  # mean time to answer after a prompt opens
ANSWER_CHUNK = 20_000  # answers per transaction

UPCOMING_DAYS = 14  # sessions are scheduled this far past the last simulated day
FIRST_SESSION_DAY = 3
ONLINE_SHARE = 0.2  # of sessions
SCHEDULED_DAYS_BEFORE = (10, 28)
IN_PERSON_CAPACITY = (8, 25)  # inclusive, exclusive
ONLINE_CAPACITY = (40, 121)
# Booking attempts = capacity x a lognormal demand (online: x ONLINE_DEMAND); some attempts
# fall away (members who joined later or churned), and most sessions fill, some with a waitlist.
DEMAND_MEDIAN = 1.4
DEMAND_SIGMA = 0.4
ONLINE_DEMAND = 0.7
TWO_SEATS_SHARE = 0.15  # in-person bookings that bring a friend
CANCEL_SHARE = 0.08
ATTEND_SHARE = 0.85
REVIEW_SHARE = 0.35
SESSION_CHUNK = 40  # sessions (with their bookings) per transaction
_BOOK, _CANCEL, _CHECK_IN, _REVIEW = range(4)  # a session's steps; at one moment, in this order

_KINDS = (ExperienceKind.MASTERCLASS, ExperienceKind.WORKSHOP, ExperienceKind.MEETUP)
_DURATION_MINUTES = {
    ExperienceKind.MASTERCLASS: 90,
    ExperienceKind.WORKSHOP: 120,
    ExperienceKind.MEETUP: 60,
}
# The demo's places (services.demo.members.TIME_ZONES), with a store in each.
CITIES = {
    "Europe/Paris": ("Paris", "Flagship store, 12 Rue de Rivoli, Paris"),
    "Europe/London": ("London", "Kinfolk Beauty, 5 Carnaby Street, London"),
    "America/New_York": ("New York", "Kinfolk Beauty, 120 Spring Street, New York"),
    "America/Los_Angeles": ("Los Angeles", "Kinfolk Beauty, 8500 Melrose Avenue, Los Angeles"),
    "Asia/Tokyo": ("Tokyo", "Kinfolk Beauty, 4-12 Jingumae, Shibuya, Tokyo"),
}
ONLINE_TIME_ZONE = "Europe/London"
_PROMPT_TITLES = {
    "skincare": (
        "Your morning skincare routine, step by step",
        "The serum that changed your skin",
        "The SPF you actually love wearing",
    ),
    "makeup": (
        "Show us your five-minute face",
        "The lipstick you always reach for",
        "Your go-to look for a night out",
    ),
    "fragrance": (
        "The scent that gets you compliments",
        "How do you layer your fragrances?",
        "Your signature scent this season",
    ),
    "hair": (
        "Your wash-day routine",
        "The product that tamed your frizz",
        "Show us your favourite hairstyle",
    ),
    "bath": (
        "Your ideal Sunday soak",
        "The body care you never skip",
        "Your ritual to unwind after a long day",
    ),
    "tools": (
        "The brush you can't live without",
        "How do you keep your tools clean?",
        "The gadget worth every cent",
    ),
}
_OPENINGS = (
    "Easy one",
    "Been waiting for this question",
    "Honestly",
    "After years of trying everything",
    "Current favourite",
    "My answer changes every season, but right now",
    "Small thing, big difference",
    "Not fancy, but it works",
)
_DETAILS = {
    "skincare": (
        "a gentle cleanser, the vitamin C serum, then a light moisturiser and SPF",
        "a hydrating toner patted in, retinol twice a week, lots of sleep",
        "double cleansing at night and a barrier cream when it is cold",
    ),
    "makeup": (
        "a sheer tint, cream blush on the cheeks and lips, brow gel, done",
        "a matte red lip and nothing else on the face",
        "a soft smoky eye with a brown pencil smudged out with a brush",
    ),
    "fragrance": (
        "a woody base with a citrus top, two sprays on the wrists",
        "vanilla on the skin and a rose mist on the scarf",
        "one fresh scent for the day and a warm amber for the evening",
    ),
    "hair": (
        "a leave-in on damp hair and the oil only on the ends",
        "a silk pillowcase and a weekly mask, no heat at all",
        "diffusing on low with a curl cream scrunched in",
    ),
    "bath": (
        "a long soak with the salts, a candle and no phone",
        "a body scrub on Sundays and the rich butter every night",
        "a hot shower with the eucalyptus oil and an early night",
    ),
    "tools": (
        "a damp sponge, pressed, never swiped",
        "a dense kabuki brush for the base and a small one for concealer",
        "a gua sha stone from the fridge every morning",
    ),
}
_REVIEWS = {
    1: "Not what I hoped for.",
    2: "Some good moments, but too rushed.",
    3: "Nice evening, learnt a thing or two.",
    4: "Really good session, friendly hosts, great tips.",
    5: "Loved every minute, I'm booking the next one!",
}


# --- Generation ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PromptPlan:
    """The brand's prompts in time order, and the answers to them (sorted by time)."""

    category: I8
    title: I8  # index into the category's titles
    starts_at: I64  # seconds since the world's start
    ends_at: I64
    points: I32  # 0: none advertised
    answer_prompt: I64
    answer_member: I64
    answer_at: I64
    answer_serial: I32  # the answer's number within its prompt (1-based): keeps bodies apart


@dataclass(frozen=True, slots=True)
class ExperiencePlan:
    """The catalog (fixed), the sessions in start order, and the booking attempts on them
    (grouped by session, in time order within it)."""

    experience_category: I8
    experience_place: I8  # index into PLACES; -1: online
    experience_kind: I8  # index into _KINDS
    session_experience: I32
    session_scheduled_at: I64  # seconds since the world's start
    session_starts_at: I64
    session_ends_at: I64
    session_capacity: I32
    session_max_seats: I8
    booking_session: I64
    booking_member: I64
    booking_at: I64
    booking_seats: I8
    booking_cancel_at: I64  # -1: keeps it
    booking_check_in_at: I64  # -1: does not mean to come
    booking_review_at: I64  # -1: no review (or not meant to come)
    booking_rating: I8


def favours(members: Members, category: int) -> Bools:
    favoured: Bools = members.tastes[:, category] >= FAVOUR
    return favoured


def _active_at(members: Members, member: I64, at: I64) -> Bools:
    """Joined the day before `at` at the latest, and not churned by then."""
    joined = (members.join_day[member].astype(np.int64) + 1) * SECONDS_PER_DAY <= at
    churn = members.churn_day[member].astype(np.int64)
    staying = (churn == NO_CHURN) | (at < churn * SECONDS_PER_DAY)
    active: Bools = joined & staying
    return active


def plan_prompts(params: WorldParams, members: Members) -> PromptPlan:
    rng = _rng(params, _PROMPTS)
    count = int(np.ceil(params.days / PROMPT_EVERY_DAYS))
    start_day = np.floor(np.arange(count) * PROMPT_EVERY_DAYS).astype(np.int64)
    shares = np.asarray(CATEGORY_SHARE)
    category = rng.choice(len(CATEGORIES), size=count, p=shares / shares.sum()).astype(np.int8)
    # Each category's titles in turn, so consecutive prompts on one category differ.
    title = np.zeros(count, dtype=np.int8)
    for c in range(len(CATEGORIES)):
        rows = np.flatnonzero(category == c)
        title[rows] = np.arange(len(rows)) % len(_PROMPT_TITLES[CATEGORIES[c]])
    open_days = rng.integers(*PROMPT_OPEN_DAYS, count)
    starts_at = start_day * SECONDS_PER_DAY + PROMPT_HOUR * 3600
    ends_at = starts_at + open_days * SECONDS_PER_DAY
    points = np.where(rng.random(count) < 0.5, PROMPT_POINTS, 0).astype(np.int32)

    takes_part = members.reader | (members.posts_per_day > 0)
    daily = members.posts_per_day > 0.2
    end = params.days * SECONDS_PER_DAY
    parts: list[tuple[I64, I64, I64]] = []
    for k in range(count):
        c = int(category[k])
        answers = _rng(params, _ANSWERS, k)
        pool = np.flatnonzero(takes_part & favours(members, c))
        chance = (
            ANSWER_RATE * members.tastes[pool, c] * np.where(daily[pool], DAILY_POSTER_BOOST, 1)
        )
        who = pool[answers.random(len(pool)) < np.minimum(chance, 0.95)]
        delay = answers.exponential(ANSWER_DELAY_DAYS * SECONDS_PER_DAY, len(who)).astype(np.int64)
        at = starts_at[k] + delay
        keep = (at < min(int(ends_at[k]), end)) & _active_at(members, who, at)
        who, at = who[keep], at[keep]
        parts.append((np.full(len(who), k, dtype=np.int64), who.astype(np.int64), at))
    prompt = np.concatenate([p for p, _, _ in parts]) if parts else np.zeros(0, np.int64)
    member = np.concatenate([m for _, m, _ in parts]) if parts else np.zeros(0, np.int64)
    at = np.concatenate([a for _, _, a in parts]) if parts else np.zeros(0, np.int64)
    order = np.lexsort((member, prompt, at))
    prompt, member, at = prompt[order], member[order], at[order]
    serial = np.zeros(len(prompt), dtype=np.int32)
    for k in range(count):
        rows = np.flatnonzero(prompt == k)
        serial[rows] = np.arange(1, len(rows) + 1)
    return PromptPlan(
        category=category,
        title=title,
        starts_at=starts_at,
        ends_at=ends_at,
        points=points,
        answer_prompt=prompt,
        answer_member=member,
        answer_at=at,
        answer_serial=serial,
    )


def sessions_per_week(params: WorldParams) -> int:
    """A couple a week for a small brand, up to 40 at a million members (bookings are bound by
    capacity, not by members)."""
    return int(min(40, max(2, round(3 * np.sqrt(params.members / 1_000)))))


def experience_catalog() -> tuple[I8, I8, I8]:
    """(category, place, kind) of each experience: in-person ones per place and category, then
    an online one per category."""
    category, place, kind = [], [], []
    for p in range(len(PLACES)):
        for c in range(len(CATEGORIES)):
            category.append(c)
            place.append(p)
            kind.append((p + c) % 2)  # masterclass or workshop, alternating
    for c in range(len(CATEGORIES)):
        category.append(c)
        place.append(-1)
        kind.append(2)
    return (
        np.asarray(category, dtype=np.int8),
        np.asarray(place, dtype=np.int8),
        np.asarray(kind, dtype=np.int8),
    )


def _local_evening(params: WorldParams, day: int, time_zone: str, hour: int) -> int:
    """Seconds since the world's start of `hour`:00 local time on the world's day `day`."""
    local = (params.start + timedelta(days=day)).isoformat()
    moment = datetime.fromisoformat(f"{local}T{hour:02d}:00").replace(tzinfo=ZoneInfo(time_zone))
    return int((moment - params.start_at).total_seconds())


def plan_experiences(params: WorldParams, members: Members) -> ExperiencePlan:
    rng = _rng(params, _SESSIONS)
    category, place, kind = experience_catalog()
    per_week = sessions_per_week(params)
    past_days = max(params.days - FIRST_SESSION_DAY, 0)
    past = round(per_week * past_days / 7)
    upcoming = max(2, round(per_week * UPCOMING_DAYS / 7))
    day = np.concatenate(
        [
            FIRST_SESSION_DAY + rng.integers(0, max(past_days, 1), past),
            params.days + rng.integers(0, UPCOMING_DAYS, upcoming),
        ]
    )
    n = len(day)
    online = rng.random(n) < ONLINE_SHARE
    shares = np.asarray(CATEGORY_SHARE)
    c = rng.choice(len(CATEGORIES), size=n, p=shares / shares.sum())
    p = rng.integers(0, len(PLACES), n)
    in_person_index = p * len(CATEGORIES) + c
    online_index = len(PLACES) * len(CATEGORIES) + c
    experience = np.where(online, online_index, in_person_index).astype(np.int32)
    hour = rng.choice([11, 18, 19], size=n)
    starts = np.asarray(
        [
            _local_evening(
                params,
                int(day[s]),
                ONLINE_TIME_ZONE if online[s] else PLACES[int(place[experience[s]])],
                int(hour[s]),
            )
            for s in range(n)
        ],
        dtype=np.int64,
    )
    minutes = np.asarray([_DURATION_MINUTES[_KINDS[k]] for k in kind], dtype=np.int64)
    ends = starts + minutes[experience] * 60
    end = params.days * SECONDS_PER_DAY
    lead = rng.integers(*SCHEDULED_DAYS_BEFORE, n) * SECONDS_PER_DAY + rng.integers(0, 8, n) * 3600
    scheduled = np.clip(starts - lead, 0, end - 3600)
    scheduled = np.minimum(scheduled, starts - 3600)
    capacity = np.where(
        online, rng.integers(*ONLINE_CAPACITY, n), rng.integers(*IN_PERSON_CAPACITY, n)
    ).astype(np.int32)
    max_seats = np.where(online, 1, 2).astype(np.int8)
    order = np.lexsort((experience, starts))
    # An experience has one session at a moment: a drawn twin is dropped. A session is found
    # again by its experience and start (a rerun recognises its chunks by them), so twins in
    # neighbouring chunks would be taken for each other.
    first = np.ones(n, dtype=bool)
    first[1:] = (starts[order][1:] != starts[order][:-1]) | (
        experience[order][1:] != experience[order][:-1]
    )
    order = order[first]
    experience, starts, ends, scheduled = (
        experience[order],
        starts[order],
        ends[order],
        scheduled[order],
    )
    capacity, max_seats = capacity[order], max_seats[order]

    # Who may book what: each place's members who favour each category, and anyone for online.
    pools: dict[tuple[int, int], I64] = {}
    for cat in range(len(CATEGORIES)):
        favoured = favours(members, cat)
        pools[(-1, cat)] = np.flatnonzero(favoured)
        for pl in range(len(PLACES)):
            pools[(pl, cat)] = np.flatnonzero(favoured & (members.place == pl))
    columns: dict[str, list[npt.NDArray[Any]]] = defaultdict(list)
    for s in range(len(starts)):
        e = int(experience[s])
        got = _book_session(
            params,
            members,
            pools[(int(place[e]), int(category[e]))],
            s,
            category=int(category[e]),
            online=bool(place[e] < 0),
            scheduled=int(scheduled[s]),
            starts=int(starts[s]),
            ends=int(ends[s]),
            capacity=int(capacity[s]),
        )
        for name, values in got.items():
            columns[name].append(values)

    def column(name: str, dtype: type[Any]) -> npt.NDArray[Any]:
        parts = columns.get(name, [])
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

    return ExperiencePlan(
        experience_category=category,
        experience_place=place,
        experience_kind=kind,
        session_experience=experience,
        session_scheduled_at=scheduled,
        session_starts_at=starts,
        session_ends_at=ends,
        session_capacity=capacity,
        session_max_seats=max_seats,
        booking_session=column("session", np.int64),
        booking_member=column("member", np.int64),
        booking_at=column("at", np.int64),
        booking_seats=column("seats", np.int8),
        booking_cancel_at=column("cancel_at", np.int64),
        booking_check_in_at=column("check_in_at", np.int64),
        booking_review_at=column("review_at", np.int64),
        booking_rating=column("rating", np.int8),
    )


def _book_session(
    params: WorldParams,
    members: Members,
    pool: I64,
    s: int,
    *,
    category: int,
    online: bool,
    scheduled: int,
    starts: int,
    ends: int,
    capacity: int,
) -> dict[str, npt.NDArray[Any]]:
    """The booking attempts on session `s` (its own stream), in time order."""
    rng = _rng(params, _BOOKINGS, s)
    demand = DEMAND_MEDIAN * rng.lognormal(0.0, DEMAND_SIGMA) * (ONLINE_DEMAND if online else 1)
    attempts = min(len(pool), int(rng.poisson(capacity * demand)))
    span = starts - 3600 - scheduled
    if attempts == 0 or span <= 0:
        return {}
    # Candidates first (a few times what is needed), then drawn by taste among them: a pool can
    # hold half the members of a large world.
    candidates = pool[rng.choice(len(pool), size=min(len(pool), 8 * attempts), replace=False)]
    weights = members.tastes[candidates, category]
    keys = np.log(rng.random(len(candidates))) / weights  # largest keys: drawn by weight
    who = candidates[np.argsort(-keys, kind="stable")[:attempts]].astype(np.int64)
    k = len(who)
    at = scheduled + (rng.beta(1.2, 2.5, k) * span).astype(np.int64)
    seats = np.where(online, 1, 1 + (rng.random(k) < TWO_SEATS_SHARE)).astype(np.int8)
    end = params.days * SECONDS_PER_DAY
    until = min(starts, end)
    cancels = rng.random(k) < CANCEL_SHARE
    cancel_at = at + (rng.random(k) * np.maximum(until - at, 0)).astype(np.int64)
    cancel_at = np.where(cancels & (cancel_at < until - 60) & (cancel_at > at), cancel_at, -1)
    # Who cancels does not mean to come: drawn apart, a member could check in minutes before
    # the start and cancel after it (seen at 5,000 members, seed 1: the load failed).
    attends = (rng.random(k) < ATTEND_SHARE) & (cancel_at < 0)
    check_in_at = starts - 600 + rng.integers(0, 2400, k)
    check_in_at = np.where(attends & (check_in_at < end), check_in_at, -1)
    reviews = rng.random(k) < REVIEW_SHARE
    review_at = ends + rng.integers(3600, 72 * 3600, k)
    review_at = np.where(reviews & (check_in_at >= 0) & (review_at < end), review_at, -1)
    taste = members.tastes[who, category]
    rating = np.clip(np.round(3.2 + 2.5 * taste + rng.normal(0.0, 0.7, k)), 1, 5).astype(np.int8)
    valid = (at < end) & _active_at(members, who, at)
    order = np.flatnonzero(valid)[np.argsort(at[valid], kind="stable")]
    return {
        "session": np.full(len(order), s, dtype=np.int64),
        "member": who[order],
        "at": at[order],
        "seats": seats[order],
        "cancel_at": cancel_at[order],
        "check_in_at": check_in_at[order],
        "review_at": review_at[order],
        "rating": rating[order],
    }


def prompt_title(plan: PromptPlan, k: int) -> str:
    return _PROMPT_TITLES[CATEGORIES[int(plan.category[k])]][int(plan.title[k])]


def answer_body(plan: PromptPlan, row: int) -> str:
    """A member's answer, in words: an opening, what they do, and the answer's number (so two
    answers never read the same and none looks like a copy to the first pass)."""
    k = int(plan.answer_prompt[row])
    category = CATEGORIES[int(plan.category[k])]
    member = int(plan.answer_member[row])
    opening = _OPENINGS[member % len(_OPENINGS)]
    detail = _DETAILS[category][(member // len(_OPENINGS) + k) % len(_DETAILS[category])]
    return f"{opening}: {detail}. (#{k + 1}.{int(plan.answer_serial[row])})"


def experience_title(plan: ExperiencePlan, e: int) -> str:
    category = CATEGORIES[int(plan.experience_category[e])].capitalize()
    place = int(plan.experience_place[e])
    kind = _KINDS[int(plan.experience_kind[e])]
    if place < 0:
        return f"{category} live Q&A (online)"
    return f"{category} {kind.value}, {CITIES[PLACES[place]][0]}"


# --- Loading ----------------------------------------------------------------------------------


@dataclass
class HappeningsCounts:
    """What the brand holds of the world's happenings after a load (chunks a rerun found loaded
    included): prompts and answers, experiences, sessions, and on them the bookings by status at
    the end, check-ins and reviews."""

    prompts: int = 0
    answers: int = 0
    answers_held: int = 0  # by the first pass, in the chunks this call wrote
    experiences: int = 0
    sessions: int = 0
    upcoming_sessions: int = 0  # starting after the last simulated day
    confirmed: int = 0
    waitlisted: int = 0
    cancelled: int = 0
    check_ins: int = 0
    reviews: int = 0
    chunks_skipped: int = 0  # found loaded by an earlier (interrupted) run

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _moment(params: WorldParams, seconds: int) -> datetime:
    return params.start_at + timedelta(seconds=int(seconds))


async def _staff(session: AsyncSession, brand_id: uuid.UUID) -> Actor:
    """The brand's staff, as its first live API key with community:write speaks for them."""
    now = utcnow()
    keys = await members_service.list_api_keys(session, brand_id, PageRequest(100, None))
    for key in keys:
        principal = StaffPrincipal(brand_id=brand_id, key_id=key.id, scopes=frozenset(key.scopes))
        live = key.revoked_at is None and (key.expires_at is None or key.expires_at > now)
        if live and principal.has(Scope.COMMUNITY_WRITE):
            return Actor(brand_id=brand_id, staff=principal)
    raise RuntimeError(f"brand {brand_id} has no live API key with community:write")


async def _member_ids(
    session: AsyncSession, params: WorldParams, brand_id: uuid.UUID, indexes: Sequence[int]
) -> dict[int, uuid.UUID]:
    wanted = sorted(set(indexes))
    found = await members_service.member_ids(
        session, brand_id, [external_id(params.seed, i) for i in wanted]
    )
    missing = [i for i in wanted if external_id(params.seed, i) not in found]
    if missing:
        raise RuntimeError(
            f"{len(missing)} members are not loaded yet "
            f"(first {external_id(params.seed, missing[0])})"
        )
    return {i: found[external_id(params.seed, i)] for i in wanted}


def prompts_of(view: WorldView) -> PromptPlan:
    return plan_prompts(view.params, view.members)


def experiences_of(view: WorldView) -> ExperiencePlan:
    return plan_experiences(view.params, view.members)


async def load_happenings(
    runtime: Runtime,
    params: WorldParams,
    members: Members,
    brand_id: uuid.UUID,
    *,
    workers: int = 1,
) -> HappeningsCounts:
    """Loads the world's prompts, answers, experiences and sessions into the brand (whose
    members must be loaded and known to the community), one chunk per transaction; the chunks
    of answers and of sessions in `workers` processes side by side. A rerun skips the chunks
    already there."""
    counts = HappeningsCounts()
    view = WorldView.of(params, members)
    prompt_ids = await _load_prompts(runtime, params, view.plan(prompts_of), brand_id, counts)
    await _load_parts(
        runtime,
        view,
        brand_id,
        counts,
        _answers_part,
        len(view.plan(prompts_of).answer_at),
        (ANSWER_CHUNK, tuple(prompt_ids)),
        workers,
    )
    plan = view.plan(experiences_of)
    experience_ids = await _load_experiences(runtime, params, plan, brand_id, counts)
    sessions = len(plan.session_starts_at)
    counts.sessions = sessions
    counts.upcoming_sessions = int((plan.session_starts_at >= params.days * SECONDS_PER_DAY).sum())
    await _load_parts(
        runtime,
        view,
        brand_id,
        counts,
        _sessions_part,
        sessions,
        (SESSION_CHUNK, tuple(experience_ids)),
        workers,
    )
    return counts


async def _load_parts(
    runtime: Runtime,
    view: WorldView,
    brand_id: uuid.UUID,
    counts: HappeningsCounts,
    loader: ChunkLoader,
    rows: int,
    args: tuple[int, tuple[uuid.UUID, ...]],
    workers: int,
) -> None:
    """The `rows` answers or sessions in chunks of `args[0]`, added up into `counts`."""
    async for _, loaded in load_chunks(
        loader,
        runtime.database,
        view,
        brand_id,
        range(-(-rows // args[0])),
        workers=workers,
        args=args,
    ):
        for kind, count in loaded.items():
            setattr(counts, kind, getattr(counts, kind) + count)


async def _load_prompts(
    runtime: Runtime,
    params: WorldParams,
    plan: PromptPlan,
    brand_id: uuid.UUID,
    counts: HappeningsCounts,
) -> list[uuid.UUID]:
    """Every prompt in one transaction: staff write each a day before it opens. Prompts found
    (by title and opening) are kept as they are."""
    ids: list[uuid.UUID] = []
    async with runtime.database.unit_of_work() as session:
        for k in range(len(plan.category)):
            title = prompt_title(plan, k)
            starts_at = _moment(params, int(plan.starts_at[k]))
            found = await find_prompt(session, brand_id, title, starts_at)
            if found is None:
                category = CATEGORIES[int(plan.category[k])]
                points = int(plan.points[k])
                found = await prompts.create_prompt(
                    session,
                    brand_id,
                    PromptCreate(
                        title=title,
                        body="Tell the community in a post: what you use, how, and your best tip.",
                        tags=[category],
                        starts_at=starts_at,
                        ends_at=_moment(params, int(plan.ends_at[k])),
                        audience=AudienceKind.ALL,
                        points=points or None,
                    ),
                    now=starts_at - timedelta(days=1),
                )
            ids.append(found.id)
    counts.prompts = len(ids)
    return ids


async def _answers_part(
    database: Database, view: WorldView, brand_id: uuid.UUID, part: int, args: tuple[Any, ...]
) -> dict[str, int]:
    """The part-th chunk of `args[0]` answers, to the prompts `args[1]` (in plan order)."""
    size, prompt_ids = args
    params, plan = view.params, view.plan(prompts_of)
    low = part * size
    high = min(low + size, len(plan.answer_at))
    async with database.unit_of_work() as session:
        ids = await _member_ids(session, params, brand_id, plan.answer_member[low:high].tolist())
        last = high - 1
        if await has_answered(
            session,
            prompt_ids[int(plan.answer_prompt[last])],
            ids[int(plan.answer_member[last])],
        ):
            return {"answers": high - low, "chunks_skipped": 1}
        report = await load_answers(
            session,
            brand_id,
            [
                HistoricAnswer(
                    prompt_id=prompt_ids[int(plan.answer_prompt[row])],
                    member_id=ids[int(plan.answer_member[row])],
                    answered_at=_moment(params, int(plan.answer_at[row])),
                    post=PostCreate(
                        body=answer_body(plan, row),
                        tags=[CATEGORIES[int(plan.category[plan.answer_prompt[row]])]],
                    ),
                )
                for row in range(low, high)
            ],
        )
    return {"answers": high - low, "answers_held": report.held}


async def _load_experiences(
    runtime: Runtime,
    params: WorldParams,
    plan: ExperiencePlan,
    brand_id: uuid.UUID,
    counts: HappeningsCounts,
) -> list[uuid.UUID]:
    """The catalog in one transaction, staff creating each experience (found ones are kept)."""
    ids: list[uuid.UUID] = []
    async with runtime.database.unit_of_work() as session:
        staff = await _staff(session, brand_id)
        for e in range(len(plan.experience_category)):
            title = experience_title(plan, e)
            found: Experience | None = await experiences_bulk.find_brand_experience(
                session, brand_id, title
            )
            if found is None:
                category = CATEGORIES[int(plan.experience_category[e])]
                online = plan.experience_place[e] < 0
                found = await experiences.create_experience(
                    session,
                    staff,
                    ExperienceCreate(
                        title=title,
                        description=f"Hands-on {category} with our team: "
                        f"{_DETAILS[category][0]}, and your questions.",
                        kind=_KINDS[int(plan.experience_kind[e])],
                        tags=[category, "online" if online else "in person"],
                    ),
                    # Long before the world's first session: staff set the catalog up first.
                    now=params.start_at - timedelta(days=30),
                )
            ids.append(found.id)
    counts.experiences = len(ids)
    return ids


async def _sessions_part(
    database: Database, view: WorldView, brand_id: uuid.UUID, part: int, args: tuple[Any, ...]
) -> dict[str, int]:
    """The part-th chunk of `args[0]` sessions, with what happened on them, of the experiences
    `args[1]` (in plan order); counts their bookings by status, check-ins and reviews."""
    size, experience_ids = args
    params, plan = view.params, view.plan(experiences_of)
    sessions = len(plan.session_starts_at)
    first_booking = np.searchsorted(plan.booking_session, np.arange(sessions + 1))
    low = part * size
    high = min(low + size, sessions)
    skipped = 0
    async with database.unit_of_work() as session:
        last = await experiences_bulk.find_session(
            session,
            experience_ids[int(plan.session_experience[high - 1])],
            _moment(params, int(plan.session_starts_at[high - 1])),
        )
        rows: list[uuid.UUID] = []
        if last is not None:
            skipped = 1
            for s in range(low, high):
                found = await experiences_bulk.find_session(
                    session,
                    experience_ids[int(plan.session_experience[s])],
                    _moment(params, int(plan.session_starts_at[s])),
                )
                assert found is not None  # a chunk commits whole
                rows.append(found.id)
        else:
            replay = SessionsReplay(await _staff(session, brand_id))
            booked = slice(int(first_booking[low]), int(first_booking[high]))
            ids = await _member_ids(session, params, brand_id, plan.booking_member[booked].tolist())
            acting = await CommunityMemberRepository(session).many(brand_id, list(ids.values()))
            used = {int(plan.session_experience[s]) for s in range(low, high)}
            catalog = {e: await get_experience(session, brand_id, experience_ids[e]) for e in used}
            for s in range(low, high):
                rows.append(
                    _replay_session(
                        replay,
                        params,
                        plan,
                        s,
                        catalog,
                        range(int(first_booking[s]), int(first_booking[s + 1])),
                        {i: acting[m] for i, m in ids.items()},
                    )
                )
            await replay.write(session)
        tally = await experiences_bulk.tally(session, rows)
    return {
        "confirmed": tally.confirmed,
        "waitlisted": tally.waitlisted,
        "cancelled": tally.cancelled,
        "check_ins": tally.checked_in,
        "reviews": tally.reviews,
        "chunks_skipped": skipped,
    }


def _replay_session(
    replay: SessionsReplay,
    params: WorldParams,
    plan: ExperiencePlan,
    s: int,
    catalog: dict[int, Experience],
    attempts: range,
    members: dict[int, CommunityMember],
) -> uuid.UUID:
    """One session's life, each step at its moment: scheduled; then booked (or waitlisted),
    cancelled, checked in (those who meant to come, if confirmed by then) and reviewed (those
    who came and meant to), in time order."""
    experience = int(plan.session_experience[s])
    place = int(plan.experience_place[experience])
    category = CATEGORIES[int(plan.experience_category[experience])]
    online = place < 0
    row = replay.schedule(
        catalog[experience],
        SessionCreate(
            starts_at=_moment(params, int(plan.session_starts_at[s])),
            ends_at=_moment(params, int(plan.session_ends_at[s])),
            time_zone=ONLINE_TIME_ZONE if online else PLACES[place],
            place=OnlinePlace(url=f"https://live.example.com/{category}")
            if online
            else AddressPlace(address=CITIES[PLACES[place]][1]),
            capacity=int(plan.session_capacity[s]),
            max_seats_per_booking=int(plan.session_max_seats[s]),
        ),
        _moment(params, int(plan.session_scheduled_at[s])),
    )
    # Every step in time order: members cancel up to the start while others check in.
    timeline: list[tuple[int, int, int]] = []  # (seconds, step, attempt)
    for b in attempts:
        timeline.append((int(plan.booking_at[b]), _BOOK, b))
        for step, column in (
            (_CANCEL, plan.booking_cancel_at),
            (_CHECK_IN, plan.booking_check_in_at),
            (_REVIEW, plan.booking_review_at),
        ):
            if column[b] >= 0:
                timeline.append((int(column[b]), step, b))
    booked: dict[int, Booking] = {}
    for seconds, step, b in sorted(timeline):
        member, booking = members[int(plan.booking_member[b])], booked.get(b)
        at = _moment(params, seconds)
        if step == _BOOK:
            booked[b] = replay.book(
                member, row, BookingCreate(seats=int(plan.booking_seats[b])), at
            )
        elif step == _CANCEL:
            assert booking is not None
            replay.cancel(member, booking, at)
        elif step == _CHECK_IN:
            # Who meant to come does if their booking is confirmed by then (not cancelled, not
            # still waiting).
            assert booking is not None
            if booking.status == BookingStatus.CONFIRMED:
                replay.check_in(member, row, row.check_in_code, at)
        else:
            assert booking is not None
            if booking.checked_in_at is not None:
                rating = int(plan.booking_rating[b])
                replay.review(member, row, ReviewCreate(rating=rating, body=_REVIEWS[rating]), at)
    return row.id
