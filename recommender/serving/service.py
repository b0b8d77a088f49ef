"""Serving a member's list, taking their feedback, and counting what was shown.

A list is the member's precomputed one (or the brand's non-personalised one) after the live
business rules, re-ordered for variety, with a share of its places explored; it is logged as an
`Exposure` on the request's connection (in its transaction when one is open; serving opens
none, so the row commits with its one statement, without waiting for the WAL flush: see
`repository._ADD_EXPOSURE_ALONE`). The request costs two statements (the list
with its rules, the exposure); the brand's running experiment and exploration candidates come
from a cache of a few seconds (CACHE_SECONDS, POOL_CACHE_SECONDS). Nothing here commits.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from recommender.intake.weights import WEIGHTS
from recommender.serving import exploration
from recommender.serving.cache import TtlCache
from recommender.serving.errors import ExposureNotFound, ItemNotInExposure, UnknownSurface
from recommender.serving.experiments import Arm, Policy, arms_of, assign_arm
from recommender.serving.repository import (
    CandidateRow,
    Candidates,
    NewExposure,
    ServedLists,
    ServingRepository,
)
from recommender.serving.rules import DEFAULT_LIMIT, MAX_LIMIT, diversify
from recommender.store.models import Interaction, InteractionKind
from recommender.surfaces import SURFACE_KINDS, SURFACES
from services.kernel.clock import utcnow
from services.kernel.db import Database
from services.kernel.errors import ValidationFailed
from services.kernel.ids import id_at, new_id

CACHE_SECONDS = 5.0
# The exploration pools are read again less often: their counts change once a minute (the
# `count_shown` job), and every list checks the live rules of the candidates it is given.
POOL_CACHE_SECONDS = 30.0
# How far down the model's list (in items that pass the rules, per place) variety may reach.
VARIETY_WINDOW = 3
EXPLORED_REASON = "Something new you might like"

_FEEDBACK: dict[str, InteractionKind] = {
    "click": InteractionKind.CLICK,
    "dismiss": InteractionKind.DISMISS,
}

# Exposures younger than this may still be in uncommitted transactions: not counted yet.
SETTLE = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class RunningExperiment:
    id: uuid.UUID
    arms: tuple[Arm, ...]


@dataclass(frozen=True, slots=True)
class ServedItem:
    item_id: str
    kind: str
    title: str
    category: str | None
    score: float | None
    reason: str
    position: int  # 1 is the top
    explored: bool
    propensity: float


@dataclass(frozen=True, slots=True)
class ServedList:
    member_id: uuid.UUID
    surface: str
    exposure_id: uuid.UUID
    version_id: uuid.UUID | None
    arm: str
    items: list[ServedItem]


_EXPERIMENTS: TtlCache[uuid.UUID, RunningExperiment | None] = TtlCache(CACHE_SECONDS)
_POOLS: TtlCache[tuple[uuid.UUID, str], exploration.SampledPool] = TtlCache(POOL_CACHE_SECONDS)


def forget_experiment(brand_id: uuid.UUID) -> None:
    """After an experiment starts or ends: this process sees it at once, others within
    CACHE_SECONDS."""
    _EXPERIMENTS.forget(brand_id)


def clear_caches() -> None:
    _EXPERIMENTS.clear()
    _POOLS.clear()


async def running_experiment(database: Database, brand_id: uuid.UUID) -> RunningExperiment | None:
    async def load() -> RunningExperiment | None:
        async with database.unit_of_work() as session:
            found = await ServingRepository(session).running_experiment(brand_id)
        return RunningExperiment(found.id, arms_of(found.arms)) if found is not None else None

    return await _EXPERIMENTS.get(brand_id, load)


async def _pool(
    database: Database, brand_id: uuid.UUID, surface: str, now: datetime
) -> exploration.SampledPool:
    async def load() -> exploration.SampledPool:
        async with database.unit_of_work() as session:
            found = await ServingRepository(session).exploration_pool(
                brand_id,
                SURFACE_KINDS[surface],
                threshold=exploration.LITTLE_DATA,
                size=exploration.POOL_SIZE,
                now=now,
            )
        return exploration.SampledPool.of(found)

    return await _POOLS.get((brand_id, surface), load)


def check_request(surface: str, limit: int) -> None:
    if surface not in SURFACE_KINDS:
        raise UnknownSurface(f"Unknown surface {surface!r}; use one of: {', '.join(SURFACES)}.")
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(f"limit must be from 1 to {MAX_LIMIT}.")


def parse_lists(asked: Sequence[str]) -> list[tuple[str, int]]:
    """The lists of a request for several, each `surface` or `surface:limit`: (surface, limit)
    in the order asked; refused whole when one is malformed, unknown, out of range or asked
    twice, so that nothing is served (or logged) for a request that is refused."""
    if not 1 <= len(asked) <= len(SURFACES):
        raise ValidationFailed(f"Ask for 1 to {len(SURFACES)} lists, each surface at most once.")
    lists: list[tuple[str, int]] = []
    for asked_for in asked:
        one = asked_for if len(asked_for) <= 40 else f"{asked_for[:40]}..."  # as echoed back
        surface, colon, count = asked_for.partition(":")
        if not colon:
            limit = DEFAULT_LIMIT
        elif count.isdecimal() and len(count) <= 3:
            limit = int(count)
        else:
            raise ValidationFailed(
                f"list {one!r}: write the surface, or the surface and a limit from 1 to "
                f"{MAX_LIMIT} after a colon (perks:10)."
            )
        check_request(surface, limit)
        if any(surface == seen for seen, _ in lists):
            raise ValidationFailed(f"list {one!r}: the surface {surface!r} is asked twice.")
        lists.append((surface, limit))
    return lists


async def recommend_lists(
    database: Database,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    lists: Sequence[tuple[str, int]],
    *,
    exploration_share: float,
) -> list[ServedList]:
    """Several of the member's lists (from `parse_lists`), each served and logged as its own
    exposure, as `recommend` serves one: what a screen that shows several asks in one call."""
    return [
        await recommend(
            database, brand_id, member_id, surface, limit, exploration_share=exploration_share
        )
        for surface, limit in lists
    ]


async def recommend(
    database: Database,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    surface: str,
    limit: int,
    *,
    exploration_share: float,
) -> ServedList:
    """The member's list for `surface`, logged as an exposure. An unknown member is a cold
    start (the brand's list for members without a tier), never an error."""
    check_request(surface, limit)
    now = utcnow()
    exposure_id = new_id()
    experiment = await running_experiment(database, brand_id)
    arm = assign_arm(experiment.id, experiment.arms, member_id) if experiment else None
    share = min(max(exploration_share, 0.0), 1.0)
    rng = exploration.list_random(exposure_id)
    places = exploration.explored_places(rng, limit, share)
    pool = await _pool(database, brand_id, surface, now) if share > 0 else None
    exploring = any(places) and pool is not None and bool(pool.candidates)
    async with database.driver() as driver:
        lists = ServedLists(driver)
        candidates = await lists.candidates(
            brand_id,
            member_id,
            surface,
            SURFACE_KINDS[surface],
            personal=arm is None or arm.policy is not Policy.POPULAR,
            pool=pool.item_ids if exploring and pool is not None else (),
            window=limit * VARIETY_WINDOW,
            now=now,
        )
        items = _arrange(candidates, pool, places, share, rng, limit)
        await lists.add_exposure(
            NewExposure(
                id=exposure_id,
                brand_id=brand_id,
                member_id=member_id,
                surface=surface,
                version_id=candidates.version_id,
                arm=arm.name if arm is not None else "",
                item_ids=[item.item_id for item in items],
                propensities=[item.propensity for item in items],
                explored=[item.explored for item in items],
                served_at=now,
            )
        )
    return ServedList(
        member_id=member_id,
        surface=surface,
        exposure_id=exposure_id,
        version_id=candidates.version_id,
        arm=arm.name if arm is not None else "",
        items=items,
    )


def _arrange(
    candidates: Candidates,
    pool: exploration.SampledPool | None,
    places: list[bool],
    share: float,
    rng: random.Random,
    limit: int,
) -> list[ServedItem]:
    """Fills the places: explored ones by Thompson sampling among the exploration candidates
    that passed the rules (and are not in the model's list), the others with the model's items
    in their varied order. A place exploration cannot fill (nothing left) takes the next model
    item; the list ends when a model place finds none left."""
    model: list[CandidateRow] = []
    seen: set[str] = set()
    explorable: list[str] = []
    for row in candidates.rows:
        if row.rank is not None:
            if row.item_id not in seen:
                seen.add(row.item_id)
                model.append(row)
        else:
            explorable.append(row.item_id)
    by_id = {row.item_id: row for row in candidates.rows if row.rank is None}
    eligible = set(explorable) - seen
    draws = exploration.ThompsonDraws(pool, eligible, rng) if eligible and pool else None
    # Exploration can fill a place only while eligible candidates remain. Without a pool read
    # for this request (no place explored), the brand's pool stands for the member's.
    in_pool = pool is not None and bool(pool.candidates)
    left = draws.remaining if draws is not None else (lambda: in_pool and not any(places))
    ordered = iter(diversify(model, lambda row: row.category, limit))
    items: list[ServedItem] = []
    for place in places:
        position = len(items) + 1
        pick = draws.pick() if place and draws is not None else None
        if pick is not None:
            row = by_id[pick.item_id]
            items.append(
                ServedItem(
                    item_id=row.item_id,
                    kind=row.kind,
                    title=row.title,
                    category=row.category,
                    score=None,
                    reason=EXPLORED_REASON,
                    position=position,
                    explored=True,
                    propensity=share * pick.probability,
                )
            )
            continue
        could_explore = share > 0 and left()
        chosen = next(ordered, None)
        if chosen is None:
            break
        items.append(
            ServedItem(
                item_id=chosen.item_id,
                kind=chosen.kind,
                title=chosen.title,
                category=chosen.category,
                score=chosen.score,
                reason=chosen.reason,
                position=position,
                explored=False,
                # The place shows the model's item unless it explored, which it could only
                # while a candidate remained.
                propensity=1.0 - share if could_explore else 1.0,
            )
        )
    return items


# --- Feedback ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Feedback:
    exposure_id: uuid.UUID
    member_id: uuid.UUID
    item_id: str
    action: Literal["click", "dismiss"]
    recorded_at: datetime


async def feedback(
    session: AsyncSession,
    brand_id: uuid.UUID,
    exposure_id: uuid.UUID,
    item_id: str,
    action: Literal["click", "dismiss"],
    *,
    member_id: uuid.UUID | None,
) -> Feedback:
    """Records a click or dismissal of an item of a served list, as an interaction of the
    member the list was served to; `member_id` (a member calling) must be that member.

    The member awaits the next fold-in; a click counts as the item taken (exploration's
    posterior). A second click (or dismissal) of the same item of the same list records
    nothing more: a list's item is taken once.
    """
    repository = ServingRepository(session)
    # Locked: feedback on one list is taken one at a time, so an item is taken once.
    exposure = await repository.exposure(brand_id, exposure_id, lock=True)
    if exposure is None or (member_id is not None and exposure.member_id != member_id):
        raise ExposureNotFound()
    if item_id not in exposure.item_ids:
        raise ItemNotInExposure(f"{item_id!r} was not in this list.")
    kind = _FEEDBACK[action]
    earlier = await repository.feedback_of(
        brand_id, exposure.member_id, exposure.id, item_id, kind, exposure.served_at
    )
    if earlier is not None:
        return Feedback(exposure.id, exposure.member_id, item_id, action, earlier)
    now = utcnow()
    await repository.add_interaction(
        Interaction(
            brand_id=brand_id,
            member_id=exposure.member_id,
            item_id=item_id,
            kind=kind,
            weight=WEIGHTS[kind],
            occurred_at=now,
            exposure_id=exposure.id,
        )
    )
    await repository.mark_stale(brand_id, exposure.member_id, now)
    if kind is InteractionKind.CLICK:
        await repository.count_taken(brand_id, item_id)
    return Feedback(exposure.id, exposure.member_id, item_id, action, now)


# --- Item statistics --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShownCounted:
    since: datetime
    until: datetime  # pass it as the next call's `since`
    exposures: int
    items: int  # item_stats rows updated


async def refresh_item_stats(
    session: AsyncSession, since: datetime, until: datetime | None = None
) -> ShownCounted:
    """Adds the items of every exposure served in [since, until) (all brands) to
    `ItemStats.shown`, the counts exploration samples from.

    Windows that follow each other (`until` of one is `since` of the next) count every exposure
    exactly once: the bounds are cut on the exposures' time-ordered ids. `until` defaults to
    SETTLE ago, so that lists still being served are counted by the next window.
    """
    end = until if until is not None else utcnow() - SETTLE
    if end <= since:
        return ShownCounted(since, since, 0, 0)
    zero = bytes(8)
    exposures, items = await ServingRepository(session).count_shown(
        id_at(since, zero), id_at(end, zero)
    )
    return ShownCounted(since, end, exposures, items)
