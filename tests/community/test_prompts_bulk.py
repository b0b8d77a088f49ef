"""The bulk path for prompt answers: the same answers, once through `prompts.service.answer` with
the clock at each answer's moment and once through `prompts.bulk.load_answers`, leave the same
posts, counters and events; a refused batch writes nothing."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.errors import MemberNotFound, MemberSuspended, TrustLevelTooLow
from services.community.members.service import known_member
from services.community.models import OUTBOX, CommunityMember, Post, Prompt
from services.community.posts import service as posts_service
from services.community.posts.errors import ReviewExists
from services.community.posts.schemas import PostCreate
from services.community.prompts import service as prompts_service
from services.community.prompts.bulk import HistoricAnswer, find_prompt, has_answered, load_answers
from services.community.prompts.errors import NotInAudience, PromptClosed, PromptNotFound
from services.kernel.clock import utcnow
from services.kernel.errors import KinfolkError, ValidationFailed
from tests.community.conftest import MakeMember
from tests.conftest import BrandFixture, MemberFixture

MEMBERS = 5
LONG = "Linen shirt, a red lip and SPF fifty, reapplied at lunch every single day"
COPIED = "Three drops of the oil on damp ends, then air dry and never brush it out"


@dataclass(frozen=True)
class Planned:
    prompt: int  # 0: with points, 1: without
    member: int
    hours: float  # after the prompts open
    post: dict[str, Any]


def _plan() -> list[Planned]:
    """Published answers, a blocklisted one, a copy by the same author within a day, the same
    text by another author days later, a copy of what two others wrote just before, @mentions
    from a new member, a link from a trusted one, a review, two answers by one member."""
    return [
        Planned(0, 0, 1, {"body": LONG, "tags": ["summer"]}),
        Planned(0, 1, 2, {"body": "My glow secret is pure snakeoil, honestly", "tags": []}),
        Planned(0, 0, 3, {"body": LONG, "tags": ["summer", "again"]}),
        Planned(1, 2, 4, {"body": "Details here: https://example.com/look", "tags": ["hair"]}),
        Planned(0, 1, 80, {"body": LONG}),
        Planned(1, 3, 5, {"body": COPIED}),
        Planned(1, 4, 6, {"body": "Thanks @ada @bea @cy for the tips!"}),
        Planned(
            1,
            0,
            7,
            {"body": "Best mask ever", "kind": "review", "review_sku": "MASK-1", "rating": 5},
        ),
        Planned(
            0,
            3,
            8,
            {
                "body": "Soft focus",
                "media": [{"url": "https://img.example.com/1.jpg", "alt": "me"}],
            },
        ),
    ]


@dataclass
class Setup:
    brand: BrandFixture
    members: list[MemberFixture]
    prompts: list[uuid.UUID]
    opened: datetime


async def _setup(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    make_member: MakeMember,
    opened: datetime,
    monkeypatch: pytest.MonkeyPatch,
) -> Setup:
    members = [
        await make_member(f"m{i}", brand_fixture=brand, display_name=f"M{i}")
        for i in range(MEMBERS)
    ]
    await session.execute(
        update(CommunityMember)
        .where(CommunityMember.member_id == members[2].id)
        .values(trust_level=1)
    )
    prompts: list[uuid.UUID] = []
    for title, points in (("Show us your summer look", 50), ("Your hair routine", None)):
        response = await client.post(
            "/community/v1/prompts",
            json={
                "title": title,
                "tags": ["summer"],
                "starts_at": opened.isoformat(),
                "ends_at": (opened + timedelta(days=10)).isoformat(),
                **({"points": points} if points else {}),
            },
            headers=brand.headers,
        )
        assert response.status_code == 201, response.text
        prompts.append(uuid.UUID(response.json()["id"]))
    response = await client.post(
        "/community/v1/moderation/blocklist", json={"term": "snakeoil"}, headers=brand.headers
    )
    assert response.status_code == 201, response.text
    # Two other members wrote COPIED just before: the answer with it is a duplicate.
    for i in (1, 2):
        at = opened + timedelta(hours=4, minutes=i)
        monkeypatch.setattr(posts_service, "utcnow", lambda at=at: at)
        monkeypatch.setattr("services.community.moderation.screening.utcnow", lambda at=at: at)
        author = await known_member(session, brand.id, members[i].id)
        await posts_service.create_post(session, author, PostCreate(body=COPIED))
    return Setup(brand, members, prompts, opened)


async def _online(
    session: AsyncSession, setup: Setup, plan: list[Planned], monkeypatch: pytest.MonkeyPatch
) -> None:
    for planned in sorted(plan, key=lambda p: p.hours):  # as time went by
        at = setup.opened + timedelta(hours=planned.hours)
        monkeypatch.setattr(posts_service, "utcnow", lambda at=at: at)
        monkeypatch.setattr("services.community.moderation.screening.utcnow", lambda at=at: at)
        member = await known_member(session, setup.brand.id, setup.members[planned.member].id)
        await prompts_service.answer(
            session,
            member,
            setup.prompts[planned.prompt],
            PostCreate.model_validate(planned.post),
            now=at,
        )


def _historic(setup: Setup, plan: list[Planned]) -> list[HistoricAnswer]:
    return [
        HistoricAnswer(
            prompt_id=setup.prompts[p.prompt],
            member_id=setup.members[p.member].id,
            answered_at=setup.opened + timedelta(hours=p.hours),
            post=PostCreate.model_validate(p.post),
        )
        for p in plan
    ]


def _names(setup: Setup, posts: list[Post]) -> dict[str, str]:
    """Ids as text, to what they stand for in either brand."""
    names = {str(m.id): f"member {i}" for i, m in enumerate(setup.members)}
    names |= {str(p): f"prompt {i}" for i, p in enumerate(setup.prompts)}
    names |= {str(p.id): f"post {i}" for i, p in enumerate(posts)}
    return names


def _named(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {key: _named(item, names) for key, item in value.items()}
    if isinstance(value, list):
        return [_named(item, names) for item in value]
    if isinstance(value, uuid.UUID):
        return names.get(str(value), "<id>")
    if isinstance(value, str):
        return names.get(value, value)
    return value


async def _state(session: AsyncSession, setup: Setup) -> dict[str, Any]:
    """Everything the answers left in the brand, ids replaced by what they stand for."""
    posts = list(
        (
            await session.scalars(
                select(Post)
                .where(Post.brand_id == setup.brand.id)
                .order_by(Post.created_at, Post.body)
                .execution_options(populate_existing=True)
            )
        ).all()
    )
    names = _names(setup, posts)
    columns = [c.name for c in Post.__table__.columns if c.name not in ("id", "brand_id")]
    counts = (
        await session.execute(
            select(Prompt.id, Prompt.answer_count)
            .where(Prompt.brand_id == setup.brand.id)
            .execution_options(populate_existing=True)
        )
    ).all()
    table = OUTBOX.table
    events = (
        await session.execute(
            select(table.c.type, table.c.subject_id, table.c.occurred_at, table.c.payload)
            .where(table.c.brand_id == setup.brand.id, table.c.type.in_(_TYPES))
            .order_by(table.c.id)
        )
    ).all()
    return {
        "posts": [_named({c: getattr(p, c) for c in columns}, names) for p in posts],
        "answer_counts": sorted((names[str(i)], n) for i, n in counts),
        "events": [
            (t, _named(subject, names), at, _named(payload["data"], names))
            for t, subject, at, payload in events
        ],
    }


_TYPES = ("post.created", "post.approved", "prompt.answered")


async def test_a_bulk_load_leaves_what_answering_online_leaves(
    session: AsyncSession,
    client: httpx.AsyncClient,
    brand: BrandFixture,
    other_brand: BrandFixture,
    make_member: MakeMember,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opened = (utcnow() - timedelta(days=20)).replace(microsecond=0)
    plan = _plan()
    online = await _setup(client, session, brand, make_member, opened, monkeypatch)
    bulk = await _setup(client, session, other_brand, make_member, opened, monkeypatch)

    await _online(session, online, plan, monkeypatch)
    report = await load_answers(session, bulk.brand.id, _historic(bulk, plan))

    expected, got = await _state(session, online), await _state(session, bulk)
    assert got == expected
    # The data exercises what it claims to: every hold reason the first pass has here.
    answers = [row for row in got["posts"] if row["prompt_id"] is not None]
    reasons = sorted(reason for row in answers for reason in row["held_reasons"])
    assert reasons == ["blocklist", "duplicate", "duplicate", "mentions"]
    assert (report.answers, report.held, report.published) == (9, 4, 5)
    assert report.events == 9 + 9 + 5
    assert got["answer_counts"] == [("prompt 0", 5), ("prompt 1", 4)]
    # Ids are UUIDv7s of the answers' moments: they sort as the online path's would.
    rows = (
        await session.scalars(
            select(Post).where(Post.brand_id == bulk.brand.id, Post.prompt_id.is_not(None))
        )
    ).all()
    for post in rows:
        assert (post.id.int >> 80) == int(post.created_at.timestamp() * 1000)
    assert await find_prompt(session, bulk.brand.id, "Your hair routine", opened) is not None
    assert await has_answered(session, bulk.prompts[1], bulk.members[4].id)
    assert not await has_answered(session, bulk.prompts[1], bulk.members[1].id)


async def _written(session: AsyncSession, brand_id: uuid.UUID) -> tuple[int, int, int]:
    posts = await session.scalar(
        select(func.count()).select_from(Post).where(Post.brand_id == brand_id)
    )
    events = await session.scalar(
        select(func.count()).select_from(OUTBOX.table).where(OUTBOX.table.c.brand_id == brand_id)
    )
    answered = await session.scalar(
        select(func.sum(Prompt.answer_count))
        .where(Prompt.brand_id == brand_id)
        .execution_options(populate_existing=True)
    )
    return int(posts or 0), int(events or 0), int(answered or 0)


async def test_a_refused_batch_writes_nothing(
    session: AsyncSession,
    client: httpx.AsyncClient,
    brand: BrandFixture,
    make_member: MakeMember,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opened = (utcnow() - timedelta(days=20)).replace(microsecond=0)
    setup = await _setup(client, session, brand, make_member, opened, monkeypatch)
    response = await client.post(
        "/community/v1/prompts",
        json={
            "title": "Gold only",
            "starts_at": opened.isoformat(),
            "audience": "tiers",
            "audience_tier_ids": [str(uuid.uuid4())],
        },
        headers=brand.headers,
    )
    gold_only = uuid.UUID(response.json()["id"])
    suspended = setup.members[3].id
    await session.execute(
        update(CommunityMember)
        .where(CommunityMember.member_id == suspended)
        .values(suspended_until=utcnow() + timedelta(days=30))
    )
    good = _historic(setup, [Planned(0, 0, 1, {"body": "A fine answer"})])[0]
    review = PostCreate(body="Nice", kind="review", review_sku="SKU-1", rating=4)
    refusals: list[tuple[dict[str, Any], type[KinfolkError]]] = [
        ({"prompt_id": uuid.uuid4()}, PromptNotFound),
        ({"answered_at": opened - timedelta(minutes=1)}, PromptClosed),
        ({"answered_at": opened + timedelta(days=10)}, PromptClosed),
        ({"answered_at": utcnow() + timedelta(minutes=5)}, ValidationFailed),
        ({"member_id": uuid.uuid4()}, MemberNotFound),
        ({"member_id": suspended}, MemberSuspended),
        ({"prompt_id": gold_only}, NotInAudience),
        ({"post": PostCreate(body="See https://example.com")}, TrustLevelTooLow),
        ({"post": review}, ReviewExists),  # a second review of SKU-1 in the batch
    ]
    before = await _written(session, brand.id)
    for changes, error in refusals:
        fields = {
            "prompt_id": good.prompt_id,
            "member_id": good.member_id,
            "answered_at": good.answered_at + timedelta(hours=1),
            "post": good.post,
            **changes,
        }
        batch = [good, HistoricAnswer(**fields)]
        if error is ReviewExists:
            batch = [HistoricAnswer(**{**fields, "answered_at": good.answered_at}), *batch]
        with pytest.raises(error) as raised:
            await load_answers(session, brand.id, batch)
        detail = raised.value.detail
        assert isinstance(detail, dict)
        assert detail["answer"] == len(batch) - 1, error  # the refused one, by its index
        assert await _written(session, brand.id) == before, error
    # The same batch without the refused answer loads.
    report = await load_answers(session, brand.id, [good])
    assert report.answers == 1
    assert await _written(session, brand.id) == (before[0] + 1, before[1] + 3, before[2] + 1)
