"""The community's bulk history path: the same posts, comments, reactions and follows, once made
through the online service functions with the clock at each one's time and once loaded by
`load_posts`, leave the same rows and the same events; what it refuses, it refuses whole."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.errors import MemberNotFound, MemberSuspended
from services.community.history.errors import (
    ContentInFuture,
    ContentOutOfOrder,
    ContentRepeated,
)
from services.community.history.schemas import (
    HistoricComment,
    HistoricContent,
    HistoricFollow,
    HistoricPost,
    HistoricReaction,
)
from services.community.history.service import historic_post_id, load_posts, posts_loaded
from services.community.members.service import known_member
from services.community.models import OUTBOX, Comment, CommunityMember, Post
from services.community.posts import service as posts_service
from services.community.posts.errors import PostNotFound
from services.community.posts.events import ReactionKind
from services.community.posts.models import Reaction
from services.community.posts.reactions import post_target, react
from services.community.posts.schemas import CommentCreate, PostCreate
from services.community.social import service as social_service
from services.community.social.errors import CannotFollowYourself, MemberBlocked
from services.community.social.models import Block, Follow
from services.kernel.clock import utcnow
from services.kernel.errors import ValidationFailed
from services.kernel.ids import new_id
from tests.community.conftest import MakeMember
from tests.conftest import BrandFixture, MemberFixture

# Every module of the online path that reads the clock.
CLOCKED = (
    "services.community.posts.service",
    "services.community.posts.reactions",
    "services.community.social.service",
    "services.community.moderation.screening",
    "services.community.members.service",
)
MEMBERS = 4
SAME = "The same long text, posted twice within a day"


@dataclass(frozen=True)
class Planned:
    """One happening: a post (`key`), a comment or reaction (`post` is a key, or "old" for the
    post written online before the history), or a follow (`other`)."""

    what: str  # post, comment, reaction, follow
    member: int
    hours_ago: float
    key: str = ""
    post: str = ""
    text: str = ""
    tags: tuple[str, ...] = ()
    kind: str = ""
    other: int = 0


PLAN = [
    Planned(
        "post",
        0,
        240,
        key="p0",
        text="  My skincare routine this week:\nserum, then SPF  ",
        tags=("Skincare", "#Routine "),
    ),
    Planned("follow", 1, 236, other=0),
    Planned("comment", 1, 230, post="p0", text="Love this!"),
    Planned("reaction", 1, 230, post="p0", kind="love"),
    Planned("reaction", 1, 229, post="p0", kind="helpful"),
    Planned(
        "post", 1, 220, key="p1", text="Trying a new fragrance for autumn", tags=("fragrance",)
    ),
    Planned("reaction", 2, 219, post="p0", kind="wow"),
    Planned("comment", 2, 218, post="p0", text="Which serum do you use? Mine pills under SPF."),
    Planned("follow", 2, 200, other=0),
    Planned("comment", 0, 150, post="p1", text="Same here"),
    Planned("reaction", 3, 120, post="p1", kind="support"),
    Planned("comment", 3, 100, post="old", text="Still my favourite post"),
    Planned("reaction", 3, 100, post="old", kind="love"),
    Planned("follow", 3, 90, other=1),
    Planned("post", 0, 50, key="p2", text="Hair mask results after a month", tags=("hair",)),
    Planned("reaction", 1, 49, post="p2", kind="haha"),
    Planned("post", 3, 30, key="p3", text=SAME),
    Planned("post", 3, 29, key="p4", text=SAME),  # a duplicate: the first pass holds it
    Planned("follow", 0, 10, other=2),
    Planned("reaction", 0, 5, post="p3", kind="love"),
]
_RANK = {"post": 0, "comment": 1, "reaction": 2, "follow": 3}


def _timeline(now: datetime) -> list[tuple[datetime, Planned]]:
    """The plan in the bulk path's replay order (time, then posts, comments, reactions,
    follows, then as given)."""
    dated = [
        (now - timedelta(hours=p.hours_ago), _RANK[p.what], index, p)
        for index, p in enumerate(PLAN)
    ]
    return [(at, p) for at, _, _, p in sorted(dated, key=lambda d: d[:3])]


async def _community_member(session: AsyncSession, member: MemberFixture) -> CommunityMember:
    return await known_member(session, member.brand_id, member.id)


def _at(clock: list[datetime], monkeypatch: pytest.MonkeyPatch) -> None:
    for module in CLOCKED:
        monkeypatch.setattr(f"{module}.utcnow", lambda: clock[0])


async def _old_post(session: AsyncSession, author: MemberFixture, when: datetime) -> uuid.UUID:
    """The post written online before the history starts (both brands have it)."""
    post = await posts_service.create_post(
        session,
        await _community_member(session, author),
        PostCreate(body="An older post, written live", tags=["old"]),
    )
    assert post.created_at == when
    return post.id


async def _online(
    session: AsyncSession,
    members: list[MemberFixture],
    now: datetime,
    clock: list[datetime],
    old: uuid.UUID,
) -> None:
    """Each happening through the service functions, with the clock at its time."""
    posts: dict[str, uuid.UUID] = {"old": old}
    for at, planned in _timeline(now):
        clock[0] = at
        me = await _community_member(session, members[planned.member])
        if planned.what == "post":
            post = await posts_service.create_post(
                session, me, PostCreate(body=planned.text, tags=list(planned.tags))
            )
            posts[planned.key] = post.id
        elif planned.what == "comment":
            await posts_service.create_comment(
                session, me, posts[planned.post], CommentCreate(body=planned.text)
            )
        elif planned.what == "reaction":
            target = await post_target(session, me, posts[planned.post])
            outcome = await react(session, me, target, ReactionKind(planned.kind))
            assert outcome.created
        else:
            assert await social_service.follow(session, me, members[planned.other].id)


def _content(members: list[MemberFixture], now: datetime, old: uuid.UUID) -> HistoricContent:
    posts, comments, reactions, follows = [], [], [], []
    for p in PLAN:
        at = now - timedelta(hours=p.hours_ago)
        who = members[p.member].id
        ref: str | uuid.UUID = old if p.post == "old" else p.post
        if p.what == "post":
            posts.append(HistoricPost(p.key, who, p.text, at, tags=p.tags))
        elif p.what == "comment":
            comments.append(HistoricComment(post=ref, author_id=who, body=p.text, created_at=at))
        elif p.what == "reaction":
            reactions.append(HistoricReaction(post=ref, member_id=who, kind=p.kind, created_at=at))
        else:
            follows.append(HistoricFollow(who, members[p.other].id, at))
    return HistoricContent(posts, comments, reactions, follows)


class _Labels:
    """Ids differ between the brands: members, posts and comments become labels."""

    def __init__(self, members: list[MemberFixture]) -> None:
        self.names: dict[str, str] = {str(m.id): f"m{i}" for i, m in enumerate(members)}

    def add(self, ids: list[uuid.UUID], prefix: str) -> None:
        for n, id_ in enumerate(ids):
            self.names[str(id_)] = f"{prefix}{n}"

    def __call__(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: self(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self(item) for item in value)
        if isinstance(value, uuid.UUID):
            value = str(value)
        if isinstance(value, str) and value in self.names:
            return self.names[value]
        return value


async def _state(
    session: AsyncSession, brand_id: uuid.UUID, members: list[MemberFixture]
) -> dict[str, Any]:
    """Everything the community holds about the brand's content, without ids."""
    session.expire_all()
    posts = (
        await session.scalars(
            select(Post).where(Post.brand_id == brand_id).order_by(Post.created_at, Post.body)
        )
    ).all()
    comments = (
        await session.scalars(
            select(Comment).where(Comment.brand_id == brand_id).order_by(Comment.created_at)
        )
    ).all()
    label = _Labels(members)
    label.add([p.id for p in posts], "p")
    label.add([c.id for c in comments], "c")
    reactions = (
        await session.scalars(
            select(Reaction)
            .where(Reaction.brand_id == brand_id)
            .order_by(Reaction.created_at, Reaction.kind)
        )
    ).all()
    follows = (
        await session.scalars(
            select(Follow).where(Follow.brand_id == brand_id).order_by(Follow.created_at)
        )
    ).all()
    table = OUTBOX.table
    events = (
        await session.execute(
            select(
                table.c.type,
                table.c.version,
                table.c.subject_id,
                table.c.occurred_at,
                table.c.payload,
            )
            .where(table.c.brand_id == brand_id)
            .order_by(table.c.occurred_at, table.c.id)
        )
    ).all()
    # The relay publishes by id: the loaded events' ids sort by their moments (the old post's,
    # written live under a stopped clock, have ids of the real time: left out).
    by_id = (
        await session.scalars(
            select(table.c.occurred_at)
            .where(table.c.brand_id == brand_id, table.c.occurred_at > posts[0].created_at)
            .order_by(table.c.id)
        )
    ).all()
    return {
        "posts": [
            label(
                (
                    p.author_id,
                    p.kind,
                    p.body,
                    p.media,
                    p.tags,
                    p.skus,
                    p.group_id,
                    p.prompt_id,
                    p.review_sku,
                    p.rating,
                    p.incentivised,
                    p.status,
                    p.held_reasons,
                    p.body_hash,
                    p.comment_count,
                    p.reaction_count,
                    p.created_at,
                    p.approved_at,
                    p.removed_at,
                    p.updated_at,
                )
            )
            for p in posts
        ],
        "comments": [
            label(
                (
                    c.post_id,
                    c.parent_id,
                    c.author_id,
                    c.body,
                    c.status,
                    c.held_reasons,
                    c.body_hash,
                    c.reaction_count,
                    c.created_at,
                    c.approved_at,
                    c.removed_at,
                )
            )
            for c in comments
        ],
        "reactions": [
            label((r.member_id, r.target_id, r.post_id, r.comment_id, r.kind, r.created_at))
            for r in reactions
        ],
        "follows": [label((f.follower_id, f.followee_id, f.created_at)) for f in follows],
        "events": [
            label((type_, version, subject, at, payload["data"]))
            for type_, version, subject, at, payload in events
        ],
        # Ids sort as the rows were created (feeds and threads page by id). The old post is
        # left out: written live under a stopped clock, its id is of the real time.
        "posts_by_id": label(
            [p.id for p in sorted(posts, key=lambda p: p.id) if p.tags != ["old"]]
        ),
        "comments_by_id": label([c.id for c in sorted(comments, key=lambda c: c.id)]),
        "events_in_time_order": list(by_id) == sorted(by_id),
    }


async def test_a_bulk_load_leaves_what_the_online_path_leaves(
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
    make_member: MakeMember,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = utcnow()
    clock = [now - timedelta(days=20)]
    _at(clock, monkeypatch)
    online_members = [
        await make_member(f"m{i}", brand, display_name=f"M {i}") for i in range(MEMBERS)
    ]
    bulk_members = [
        await make_member(f"m{i}", other_brand, display_name=f"M {i}") for i in range(MEMBERS)
    ]
    online_old = await _old_post(session, online_members[0], clock[0])
    bulk_old = await _old_post(session, bulk_members[0], clock[0])

    await _online(session, online_members, now, clock, online_old)
    report = await load_posts(
        session, other_brand.id, _content(bulk_members, now, bulk_old), now=now
    )

    assert (report.posts, report.comments, report.reactions, report.follows) == (5, 4, 7, 4)
    assert report.held == 1
    assert report.events == 5 * 2 - 1 + 4 + 7 + 4  # the held post has no post.approved
    expected = await _state(session, brand.id, online_members)
    got = await _state(session, other_brand.id, bulk_members)
    for part in expected:
        assert got[part] == expected[part], part
    # The data exercises what it claims to.
    assert got["posts"][-1][11:13] == ("held", ["duplicate"])
    assert got["posts"][1][4] == ["skincare", "routine"]  # normalised as the API does
    assert got["posts"][0][14:16] == (1, 1)  # the old post counted its new comment and reaction
    assert got["posts_by_id"] == [f"p{n}" for n in range(1, 6)]
    assert got["events_in_time_order"]
    types = [event[0] for event in got["events"]]
    assert set(types) == {
        "post.created",
        "post.approved",
        "comment.created",
        "reaction.added",
        "member.followed",
    }


# --- Refusals ---------------------------------------------------------------------------------


async def _counts(session: AsyncSession) -> tuple[int, ...]:
    counted = []
    for table in (Post, Comment, Reaction, Follow):
        counted.append(int(await session.scalar(select(func.count()).select_from(table)) or 0))
    counted.append(int(await session.scalar(select(func.count()).select_from(OUTBOX.table)) or 0))
    counted.append(int(await session.scalar(select(func.sum(Post.comment_count))) or 0))
    return tuple(counted)


def _small(members: list[MemberFixture], now: datetime) -> HistoricContent:
    a, b, c = (m.id for m in members)
    day = now - timedelta(days=1)
    return HistoricContent(
        posts=[HistoricPost("k1", a, "First post", day), HistoricPost("k2", b, "Second", day)],
        comments=[HistoricComment("k1", b, "Nice", day + timedelta(hours=1))],
        reactions=[HistoricReaction("k1", c, "love", day + timedelta(hours=2))],
        follows=[HistoricFollow(c, a, day)],
    )


SPOILERS = [
    ("unknown member", MemberNotFound),
    ("unknown followee", MemberNotFound),
    ("erased", MemberNotFound),
    ("suspended", MemberSuspended),
    ("body too long", ValidationFailed),
    ("empty comment", ValidationFailed),
    ("bad kind", ValidationFailed),
    ("review", ValidationFailed),
    ("naive time", ValidationFailed),
    ("future", ContentInFuture),
    ("post not in batch", PostNotFound),
    ("post of another brand", PostNotFound),
    ("comment before its post", ContentOutOfOrder),
    ("reaction twice", ContentRepeated),
    ("follow twice", ContentRepeated),
    ("key twice", ContentRepeated),
    ("follow oneself", CannotFollowYourself),
    ("blocked", MemberBlocked),
]


@pytest.mark.parametrize(("spoil", "error"), SPOILERS, ids=[s for s, _ in SPOILERS])
async def test_bad_content_is_refused_and_nothing_is_written(
    spoil: str,
    error: type[Exception],
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
    make_member: MakeMember,
) -> None:
    members = [await make_member(f"r{i}") for i in range(3)]
    a, b, c = (m.id for m in members)
    now = utcnow()
    content = _small(members, now)
    day = now - timedelta(days=1)
    post = content.posts[0]
    if spoil == "erased":
        await session.execute(
            update(CommunityMember)
            .where(CommunityMember.member_id == c)
            .values(member_status="erased")
        )
    if spoil == "suspended":
        await session.execute(
            update(CommunityMember)
            .where(CommunityMember.member_id == c)
            .values(suspended_until=now + timedelta(days=3))
        )
    if spoil == "blocked":
        session.add(Block(id=new_id(), brand_id=brand.id, blocker_id=a, blocked_id=c))
        await session.flush()
    foreign = None
    if spoil == "post of another brand":
        stranger = await make_member("stranger", other_brand)
        foreign = await posts_service.create_post(
            session, await _community_member(session, stranger), PostCreate(body="Elsewhere")
        )
    spoilt = {
        "unknown member": replace(
            content, posts=[*content.posts, HistoricPost("k3", uuid.uuid4(), "Who?", day)]
        ),
        "unknown followee": replace(content, follows=[HistoricFollow(a, uuid.uuid4(), day)]),
        "erased": content,
        "suspended": content,
        "body too long": replace(content, posts=[replace(post, body="x" * 10_001)]),
        "empty comment": replace(content, comments=[replace(content.comments[0], body="   ")]),
        "bad kind": replace(content, reactions=[replace(content.reactions[0], kind="meh")]),
        "review": replace(content, posts=[replace(post, kind="review"), content.posts[1]]),
        "naive time": replace(content, follows=[HistoricFollow(c, a, day.replace(tzinfo=None))]),
        "future": replace(content, posts=[replace(post, created_at=now + timedelta(minutes=5))]),
        "post not in batch": replace(content, comments=[replace(content.comments[0], post="nope")]),
        "post of another brand": replace(
            content, reactions=[replace(content.reactions[0], post=foreign.id if foreign else a)]
        ),
        "comment before its post": replace(
            content, comments=[replace(content.comments[0], created_at=day - timedelta(hours=1))]
        ),
        "reaction twice": replace(content, reactions=[*content.reactions, content.reactions[0]]),
        "follow twice": replace(content, follows=[*content.follows, content.follows[0]]),
        "key twice": replace(content, posts=[*content.posts, replace(post, author_id=b)]),
        "follow oneself": replace(content, follows=[HistoricFollow(a, a, day)]),
        "blocked": content,
    }[spoil]
    before = await _counts(session)
    with pytest.raises(error) as raised:
        await load_posts(session, brand.id, spoilt, now=now)
    assert await _counts(session) == before
    # The refusal names the item: {"item": "comments[0]", ...}, or a validation error's loc.
    detail = raised.value.detail  # type: ignore[attr-defined]
    named = detail["item"] if isinstance(detail, dict) else detail[0]["loc"][0]
    assert named.split("[")[0] in ("posts", "comments", "reactions", "follows")


async def test_a_second_load_is_recognised_and_refused(
    session: AsyncSession, brand: BrandFixture, make_member: MakeMember
) -> None:
    members = [await make_member(f"s{i}") for i in range(3)]
    now = utcnow()
    content = _small(members, now)
    assert await posts_loaded(session, brand.id, content.posts) == set()
    report = await load_posts(session, brand.id, content, now=now)
    assert (report.posts, report.comments, report.reactions, report.follows) == (2, 1, 1, 1)
    assert await posts_loaded(session, brand.id, content.posts) == {"k1", "k2"}
    before = await _counts(session)
    with pytest.raises(ContentRepeated):
        await load_posts(session, brand.id, replace(content, follows=()), now=now)
    # A reaction or follow already there (a no-op for the API) is refused too.
    with pytest.raises(ContentRepeated):
        await load_posts(session, brand.id, HistoricContent(follows=content.follows), now=now)
    first = historic_post_id(brand.id, "k1", content.posts[0].created_at)
    again = HistoricReaction(first, members[2].id, "love", now - timedelta(minutes=1))
    with pytest.raises(ContentRepeated):
        await load_posts(session, brand.id, HistoricContent(reactions=[again]), now=now)
    assert await _counts(session) == before
    # Another kind of reaction to it is new: it loads, and counts on the post.
    other = replace(again, kind="wow")
    assert (await load_posts(session, brand.id, HistoricContent(reactions=[other]))).reactions == 1
    post = await session.get(Post, first, populate_existing=True)
    assert post is not None
    assert post.reaction_count == 2
