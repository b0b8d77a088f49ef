"""A/B experiments: stable assignment by member, starting and ending one (at most one runs per
brand), serving each arm's policy, and the per-arm report on a hand-made history."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from recommender.serving import service
from recommender.serving.experiments import SERVING_ARM, Arm, Policy, arms_of, assign_arm
from recommender.store.models import Experiment, Exposure, InteractionKind
from services.kernel.clock import utcnow
from services.kernel.db import Database
from services.kernel.ids import id_at
from services.kernel.settings import Settings
from tests.conftest import BrandFixture
from tests.recommender.serving_fixtures import (
    NIL,
    add_interaction,
    add_item,
    add_list,
    add_member,
    add_version,
    api_client,
    count,
    error,
    exposures,
    ids_of,
    member_headers,
    staff_headers,
)

PATH = "/recommender/v1/experiments"
HOLDOUT = Arm("holdout", 0.1, Policy.POPULAR)
CHALLENGER = Arm("challenger", 0.2, Policy.VERSION, uuid.UUID(int=99))


@pytest.fixture(autouse=True)
def fresh_caches() -> Iterator[None]:
    service.clear_caches()
    yield
    service.clear_caches()


@pytest.fixture
async def api(
    base_settings: Settings, database: Database, redis: Redis
) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(base_settings, database, redis, exploration_share=0.0) as client:
        yield client


# --- Assignment ---------------------------------------------------------------------------------


def test_assignment_is_stable_by_member_and_follows_the_shares() -> None:
    experiment = uuid.UUID("0191e2a4-0000-7000-8000-000000000001")
    members = [uuid.uuid5(uuid.NAMESPACE_OID, str(n)) for n in range(10_000)]

    first = [assign_arm(experiment, [HOLDOUT, CHALLENGER], m).name for m in members]
    again = [assign_arm(experiment, [HOLDOUT, CHALLENGER], m).name for m in members]
    shares = Counter(first)

    assert first == again
    assert set(shares) == {"holdout", "challenger", SERVING_ARM}
    assert abs(shares["holdout"] / 10_000 - 0.1) < 0.012
    assert abs(shares["challenger"] / 10_000 - 0.2) < 0.016
    assert abs(shares[SERVING_ARM] / 10_000 - 0.7) < 0.018
    # Another experiment reshuffles members: about 10% of each arm lands in the holdout again.
    other = uuid.UUID("0191e2a4-0000-7000-8000-000000000002")
    moved = [assign_arm(other, [HOLDOUT, CHALLENGER], m).name for m in members]
    both = sum(a == b == "holdout" for a, b in zip(first, moved, strict=True))
    assert abs(both / shares["holdout"] - 0.1) < 0.04


def test_the_serving_arm_takes_the_rest_and_arms_round_trip_as_stored() -> None:
    member = uuid.UUID(int=5)
    everyone = Arm("all", 1.0, Policy.POPULAR)
    assert assign_arm(uuid.uuid4(), [everyone], member) == everyone
    assert assign_arm(uuid.uuid4(), [], member) == Arm(SERVING_ARM, 1.0, Policy.SERVING)
    stored = [HOLDOUT.to_json(), CHALLENGER.to_json()]
    assert stored[1] == {
        "name": "challenger",
        "share": 0.2,
        "policy": "version",
        "version_id": str(uuid.UUID(int=99)),
    }
    assert arms_of(stored) == (HOLDOUT, CHALLENGER)


# --- Starting and ending ------------------------------------------------------------------------


def _arm(name: str, share: float, policy: str = "popular", **more: Any) -> dict[str, Any]:
    return {"name": name, "share": share, "policy": policy, **more}


async def test_starting_reading_and_ending_an_experiment(
    api: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture
) -> None:
    version = await add_version(session, brand.id)
    body = {
        "name": "EASE v2 against the holdout",
        "arms": [_arm("holdout", 0.1), _arm("ease-v2", 0.25, "version", version_id=str(version))],
    }

    created = await api.post(PATH, json=body, headers=brand.headers)

    assert created.status_code == 201, created.text
    experiment = created.json()
    assert experiment | {"id": None, "started_at": None} == {
        "id": None,
        "name": "EASE v2 against the holdout",
        "arms": [
            {"name": "holdout", "share": 0.1, "policy": "popular", "version_id": None},
            {"name": "ease-v2", "share": 0.25, "policy": "version", "version_id": str(version)},
            {"name": "serving", "share": 0.65, "policy": "serving", "version_id": None},
        ],
        "started_at": None,
        "ended_at": None,
        "running": True,
    }
    read = await api.get(f"{PATH}/{experiment['id']}", headers=brand.headers)
    assert read.json() == experiment
    listed = await api.get(PATH, headers=brand.headers)
    assert listed.json() == {"items": [experiment], "next": None, "previous": None}

    second = await api.post(PATH, json={**body, "name": "another"}, headers=brand.headers)
    assert error(second) == (409, "ExperimentRunning")

    ended = await api.post(f"{PATH}/{experiment['id']}/end", headers=brand.headers)
    assert ended.status_code == 200
    assert ended.json()["running"] is False
    assert ended.json()["ended_at"] is not None
    again = await api.post(f"{PATH}/{experiment['id']}/end", headers=brand.headers)
    assert error(again) == (409, "ExperimentEnded")

    # Once it ended, a new one may start.
    third = await api.post(PATH, json={**body, "name": "the next"}, headers=brand.headers)
    assert third.status_code == 201
    assert await count(session, Experiment, brand.id) == 2


async def test_bad_experiments_are_refused_and_nothing_starts(
    api: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, other_brand: BrandFixture
) -> None:
    theirs = await add_version(session, other_brand.id)
    cases: list[tuple[dict[str, Any], tuple[int, str]]] = [
        ({"name": "x", "arms": [_arm("a", 0.6), _arm("b", 0.5)]}, (422, "ValidationError")),
        ({"name": "x", "arms": [_arm("a", 0.0)]}, (422, "ValidationError")),
        ({"name": "x", "arms": [_arm("a", 1.5)]}, (422, "ValidationError")),
        ({"name": "x", "arms": [_arm("a", -0.1)]}, (422, "ValidationError")),
        ({"name": "x", "arms": []}, (422, "ValidationError")),
        ({"name": "x", "arms": [_arm("a", 0.1), _arm("a", 0.1)]}, (422, "ValidationError")),
        ({"name": "x", "arms": [_arm("serving", 0.1)]}, (422, "ValidationError")),
        ({"name": "x", "arms": [_arm("a", 0.1, "version")]}, (422, "ValidationError")),
        ({"name": "x", "arms": [_arm("a", 0.1, "bandit")]}, (422, "ValidationError")),
        (
            {"name": "x", "arms": [_arm("a", 0.1, version_id=str(uuid.uuid4()))]},
            (422, "ValidationError"),
        ),
        (
            {"name": "x", "arms": [_arm("a", 0.1, "version", version_id=str(uuid.uuid4()))]},
            (422, "UnknownModelVersion"),
        ),
        (
            {"name": "x", "arms": [_arm("a", 0.1, "version", version_id=str(theirs))]},
            (422, "UnknownModelVersion"),
        ),
        ({"name": "", "arms": [_arm("a", 0.1)]}, (422, "ValidationError")),
        ({"name": "x", "arms": [_arm("a", 0.1)], "extra": 1}, (422, "ValidationError")),
    ]
    for body, expected in cases:
        response = await api.post(PATH, json=body, headers=brand.headers)
        assert error(response) == expected, (body, response.text)
    assert await count(session, Experiment, brand.id) == 0

    # Shares that add up to exactly 1 are fine (despite floating point).
    whole = [_arm("a", 0.1), _arm("b", 0.2), _arm("c", 0.7)]
    assert (await api.post(PATH, json={"name": "x", "arms": whole}, headers=brand.headers)).json()[
        "arms"
    ] == [{**arm, "version_id": None} for arm in whole]


async def test_only_staff_with_the_scopes_run_experiments_and_brands_stay_apart(
    api: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
    base_settings: Settings,
) -> None:
    reader = await staff_headers(api, brand, ["recommender:read"])
    member = member_headers(base_settings, brand.id, await add_member(session, brand.id))
    body = {"name": "x", "arms": [_arm("holdout", 0.1)]}

    assert error(await api.post(PATH, json=body, headers=reader)) == (403, "Forbidden")
    assert error(await api.post(PATH, json=body, headers=member)) == (403, "Forbidden")
    assert error(await api.post(PATH, json=body)) == (401, "Unauthorized")
    assert await count(session, Experiment, brand.id) == 0

    created = (await api.post(PATH, json=body, headers=brand.headers)).json()
    one = f"{PATH}/{created['id']}"
    assert (await api.get(one, headers=reader)).status_code == 200
    assert (await api.get(f"{one}/report", headers=reader)).status_code == 200
    assert error(await api.get(one, headers=member)) == (403, "Forbidden")
    assert error(await api.post(f"{one}/end", headers=reader)) == (403, "Forbidden")
    assert error(await api.get(one, headers=other_brand.headers)) == (404, "ExperimentNotFound")
    assert error(await api.get(f"{one}/report", headers=other_brand.headers)) == (
        404,
        "ExperimentNotFound",
    )
    assert error(await api.post(f"{one}/end", headers=other_brand.headers)) == (
        404,
        "ExperimentNotFound",
    )
    assert error(await api.get(f"{PATH}/{uuid.uuid4()}", headers=brand.headers)) == (
        404,
        "ExperimentNotFound",
    )
    assert (await api.get(PATH, headers=other_brand.headers)).json()["items"] == []
    # The other brand may run its own experiment meanwhile.
    assert (await api.post(PATH, json=body, headers=other_brand.headers)).status_code == 201


# --- Serving an arm -----------------------------------------------------------------------------


def _member_in(experiment_id: uuid.UUID, arms: list[Arm], name: str) -> uuid.UUID:
    return next(
        m
        for m in (uuid.uuid5(uuid.NAMESPACE_URL, str(n)) for n in range(1000))
        if assign_arm(experiment_id, arms, m).name == name
    )


async def test_each_arm_is_served_its_policy_and_logged(
    api: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, base_settings: Settings
) -> None:
    tier = uuid.uuid4()
    version = await add_version(session, brand.id)
    for item_id in ("perk:own", "perk:popular"):
        await add_item(session, brand.id, item_id)
    body = {
        "name": "holdout",
        "arms": [_arm("holdout", 0.3), _arm("v2", 0.3, "version", version_id=str(version))],
    }
    # Before the experiment: no arm.
    quiet = await add_member(session, brand.id, tier_id=tier)
    await add_list(session, brand.id, quiet, "perks", ["perk:own"])
    await add_list(session, brand.id, NIL, "perks", ["perk:popular"], segment=str(tier))
    served = await api.get(
        f"/recommender/v1/members/{quiet}/recommendations?surface=perks",
        headers=member_headers(base_settings, brand.id, quiet),
    )
    assert served.json()["arm"] == ""

    created = (await api.post(PATH, json=body, headers=brand.headers)).json()
    experiment_id = uuid.UUID(created["id"])
    arms = [
        Arm("holdout", 0.3, Policy.POPULAR),
        Arm("v2", 0.3, Policy.VERSION, version),
    ]
    served_by_arm: dict[str, tuple[str, list[str]]] = {}
    for name in ("holdout", "v2", "serving"):
        member = await add_member(
            session, brand.id, member_id=_member_in(experiment_id, arms, name), tier_id=tier
        )
        await add_list(session, brand.id, member, "perks", ["perk:own"], version_id=version)
        response = await api.get(
            f"/recommender/v1/members/{member}/recommendations?surface=perks",
            headers=member_headers(base_settings, brand.id, member),
        )
        served_by_arm[name] = (response.json()["arm"], ids_of(response.json()))

    assert served_by_arm == {
        "holdout": ("holdout", ["perk:popular"]),
        "v2": ("v2", ["perk:own"]),
        "serving": ("serving", ["perk:own"]),
    }
    logged = await exposures(session, brand.id)
    assert [e.arm for e in logged] == ["", "holdout", "v2", "serving"]
    assert [e.version_id for e in logged] == [None, None, version, version]

    await api.post(f"{PATH}/{experiment_id}/end", headers=brand.headers)
    holdout_member = _member_in(experiment_id, arms, "holdout")
    after = await api.get(
        f"/recommender/v1/members/{holdout_member}/recommendations?surface=perks",
        headers=member_headers(base_settings, brand.id, holdout_member),
    )
    assert (after.json()["arm"], ids_of(after.json())) == ("", ["perk:own"])


# --- The report ---------------------------------------------------------------------------------


async def test_the_report_counts_each_arms_exposures_clicks_and_attributed_redemptions(
    api: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture
) -> None:
    start = utcnow() - timedelta(days=20)
    experiment = Experiment(
        id=id_at(start),
        brand_id=brand.id,
        name="holdout",
        arms=[HOLDOUT.to_json()],
        started_at=start,
        ended_at=start + timedelta(days=15),
    )
    session.add(experiment)
    await session.flush()
    ann, bob, cat, dan = (uuid.uuid4() for _ in range(4))

    async def exposure(member: uuid.UUID, arm: str, day: float, items: list[str]) -> uuid.UUID:
        at = start + timedelta(days=day)
        exposure_id = id_at(at)
        session.add(
            Exposure(
                id=exposure_id,
                brand_id=brand.id,
                member_id=member,
                surface="perks",
                arm=arm,
                item_ids=items,
                propensities=[1.0] * len(items),
                explored=[False] * len(items),
                served_at=at,
            )
        )
        await session.flush()
        return exposure_id

    async def did(
        member: uuid.UUID,
        item: str,
        kind: InteractionKind,
        day: float,
        exposure_id: uuid.UUID | None = None,
        weight: float = 1.0,
    ) -> None:
        at: datetime = start + timedelta(days=day)
        await add_interaction(
            session, brand.id, member, item, kind, weight, occurred_at=at, exposure_id=exposure_id
        )

    click, dismiss, redeem = (
        InteractionKind.CLICK,
        InteractionKind.DISMISS,
        InteractionKind.REDEMPTION,
    )
    # Holdout: ann twice (5 items), bob once (2 items).
    a1 = await exposure(ann, "holdout", 1, ["perk:1", "perk:2", "perk:3"])
    a2 = await exposure(ann, "holdout", 3, ["perk:1", "post:9"])
    await exposure(bob, "holdout", 2, ["perk:4", "perk:5"])
    await did(ann, "perk:1", click, 1.1, a1)
    await did(ann, "perk:1", click, 1.2, a1)  # the same item of the same list: counted once
    await did(ann, "perk:1", click, 3.1, a2)
    await did(ann, "perk:3", dismiss, 1.1, a1, -2.0)
    await did(ann, "perk:2", redeem, 7.9, weight=3.0)  # shown day 1: within 7 days
    await did(ann, "perk:1", redeem, 9.0, weight=3.0)  # shown day 3: within 7 days
    await did(bob, "perk:4", redeem, 9.5, weight=3.0)  # shown day 2: too late
    await did(bob, "perk:8", redeem, 2.5, weight=3.0)  # never shown
    await did(bob, "perk:5", redeem, 1.5, weight=3.0)  # before it was shown
    # Serving: cat once (4 items). A cancellation (a negative redemption) is no redemption.
    c1 = await exposure(cat, "serving", 4, ["perk:1", "perk:2", "perk:6", "perk:7"])
    await did(cat, "perk:6", click, 4.5, c1)
    await did(cat, "perk:2", click, 4.6, a1)  # names another member's list: not cat's
    await did(cat, "perk:7", redeem, 5.0, weight=3.0)
    await did(cat, "perk:7", redeem, 5.1, weight=-3.0)
    # Not counted: before the start, after the end, outside every arm.
    await exposure(dan, "holdout", -1, ["perk:1"])
    await exposure(dan, "holdout", 16, ["perk:1"])
    await exposure(dan, "", 5, ["perk:1"])

    response = await api.get(f"{PATH}/{experiment.id}/report", headers=brand.headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["attribution_days"] == 7
    assert body["experiment"]["running"] is False
    assert body["arms"] == [
        {
            "arm": "holdout",
            "policy": "popular",
            "share": 0.1,
            "members_exposed": 2,
            "exposures": 3,
            "items_shown": 7,
            "clicks": 2,
            "dismissals": 1,
            "click_rate": pytest.approx(2 / 7),
            "redemptions": 2,
            "redemption_rate": 1.0,
        },
        {
            "arm": "serving",
            "policy": "serving",
            "share": 0.9,
            "members_exposed": 1,
            "exposures": 1,
            "items_shown": 4,
            "clicks": 1,
            "dismissals": 0,
            "click_rate": 0.25,
            "redemptions": 1,
            "redemption_rate": 1.0,
        },
    ]


async def test_a_report_with_no_exposures_has_no_rates(
    api: httpx.AsyncClient, brand: BrandFixture
) -> None:
    created = await api.post(
        PATH, json={"name": "x", "arms": [_arm("holdout", 1.0)]}, headers=brand.headers
    )

    report = await api.get(f"{PATH}/{created.json()['id']}/report", headers=brand.headers)

    assert report.json()["arms"] == [
        {
            "arm": "holdout",
            "policy": "popular",
            "share": 1.0,
            "members_exposed": 0,
            "exposures": 0,
            "items_shown": 0,
            "clicks": 0,
            "dismissals": 0,
            "click_rate": None,
            "redemptions": 0,
            "redemption_rate": None,
        }
    ]
