"""Challenges: staff define them, members join, progress from the community's own events,
completion exactly once with its badge and event, streaks across UTC days, brands apart."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.challenges.consumer import CHALLENGES_CONSUMER
from services.community.challenges.models import (
    Challenge,
    ChallengeActionRecord,
    ChallengeParticipant,
)
from services.community.challenges.streaks import Runs, current, runs
from services.community.experiences.events import CheckedInData, ExperienceCheckedIn
from services.community.experiences.models import CheckInMethod
from services.community.reputation.models import MemberBadge
from services.kernel.clock import utcnow
from tests.community.conftest import MakeMember, community_events
from tests.community.engagement_helpers import (
    comment,
    create_badge,
    delete_post,
    deliver,
    error,
    ids,
    post,
    react,
    replay,
)
from tests.conftest import BrandFixture, MemberFixture

STEPS = [
    {"action": "post", "target": 2},
    {"action": "prompt_answer", "target": 1},
    {"action": "comment", "target": 1},
    {"action": "reaction", "target": 1},
]

# The consumer one event at a time, and a batch at a time as the runner hands it a read.
BOTH_WAYS = pytest.mark.parametrize("batched", [False, True], ids=["one_by_one", "batched"])


def iso(delta: timedelta) -> str:
    return (utcnow() + delta).isoformat()


def challenge_body(**fields: Any) -> dict[str, Any]:
    return {
        "title": "Summer glow week",
        "description": "Share, answer, cheer others on",
        "starts_at": iso(timedelta(hours=-1)),
        "ends_at": iso(timedelta(days=7)),
        "steps": STEPS,
        **fields,
    }


async def create_challenge(
    client: httpx.AsyncClient, brand: BrandFixture, **fields: Any
) -> dict[str, Any]:
    response = await client.post(
        "/community/v1/challenges", json=challenge_body(**fields), headers=brand.headers
    )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def join(
    client: httpx.AsyncClient, member: MemberFixture, challenge_id: str
) -> httpx.Response:
    return await client.post(
        f"/community/v1/challenges/{challenge_id}/participants", headers=member.headers
    )


async def mine(
    client: httpx.AsyncClient, member: MemberFixture, challenge_id: str
) -> dict[str, Any] | None:
    response = await client.get(
        f"/community/v1/me/challenges/{challenge_id}", headers=member.headers
    )
    assert response.status_code == 200, response.text
    progress: dict[str, Any] | None = response.json()["progress"]
    return progress


def counts(progress: dict[str, Any] | None) -> dict[str, tuple[int, bool]]:
    assert progress is not None
    return {s["action"]: (s["count"], s["done"]) for s in progress["steps"]}


async def challenge_count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Challenge)) or 0)


# --- Staff --------------------------------------------------------------------------------------


async def test_staff_create_read_list_and_change_a_challenge(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture
) -> None:
    badge = await create_badge(client, brand)
    body = challenge_body(
        starts_at="2030-06-01T00:00:00+02:00",
        ends_at="2030-06-15T00:00:00Z",
        points=250,
        badge_id=badge["id"],
    )
    response = await client.post("/community/v1/challenges", json=body, headers=brand.headers)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created == {
        "id": created["id"],
        "title": "Summer glow week",
        "description": "Share, answer, cheer others on",
        "starts_at": "2030-05-31T22:00:00Z",
        "ends_at": "2030-06-15T00:00:00Z",
        "points": 250,
        "badge_id": badge["id"],
        "steps": STEPS,
        "participant_count": 0,
        "completed_count": 0,
        "created_at": created["created_at"],
    }
    fetched = await client.get(f"/community/v1/challenges/{created['id']}", headers=brand.headers)
    assert fetched.json() == created
    listed = await client.get("/community/v1/challenges", headers=brand.headers)
    assert ids(listed) == [created["id"]]

    # Not started yet: steps may change.
    changed = await client.patch(
        f"/community/v1/challenges/{created['id']}",
        json={"steps": [{"action": "experience", "target": 1}], "points": None},
        headers=brand.headers,
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["steps"], changed.json()["points"]) == (
        [{"action": "experience", "target": 1}],
        None,
    )
    # A challenge nobody joined may be deleted.
    deleted = await client.delete(
        f"/community/v1/challenges/{created['id']}", headers=brand.headers
    )
    assert deleted.status_code == 204
    assert await challenge_count(session) == 0


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"title": ""}, "ValidationError"),
        ({"steps": []}, "ValidationError"),
        ({"steps": [{"action": "post", "target": 0}]}, "ValidationError"),
        ({"steps": [{"action": "post", "target": "3"}]}, "ValidationError"),
        ({"steps": [{"action": "dance", "target": 1}]}, "ValidationError"),
        (
            {"steps": [{"action": "post", "target": 1}, {"action": "post", "target": 3}]},
            "ValidationError",
        ),
        (
            {"starts_at": "2030-06-02T00:00:00Z", "ends_at": "2030-06-01T00:00:00Z"},
            "ValidationError",
        ),
        ({"points": 0}, "ValidationError"),
        ({"badge_id": str(uuid.uuid4())}, "UnknownBadge"),
        ({"reward": "a hug"}, "ValidationError"),
    ],
)
async def test_bad_challenges_are_refused_and_nothing_is_written(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    fields: dict[str, Any],
    code: str,
) -> None:
    response = await client.post(
        "/community/v1/challenges", json=challenge_body(**fields), headers=brand.headers
    )
    assert error(response) == (422, code)
    assert await challenge_count(session) == 0


async def test_a_started_challenge_keeps_its_steps_and_one_joined_is_kept(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    created = await create_challenge(client, brand)
    url = f"/community/v1/challenges/{created['id']}"
    for body in ({"steps": [{"action": "post", "target": 1}]}, {"starts_at": iso(timedelta())}):
        response = await client.patch(url, json=body, headers=brand.headers)
        assert error(response) == (409, "ChallengeStarted")
    extended = await client.patch(
        url,
        json={"ends_at": iso(timedelta(days=30)), "title": "Longer glow"},
        headers=brand.headers,
    )
    assert extended.status_code == 200, extended.text
    assert extended.json()["steps"] == STEPS
    assert (await join(client, member, created["id"])).status_code == 201
    assert error(await client.delete(url, headers=brand.headers)) == (
        409,
        "ChallengeHasParticipants",
    )
    assert await challenge_count(session) == 1


# --- Joining and progress -----------------------------------------------------------------------


async def test_joining_is_idempotent_and_closed_after_the_end(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    created = await create_challenge(client, brand)
    first = await join(client, member, created["id"])
    assert first.status_code == 201, first.text
    again = await join(client, member, created["id"])
    assert again.status_code == 200
    assert again.json() == first.json()
    assert first.json()["challenge"]["participant_count"] == 1
    assert first.json()["progress"] == {
        "member_id": str(member.id),
        "joined_at": first.json()["progress"]["joined_at"],
        "completed_at": None,
        "steps": [{**step, "count": 0, "done": False} for step in STEPS],
        "streak": {"current": 0, "longest": 0, "last_active_day": None},
    }

    ended = await create_challenge(
        client, brand, starts_at="2020-01-01T00:00:00Z", ends_at="2020-02-01T00:00:00Z"
    )
    assert error(await join(client, member, ended["id"])) == (409, "ChallengeClosed")
    assert error(await join(client, member, str(uuid.uuid4()))) == (404, "ChallengeNotFound")
    assert await session.scalar(select(func.count()).select_from(ChallengeParticipant)) == 1
    # The open list leaves out the ended challenge; `joined` lists mine.
    open_list = await client.get("/community/v1/me/challenges", headers=member.headers)
    assert ids_of(open_list) == [created["id"]]
    joined = await client.get(
        "/community/v1/me/challenges", params={"joined": "true"}, headers=member.headers
    )
    assert ids_of(joined) == [created["id"]]


def ids_of(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["challenge"]["id"] for item in response.json()["items"]]


@BOTH_WAYS
async def test_progress_and_completion_exactly_once_with_badge_and_event(
    batched: bool,
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    ada, bea = member, other_member
    badge = await create_badge(client, brand)
    challenge = await create_challenge(client, brand, points=250, badge_id=badge["id"])
    assert (await join(client, ada, challenge["id"])).status_code == 201
    prompt = await client.post(
        "/community/v1/prompts", json={"title": "Your summer look"}, headers=brand.headers
    )
    assert prompt.status_code == 201, prompt.text

    theirs = await post(client, bea, "Bea's look")  # bea has not joined: counts for nobody
    own = await post(client, ada, "Ada's first")
    await react(client, ada, own["id"])  # reacting to oneself does not count
    await replay(session, CHALLENGES_CONSUMER, batched=batched)
    assert counts(await mine(client, ada, challenge["id"])) == {
        "post": (1, False),
        "prompt_answer": (0, False),
        "comment": (0, False),
        "reaction": (0, False),
    }

    answered = await client.post(
        f"/community/v1/prompts/{prompt.json()['id']}/answers",
        json={"body": "Linen everything"},
        headers=ada.headers,
    )
    assert answered.status_code == 201, answered.text
    await comment(client, ada, theirs["id"])
    await react(client, ada, theirs["id"], "love")
    await react(client, ada, theirs["id"], "wow")  # same post: one reaction action
    await replay(session, CHALLENGES_CONSUMER, batched=batched)

    progress = await mine(client, ada, challenge["id"])
    assert progress is not None
    assert counts(progress) == {
        "post": (2, True),
        "prompt_answer": (1, True),
        "comment": (1, True),
        "reaction": (1, True),
    }
    assert progress["completed_at"] is not None
    today = utcnow().date().isoformat()
    assert progress["streak"] == {"current": 1, "longest": 1, "last_active_day": today}

    # More actions and a full replay: still one completion, one badge.
    await post(client, ada, "Ada's third")
    await replay(session, CHALLENGES_CONSUMER, batched=batched)
    events = await community_events(session)
    completed = [data for type_, data in events if type_ == "challenge.completed"]
    assert completed == [
        {
            "challenge_id": challenge["id"],
            "member_id": str(ada.id),
            "points": 250,
            "badge_id": badge["id"],
        }
    ]
    awarded = [data for type_, data in events if type_ == "badge.awarded"]
    assert awarded == [
        {
            "badge_id": badge["id"],
            "member_id": str(ada.id),
            "name": "Trendsetter",
            "source": "challenge",
            "challenge_id": challenge["id"],
        }
    ]
    assert await session.scalar(select(func.count()).select_from(MemberBadge)) == 1
    badges = await client.get("/community/v1/me/badges", headers=ada.headers)
    assert [(b["badge"]["id"], b["source"]) for b in badges.json()["items"]] == [
        (badge["id"], "challenge")
    ]
    # Removing content after completion does not undo it.
    await delete_post(client, ada, own["id"])
    await replay(session, CHALLENGES_CONSUMER, batched=batched)
    assert (await mine(client, ada, challenge["id"]) or {})["completed_at"] == progress[
        "completed_at"
    ]

    assert await mine(client, bea, challenge["id"]) is None
    staff_view = await client.get(
        f"/community/v1/challenges/{challenge['id']}/participants", headers=brand.headers
    )
    assert [p["member_id"] for p in staff_view.json()["items"]] == [str(ada.id)]
    fetched = await client.get(f"/community/v1/challenges/{challenge['id']}", headers=brand.headers)
    assert (fetched.json()["participant_count"], fetched.json()["completed_count"]) == (1, 1)


@BOTH_WAYS
async def test_removed_content_is_withdrawn_from_an_unfinished_challenge(
    batched: bool,
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
) -> None:
    challenge = await create_challenge(client, brand, steps=[{"action": "post", "target": 2}])
    await join(client, member, challenge["id"])
    first = await post(client, member, "One")
    await replay(session, CHALLENGES_CONSUMER, batched=batched)
    assert counts(await mine(client, member, challenge["id"])) == {"post": (1, False)}
    await delete_post(client, member, first["id"])
    await replay(session, CHALLENGES_CONSUMER, batched=batched)
    progress = await mine(client, member, challenge["id"])
    assert counts(progress) == {"post": (0, False)}
    assert progress is not None
    assert progress["streak"] == {"current": 0, "longest": 0, "last_active_day": None}


def test_streak_runs_and_the_current_streak_as_of_a_day() -> None:
    d = date(2030, 6, 10)
    days = [d, d + timedelta(days=1), d + timedelta(days=2), d + timedelta(days=5)]
    assert runs(days) == Runs(last=1, longest=3, last_day=d + timedelta(days=5))
    assert runs([]) == Runs(last=0, longest=0, last_day=None)
    last = d + timedelta(days=5)
    assert current(1, last, today=last) == 1  # active today
    assert current(1, last, today=last + timedelta(days=1)) == 1  # today may still extend it
    assert current(1, last, today=last + timedelta(days=2)) == 0  # a whole day missed
    assert current(0, None, today=last) == 0


def checked_in(member: MemberFixture, at: datetime, session_id: uuid.UUID) -> ExperienceCheckedIn:
    return ExperienceCheckedIn(
        brand_id=member.brand_id,
        subject_id=member.id,
        occurred_at=at,
        data=CheckedInData(
            booking_id=uuid.uuid4(),
            member_id=member.id,
            session_id=session_id,
            experience_id=uuid.uuid4(),
            method=CheckInMethod.HOST,
        ),
    )


async def test_streaks_count_consecutive_utc_days(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    challenge = await create_challenge(
        client,
        brand,
        starts_at=iso(timedelta(days=-10)),
        ends_at=iso(timedelta(days=10)),
        steps=[{"action": "experience", "target": 20}],
    )
    await join(client, member, challenge["id"])
    # As if the member had joined at the start, ten days ago.
    await session.execute(
        update(ChallengeParticipant)
        .where(ChallengeParticipant.member_id == member.id)
        .values(joined_at=utcnow() - timedelta(days=10))
    )
    today = utcnow().date()

    def day(offset: int, hour: int = 12) -> datetime:
        return datetime.combine(today + timedelta(days=offset), time(hour), tzinfo=UTC)

    async def attend(at: datetime, session_id: uuid.UUID | None = None) -> None:
        event = checked_in(member, at, session_id or uuid.uuid4())
        assert await deliver(session, CHALLENGES_CONSUMER, event)

    async def streak() -> dict[str, Any]:
        progress = await mine(client, member, challenge["id"])
        assert progress is not None
        result: dict[str, Any] = progress["streak"]
        return result

    await attend(day(-12))  # before the challenge started: not counted
    for offset in (-6, -5, -4):
        await attend(day(offset))
    same_session = uuid.uuid4()
    await attend(day(-2, hour=0), same_session)
    await attend(day(-2, hour=23), same_session)  # the same session again: counted once
    await attend(day(-1, hour=0))
    await attend(day(-1, hour=23))  # two on one day: one day of streak
    assert await streak() == {
        "current": 2,
        "longest": 3,
        "last_active_day": (today - timedelta(days=1)).isoformat(),
    }
    assert counts(await mine(client, member, challenge["id"])) == {"experience": (6, False)}

    await attend(day(-3))  # arrives late: joins both runs into one of six days
    assert await streak() == {
        "current": 6,
        "longest": 6,
        "last_active_day": (today - timedelta(days=1)).isoformat(),
    }
    await attend(day(0))
    assert await streak() == {"current": 7, "longest": 7, "last_active_day": today.isoformat()}
    assert await session.scalar(select(func.count()).select_from(ChallengeActionRecord)) == 8


@BOTH_WAYS
async def test_another_brand_sees_nothing(
    batched: bool,
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
    member: MemberFixture,
    make_member: MakeMember,
) -> None:
    challenge = await create_challenge(client, brand, steps=[{"action": "post", "target": 1}])
    await join(client, member, challenge["id"])
    stranger = await make_member("zed", other_brand)
    url = f"/community/v1/challenges/{challenge['id']}"
    for response in (
        await client.get(url, headers=other_brand.headers),
        await client.patch(url, json={"title": "Mine"}, headers=other_brand.headers),
        await client.delete(url, headers=other_brand.headers),
        await client.get(f"{url}/participants", headers=other_brand.headers),
        await join(client, stranger, challenge["id"]),
        await client.get(
            f"/community/v1/me/challenges/{challenge['id']}", headers=stranger.headers
        ),
    ):
        assert error(response) == (404, "ChallengeNotFound")
    assert ids(await client.get("/community/v1/challenges", headers=other_brand.headers)) == []
    listed = await client.get("/community/v1/me/challenges", headers=stranger.headers)
    assert listed.json()["items"] == []
    # The stranger's post counts for nobody in the brand's challenge.
    await post(client, stranger, "Elsewhere")
    await replay(session, CHALLENGES_CONSUMER, batched=batched)
    assert counts(await mine(client, member, challenge["id"])) == {"post": (0, False)}
    theirs = await client.post(
        "/community/v1/challenges",
        json=challenge_body(badge_id=(await create_badge(client, brand))["id"]),
        headers=other_brand.headers,
    )
    assert error(theirs) == (422, "UnknownBadge")
