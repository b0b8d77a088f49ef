"""Points tied to community content: pending while the content is held for review, available
once approved, voided if it is removed first and taken back if it is removed after approval.
The events are the community's own classes, fed to rewards' activity consumer as it would."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.challenges.events import ChallengeCompleted, ChallengeCompletedData
from services.community.experiences.events import (
    CheckedInData,
    ExperienceCheckedIn,
    ExperienceReviewed,
    ReviewedData,
)
from services.community.experiences.models import CheckInMethod
from services.community.milestones.events import MilestoneData, MilestoneReached
from services.community.models import ContentStatus, PostKind
from services.community.posts.events import (
    PostApproved,
    PostCreated,
    PostData,
    PostRemoved,
    PostRemovedData,
)
from services.community.prompts.events import PromptAnswered, PromptAnsweredData
from services.kernel.events import Event
from services.kernel.ids import new_id
from services.rewards.activity.consumer import handle_activity_event
from services.rewards.models import ActivityAward, AwardState, EntryKind, Program
from services.rewards.payments.service import Charge, charge
from tests.conftest import BrandFixture, MemberFixture
from tests.rewards.points_helpers import account_of, at, entries_of
from tests.rewards.rule_helpers import make_rule

WHEN = at("2024-05-01T10:00:00+00:00")


def post_data(
    member: MemberFixture, post_id: uuid.UUID, status: ContentStatus, kind: PostKind
) -> PostData:
    return PostData(
        post_id=post_id,
        author_id=member.id,
        kind=kind,
        status=status,
        group_id=None,
        prompt_id=None,
        review_sku="SKU-1" if kind == PostKind.REVIEW else None,
        rating=5 if kind == PostKind.REVIEW else None,
        tags=[],
        skus=[],
        incentivised=False,
    )


class Lifecycle:
    """The community events of one post, in the order the community writes them."""

    def __init__(
        self, member: MemberFixture, status: ContentStatus, kind: PostKind = PostKind.POST
    ) -> None:
        self.member = member
        self.post_id = new_id()
        self.kind = kind
        self.created_status = status

    def _data(self, status: ContentStatus) -> PostData:
        return post_data(self.member, self.post_id, status, self.kind)

    def created(self) -> list[Event]:
        data = self._data(self.created_status)
        events: list[Event] = [
            PostCreated(brand_id=self.member.brand_id, occurred_at=WHEN, data=data)
        ]
        if self.created_status == ContentStatus.PUBLISHED:
            events.append(PostApproved(brand_id=self.member.brand_id, occurred_at=WHEN, data=data))
        return events

    def approved(self) -> Event:
        return PostApproved(
            brand_id=self.member.brand_id,
            occurred_at=WHEN + timedelta(hours=1),
            data=self._data(ContentStatus.PUBLISHED),
        )

    def removed(self) -> Event:
        data = self._data(ContentStatus.REMOVED).model_dump()
        return PostRemoved(
            brand_id=self.member.brand_id,
            occurred_at=WHEN + timedelta(hours=2),
            data=PostRemovedData(**data, removed_by="moderator", reason="spam"),
        )


async def feed(session: AsyncSession, *events: Event) -> None:
    for event in events:
        await handle_activity_event(session, event)


async def balances(session: AsyncSession, member: MemberFixture) -> tuple[int, int, int]:
    account = await account_of(session, member.id)
    return account.available, account.pending, account.lifetime_earned


async def award_states(session: AsyncSession) -> list[AwardState]:
    return list((await session.scalars(select(ActivityAward.state))).all())


async def test_a_held_post_earns_pending_points_that_approval_makes_available(
    session: AsyncSession, brand: BrandFixture, member: MemberFixture, program: Program
) -> None:
    await make_rule(session, brand.id, "post.approved", 20, name="Post bonus")
    post = Lifecycle(member, ContentStatus.HELD)

    await feed(session, *post.created())
    assert await balances(session, member) == (0, 20, 0)
    assert await award_states(session) == [AwardState.PENDING]

    await feed(session, post.approved(), post.approved())  # a redelivery pays nothing more
    assert await balances(session, member) == (20, 0, 20)
    assert await award_states(session) == [AwardState.AVAILABLE]
    assert [(e.kind, e.bucket.value, e.points) for e in await entries_of(session, member.id)] == [
        (EntryKind.EARN, "pending", 20),
        (EntryKind.RELEASE, "pending", -20),
        (EntryKind.RELEASE, "available", 20),
    ]


async def test_a_held_post_removed_before_approval_voids_its_pending_points(
    session: AsyncSession, brand: BrandFixture, member: MemberFixture, program: Program
) -> None:
    await make_rule(session, brand.id, "post.approved", 20)
    post = Lifecycle(member, ContentStatus.HELD)

    await feed(session, *post.created(), post.removed(), post.removed())
    assert await balances(session, member) == (0, 0, 0)
    assert await award_states(session) == [AwardState.VOIDED]
    assert [(e.kind, e.points) for e in await entries_of(session, member.id)] == [
        (EntryKind.EARN, 20),
        (EntryKind.VOID, -20),
    ]


async def test_a_published_post_pays_at_once_and_removal_takes_the_points_back_even_if_spent(
    session: AsyncSession, brand: BrandFixture, member: MemberFixture, program: Program
) -> None:
    await make_rule(session, brand.id, "post.approved", 20)
    post = Lifecycle(member, ContentStatus.PUBLISHED)

    await feed(session, *post.created())
    assert await balances(session, member) == (20, 0, 20)
    spent = await charge(
        session,
        Charge(brand.id, member.id, 15, "experience_booking", "b-1", "Masterclass", WHEN),
    )
    assert spent.value == "charged"

    await feed(session, post.removed())
    assert await balances(session, member) == (-15, 0, 20)
    assert await award_states(session) == [AwardState.REVERSED]


async def test_a_review_pays_review_rules_not_post_rules(
    session: AsyncSession, brand: BrandFixture, member: MemberFixture, program: Program
) -> None:
    await make_rule(session, brand.id, "post.approved", 20)
    await make_rule(session, brand.id, "review.published", 50, name="Review bonus")

    await feed(session, *Lifecycle(member, ContentStatus.PUBLISHED, PostKind.REVIEW).created())
    assert await balances(session, member) == (50, 0, 50)
    assert [e.reason for e in await entries_of(session, member.id)] == ["Review bonus"]


async def test_content_without_a_rule_earns_nothing_and_removal_changes_nothing(
    session: AsyncSession, member: MemberFixture, program: Program
) -> None:
    post = Lifecycle(member, ContentStatus.HELD)
    await feed(session, *post.created(), post.approved(), post.removed())
    assert await balances(session, member) == (0, 0, 0)
    assert await entries_of(session, member.id) == []


def answered(post: Lifecycle, points: int | None) -> PromptAnswered:
    return PromptAnswered(
        brand_id=post.member.brand_id,
        occurred_at=WHEN,
        data=PromptAnsweredData(
            prompt_id=new_id(),
            post_id=post.post_id,
            member_id=post.member.id,
            status=post.created_status,
            points=points,
        ),
    )


async def test_a_held_prompt_answer_pays_the_prompts_points_pending_and_follows_its_post(
    session: AsyncSession, brand: BrandFixture, member: MemberFixture, program: Program
) -> None:
    await make_rule(session, brand.id, "prompt.answered", 5, name="Prompt answered")
    answer = Lifecycle(member, ContentStatus.HELD)

    await feed(session, *answer.created(), answered(answer, 30), answered(answer, 30))
    assert await balances(session, member) == (0, 30, 0)
    await feed(session, answer.approved())
    assert await balances(session, member) == (30, 0, 30)
    await feed(session, answer.removed())
    assert await balances(session, member) == (0, 0, 30)
    assert await award_states(session) == [AwardState.REVERSED]


async def test_a_prompt_without_its_own_points_pays_the_rules_points(
    session: AsyncSession, brand: BrandFixture, member: MemberFixture, program: Program
) -> None:
    await make_rule(session, brand.id, "prompt.answered", 5)
    answer = Lifecycle(member, ContentStatus.PUBLISHED)
    await feed(session, *answer.created(), answered(answer, None))
    assert await balances(session, member) == (5, 0, 5)


async def test_attendance_reviews_challenges_and_milestones_pay_the_member_in_the_event(
    session: AsyncSession, brand: BrandFixture, member: MemberFixture, program: Program
) -> None:
    await make_rule(session, brand.id, "experience.attended", 15, name="Attended")
    await make_rule(session, brand.id, "experience.reviewed", 3, name="Reviewed")
    await make_rule(session, brand.id, "challenge.completed", 1, name="Challenge")
    await make_rule(session, brand.id, "milestone.reached", 10, name="Milestone")
    ids = {"booking_id": new_id(), "session_id": new_id(), "experience_id": new_id()}
    events: list[Event] = [
        ExperienceCheckedIn(
            brand_id=brand.id,
            occurred_at=WHEN,
            data=CheckedInData(**ids, member_id=member.id, method=CheckInMethod.HOST),
        ),
        ExperienceReviewed(
            brand_id=brand.id,
            occurred_at=WHEN,
            data=ReviewedData(
                review_id=new_id(),
                experience_id=ids["experience_id"],
                session_id=ids["session_id"],
                member_id=member.id,
                host_member_id=None,
                rating=5,
            ),
        ),
        ChallengeCompleted(
            brand_id=brand.id,
            occurred_at=WHEN,
            data=ChallengeCompletedData(
                challenge_id=new_id(), member_id=member.id, points=100, badge_id=None
            ),
        ),
        MilestoneReached(
            brand_id=brand.id,
            occurred_at=WHEN,
            data=MilestoneData(member_id=member.id, milestone="first_post", reached_at=WHEN),
        ),
    ]
    await feed(session, *events, *events)  # redelivered: each pays once
    assert await balances(session, member) == (128, 0, 128)
    assert [(e.reason, e.points) for e in await entries_of(session, member.id)] == [
        ("Attended", 15),
        ("Reviewed", 3),
        ("Challenge", 100),
        ("Milestone", 10),
    ]
