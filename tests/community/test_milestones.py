"""Milestones: what reaches them (events replayed into the consumer's handler, the anniversary
job on a fixed clock), each exactly once, the member's list, and prompts made of them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.milestones import service as milestones
from services.community.milestones.consumer import (
    MILESTONES_CONSUMER,
    apply_milestone_event,
    apply_milestone_events,
)
from services.community.milestones.models import ReachedMilestone, ReactionTally
from services.community.milestones.tasks import ANNIVERSARIES_JOB, celebrate_anniversaries
from services.community.models import INBOX, CommunityMember, PostKind, Prompt
from services.community.module import COMMUNITY
from services.community.posts.events import (
    PostApproved,
    PostData,
    ReactionAdded,
    ReactionData,
    ReactionKind,
    ReactionRemoved,
)
from services.rewards.events import TierChanged, TierChangedData
from tests.community.conftest import MakeMember, community_events
from tests.conftest import BrandFixture, MemberFixture

MINE = "/community/v1/me/milestones"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def approved(author: MemberFixture, when: datetime) -> PostApproved:
    return PostApproved(
        brand_id=author.brand_id,
        subject_id=author.id,
        occurred_at=when,
        data=PostData(
            post_id=uuid.uuid4(),
            author_id=author.id,
            kind=PostKind.POST,
            status="published",
            group_id=None,
            prompt_id=None,
            review_sku=None,
            rating=None,
            tags=[],
            skus=[],
            incentivised=False,
        ),
    )


def reaction(
    by: uuid.UUID, to: MemberFixture, when: datetime, *, removed: bool = False
) -> ReactionAdded | ReactionRemoved:
    data = ReactionData(
        member_id=by,
        kind=ReactionKind.LOVE,
        post_id=uuid.uuid4(),
        comment_id=None,
        target_author_id=to.id,
    )
    cls = ReactionRemoved if removed else ReactionAdded
    return cls(brand_id=to.brand_id, subject_id=by, occurred_at=when, data=data)


def tier_changed(
    member: MemberFixture, to_tier: str | None, direction: str, when: datetime
) -> TierChanged:
    return TierChanged(
        brand_id=member.brand_id,
        subject_id=member.id,
        occurred_at=when,
        data=TierChangedData(
            member_id=member.id,
            from_tier_id=None,
            from_tier=None,
            to_tier_id=uuid.uuid4() if to_tier else None,
            to_tier=to_tier,
            direction=direction,  # type: ignore[arg-type]
            reason="spend",
            window_spend_minor=10_000,
        ),
    )


def reached(member: MemberFixture, milestone: str, when: datetime) -> tuple[str, dict[str, Any]]:
    return (
        "milestone.reached",
        {"member_id": str(member.id), "milestone": milestone, "reached_at": iso(when)},
    )


async def count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(ReachedMilestone)) or 0)


async def test_the_first_approved_post_is_a_milestone_once(
    client: httpx.AsyncClient, session: AsyncSession, member: MemberFixture
) -> None:
    first = at("2030-01-05T10:00:00")
    await apply_milestone_event(session, approved(member, first))
    await apply_milestone_event(session, approved(member, at("2030-01-06T10:00:00")))

    assert await community_events(session) == [reached(member, "first_post", first)]
    mine = await client.get(MINE, headers=member.headers)
    assert mine.json() == {
        "items": [{"milestone": "first_post", "reached_at": iso(first)}],
        "next": None,
        "previous": None,
    }
    assert await milestones.has_reached(session, member.brand_id, member.id, "first_post")


async def test_the_hundredth_reaction_received_is_a_milestone_exactly_once(
    session: AsyncSession, member: MemberFixture
) -> None:
    when = at("2030-02-01T09:00:00")
    fans = [uuid.uuid4() for _ in range(101)]
    for fan in fans[:99]:
        await apply_milestone_event(session, reaction(fan, member, when))
    await apply_milestone_event(session, reaction(member.id, member, when))  # one's own: no
    assert await community_events(session) == []

    hundredth = at("2030-02-02T09:00:00")
    await apply_milestone_event(session, reaction(fans[99], member, hundredth))
    assert await community_events(session) == [reached(member, "reactions:100", hundredth)]

    # Past 100, back under it and up to 100 again: still celebrated only the once.
    await apply_milestone_event(session, reaction(fans[100], member, when))
    await apply_milestone_event(session, reaction(fans[100], member, when, removed=True))
    await apply_milestone_event(session, reaction(fans[99], member, when, removed=True))
    await apply_milestone_event(session, reaction(fans[99], member, when))
    assert await community_events(session) == [reached(member, "reactions:100", hundredth)]
    assert await count(session) == 1


async def test_taking_reactions_back_delays_the_hundredth(
    session: AsyncSession, member: MemberFixture
) -> None:
    when = at("2030-02-01T09:00:00")
    fan = uuid.uuid4()
    await apply_milestone_event(session, reaction(fan, member, when, removed=True))  # floor at 0
    for _ in range(99):
        await apply_milestone_event(session, reaction(fan, member, when))
    await apply_milestone_event(session, reaction(fan, member, when, removed=True))
    await apply_milestone_event(session, reaction(fan, member, when))
    assert await community_events(session) == []  # 99 net
    await apply_milestone_event(session, reaction(fan, member, when))
    assert await community_events(session) == [reached(member, "reactions:100", when)]


async def test_a_batch_counts_its_reactions_one_at_a_time(
    session: AsyncSession, member: MemberFixture, other_member: MemberFixture
) -> None:
    """As the consumer runner hands over a stream read: the hundredth is met at the very event
    that makes it, with the floor at zero and taking back counted in order."""
    start = at("2030-02-01T09:00:00")
    fan = uuid.uuid4()
    moves = [(True, member)] + [(False, member)] * 99 + [(True, member), (False, member)]
    moves += [(False, other_member)] * 5 + [(False, member)]  # the hundredth
    moves += [(False, member), (True, member), (True, member), (False, member)]
    events = [
        reaction(fan, whose, start + timedelta(minutes=i), removed=removed)
        for i, (removed, whose) in enumerate(moves)
    ]
    hundredth = start + timedelta(minutes=107)
    assert moves[107] == (False, member)

    await apply_milestone_events(session, events)

    assert await community_events(session) == [reached(member, "reactions:100", hundredth)]
    tallies = dict(
        (await session.execute(select(ReactionTally.member_id, ReactionTally.received))).all()
    )
    assert tallies == {member.id: 100, other_member.id: 5}


async def test_each_tier_reached_going_up_is_a_milestone_once(
    session: AsyncSession, member: MemberFixture
) -> None:
    gold = at("2030-03-01T12:00:00")
    await apply_milestone_event(session, tier_changed(member, "Gold", "up", gold))
    await apply_milestone_event(session, tier_changed(member, "Silver", "down", gold))
    await apply_milestone_event(session, tier_changed(member, None, "up", gold))
    await apply_milestone_event(session, tier_changed(member, "Gold", "up", at("2031-03-01")))

    assert await community_events(session) == [reached(member, "tier:Gold", gold)]
    assert not await milestones.has_reached(session, member.brand_id, member.id, "tier:Silver")


async def test_join_anniversaries_are_celebrated_once_a_year_on_a_fixed_clock(
    client: httpx.AsyncClient,
    session: AsyncSession,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    await session.execute(
        update(CommunityMember)
        .where(CommunityMember.member_id == member.id)
        .values(joined_at=at("2022-03-10T12:00:00"))
    )
    # Erased or suspended members are not celebrated.
    await session.execute(
        update(CommunityMember)
        .where(CommunityMember.member_id == other_member.id)
        .values(joined_at=at("2022-03-10T12:00:00"), member_status="suspended")
    )

    assert await celebrate_anniversaries(session, now=at("2023-03-10T11:59:59")) == 0
    assert await celebrate_anniversaries(session, now=at("2023-03-10T12:00:00")) == 1
    assert await celebrate_anniversaries(session, now=at("2023-03-10T12:00:00")) == 0
    assert await celebrate_anniversaries(session, now=at("2023-03-11T07:13:00")) == 0
    assert await celebrate_anniversaries(session, now=at("2023-09-10T07:13:00")) == 0
    # The job missed two days: the second anniversary is made up, dated on the day itself.
    assert await celebrate_anniversaries(session, now=at("2024-03-12T07:13:00")) == 1
    assert await celebrate_anniversaries(session, now=at("2024-03-13T07:13:00")) == 0
    # The third passed while the job did not run for months: too late to celebrate.
    assert await celebrate_anniversaries(session, now=at("2025-05-01T07:13:00")) == 0
    assert await celebrate_anniversaries(session, now=at("2026-03-10T12:00:00")) == 1

    assert await community_events(session) == [
        reached(member, "anniversary:1", at("2023-03-10T12:00:00")),
        reached(member, "anniversary:2", at("2024-03-10T12:00:00")),
        reached(member, "anniversary:4", at("2026-03-10T12:00:00")),
    ]
    first = await client.get(f"{MINE}?limit=2", headers=member.headers)
    assert [m["milestone"] for m in first.json()["items"]] == ["anniversary:4", "anniversary:2"]
    rest = await client.get(f"{MINE}?after={first.json()['next']}", headers=member.headers)
    assert rest.json() == {
        "items": [{"milestone": "anniversary:1", "reached_at": "2023-03-10T12:00:00Z"}],
        "next": None,
        "previous": None,
    }


async def test_a_29_february_joiner_is_celebrated_from_1_march_in_common_years(
    session: AsyncSession, member: MemberFixture
) -> None:
    await session.execute(
        update(CommunityMember)
        .where(CommunityMember.member_id == member.id)
        .values(joined_at=at("2024-02-29T08:00:00"))
    )
    assert await celebrate_anniversaries(session, now=at("2025-02-28T23:59:00")) == 0
    assert await celebrate_anniversaries(session, now=at("2025-03-01T00:00:00")) == 1
    assert await celebrate_anniversaries(session, now=at("2028-02-29T08:00:00")) == 1
    assert [data["milestone"] for _, data in await community_events(session)] == [
        "anniversary:1",
        "anniversary:4",
    ]


async def test_a_member_of_another_brand_sees_none_of_them(
    client: httpx.AsyncClient,
    session: AsyncSession,
    member: MemberFixture,
    other_brand: BrandFixture,
    make_member: MakeMember,
) -> None:
    await apply_milestone_event(session, approved(member, at("2030-01-05T10:00:00")))
    stranger = await make_member("stranger", other_brand)

    assert (await client.get(MINE, headers=stranger.headers)).json() == {
        "items": [],
        "next": None,
        "previous": None,
    }
    assert not await milestones.has_reached(session, other_brand.id, member.id, "first_post")
    staff = await client.get(MINE, headers=other_brand.headers)
    assert (staff.status_code, staff.json()["error"]) == (403, "Forbidden")


async def test_staff_make_a_prompt_for_a_milestone(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture
) -> None:
    response = await client.post(
        "/community/v1/milestone-prompts",
        json={
            "milestone": "anniversary:3",
            "title": "Three years with us — share your favourite find",
            "tags": ["Anniversary", "anniversary"],
            "starts_at": "2030-01-01T00:00:00Z",
            "ends_at": "2030-12-31T00:00:00+01:00",
            "points": 50,
        },
        headers=brand.headers,
    )

    assert response.status_code == 201, response.text
    prompt = response.json()
    assert prompt == {
        "id": prompt["id"],
        "title": "Three years with us — share your favourite find",
        "body": "",
        "tags": ["anniversary"],
        "starts_at": "2030-01-01T00:00:00Z",
        "ends_at": "2030-12-30T23:00:00Z",
        "audience": "milestone",
        "audience_tier_ids": [],
        "audience_group_ids": [],
        "audience_milestone": "anniversary:3",
        "points": 50,
        "answer_count": 0,
        "created_at": prompt["created_at"],
    }
    listed = await client.get(f"/community/v1/prompts/{prompt['id']}", headers=brand.headers)
    assert listed.json() == prompt
    stored = await session.get(Prompt, uuid.UUID(prompt["id"]))
    assert stored is not None
    assert (stored.brand_id, stored.audience_milestone) == (brand.id, "anniversary:3")


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"milestone": "anniversary:0"}, "UnknownMilestone"),
        ({"milestone": "birthday"}, "UnknownMilestone"),
        ({"milestone": "reactions:50"}, "UnknownMilestone"),
        ({"milestone": "tier:"}, "UnknownMilestone"),
        ({"milestone": ""}, "ValidationError"),
        ({"title": ""}, "ValidationError"),
        ({"ends_at": "2000-01-01T00:00:00Z"}, "ValidationError"),
        ({"points": 0}, "ValidationError"),
    ],
)
async def test_bad_milestone_prompts_are_refused_and_nothing_is_written(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    changes: dict[str, Any],
    code: str,
) -> None:
    body = {"milestone": "first_post", "title": "Your first post!", **changes}
    response = await client.post(
        "/community/v1/milestone-prompts", json=body, headers=brand.headers
    )

    assert (response.status_code, response.json()["error"]) == (422, code)
    assert await session.scalar(select(func.count()).select_from(Prompt)) == 0


async def test_members_cannot_make_milestone_prompts(
    client: httpx.AsyncClient, session: AsyncSession, member: MemberFixture
) -> None:
    response = await client.post(
        "/community/v1/milestone-prompts",
        json={"milestone": "first_post", "title": "Hi"},
        headers=member.headers,
    )
    assert (response.status_code, response.json()["error"]) == (403, "Forbidden")
    assert await session.scalar(select(func.count()).select_from(Prompt)) == 0


def test_the_consumer_and_the_daily_job_are_wired_into_the_service() -> None:
    assert MILESTONES_CONSUMER in COMMUNITY.consumers
    assert MILESTONES_CONSUMER.inbox is INBOX
    assert set(MILESTONES_CONSUMER.streams) == {
        "kinfolk:events:community",
        "kinfolk:events:rewards",
    }
    wanted = ["post.approved", "reaction.added", "reaction.removed", "tier.changed"]
    assert all(MILESTONES_CONSUMER.wants(t) for t in wanted)
    assert not MILESTONES_CONSUMER.wants("post.created")
    assert ANNIVERSARIES_JOB in COMMUNITY.jobs
    assert ANNIVERSARIES_JOB.cron is not None
    assert (ANNIVERSARIES_JOB.cron.day, ANNIVERSARIES_JOB.cron.hour) == (None, 7)
