"""A member's erasure in the community (`services.community.erasure`, run by the members
projection on `member.erased`).

One community is built through the APIs: Xena writes posts (one held), a review, a prompt
answer, comments, an idea, a report and an experience review, hosts an experience, books a
session others wait for, follows, mutes and bookmarks; Yusuf and Zoe write around her. Her
text carries one marker string. The members service erases her and the community consumes its
`member.erased`; then:

- the marker is in no column of any community table (text, JSON, arrays, stored answers);
- each of her things is in the state the erasure promises, with the events other services need;
- Yusuf's and Zoe's content is as it was, and every stored count matches what it counts;
- handling the same event again changes no row and writes no event.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import LargeBinary, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from recommender.intake.catalog import CATALOG_CONSUMER
from recommender.store.models import Item
from services.community.erasure.service import ERASURE_REASON, HOST_LEFT, REMOVED
from services.community.experiences.models import (
    Booking,
    Experience,
    ExperienceReview,
    ExperienceSession,
)
from services.community.ideas.models import Idea, IdeaComment, IdeaVote
from services.community.members.projection import MEMBERS_PROJECTION, apply_member_events
from services.community.models import (
    IDEMPOTENCY,
    OUTBOX,
    Comment,
    CommunityMember,
    ContentStatus,
    Post,
)
from services.community.moderation.models import Report
from services.community.module import COMMUNITY
from services.community.posts.models import Bookmark, Reaction
from services.community.posts.text import body_hash
from services.community.social.models import Block, Follow, Mute
from services.community.testimonials.models import FeaturedPost
from services.kernel.clock import utcnow
from services.kernel.events import Event, parse_event
from services.members.models import OUTBOX as MEMBERS_OUTBOX
from tests.community.conftest import MakeMember
from tests.community.engagement_helpers import deliver, replay
from tests.community.experience_helpers import (
    API,
    book,
    create_experience,
    create_session,
    move_session,
)
from tests.conftest import BrandFixture, MemberFixture

# In everything Xena writes (and her name): found nowhere once she is erased.
MARK = "xena-quintrell-7731"
HELD_TERM = "forbiddenword"


async def call(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    headers: dict[str, str],
    body: Any = None,
    key: str | None = None,
) -> dict[str, Any]:
    if key is not None:
        headers = {**headers, "Idempotency-Key": key}
    response = await client.request(method, f"{API}{path}", json=body, headers=headers)
    assert response.is_success, (method, path, response.status_code, response.text)
    return dict(response.json()) if response.content else {}


@dataclass
class World:
    xena: MemberFixture
    yusuf: MemberFixture
    zoe: MemberFixture
    posts: dict[str, uuid.UUID]  # Xena's: post, held, review, answer; and "yusuf"
    comments: dict[str, uuid.UUID]  # "xena" (on Yusuf's post), "reply" (Zoe's to it), ...
    idea: uuid.UUID
    hosted: uuid.UUID  # Xena's experience
    hosted_upcoming: uuid.UUID
    hosted_past: uuid.UUID
    yusuf_guest: uuid.UUID  # Yusuf's booking of Xena's upcoming session
    brand_session: uuid.UUID  # one seat: Xena has it, Zoe waits
    xena_seat: uuid.UUID
    zoe_waiting: uuid.UUID
    reviewed: uuid.UUID  # the brand experience both reviewed


async def build(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, make: MakeMember
) -> World:
    staff = brand.headers
    # Trust level 3 lets Xena host experiences.
    xena = await make("xena", display_name=f"Xena {MARK}", trust_level=3)
    yusuf = await make("yusuf", display_name="Yusuf")
    zoe = await make("zoe", display_name="Zoe")
    x, y, z = xena.headers, yusuf.headers, zoe.headers
    await call(client, "POST", "/moderation/blocklist", staff, {"term": HELD_TERM})

    post = await call(
        client,
        "POST",
        "/posts",
        x,
        {
            "body": f"Hi, I am {MARK}; text me about the swap.",
            "media": [{"url": f"https://img.example.org/{MARK}.jpg", "alt": f"{MARK} smiling"}],
            "tags": [MARK, "swap"],
        },
        key="post-1",
    )
    held = await call(client, "POST", "/posts", x, {"body": f"{MARK} says {HELD_TERM}"})
    assert held["status"] == "held"
    review = await call(
        client,
        "POST",
        "/posts",
        x,
        {"kind": "review", "review_sku": "SKU-1", "rating": 5, "body": f"{MARK} loves it"},
    )
    prompt = await call(client, "POST", "/prompts", staff, {"title": "Your summer look"})
    answer = await call(
        client, "POST", f"/prompts/{prompt['id']}/answers", x, {"body": f"{MARK} in the sun"}, "a"
    )
    theirs = await call(client, "POST", "/posts", y, {"body": "Yusuf's evening routine"})

    on_theirs = await call(
        client, "POST", f"/posts/{theirs['id']}/comments", x, {"body": f"{MARK} agrees"}, "c-1"
    )
    reply = await call(
        client,
        "POST",
        f"/posts/{theirs['id']}/comments",
        z,
        {"body": "Me too", "parent_id": on_theirs["id"]},
    )
    own = await call(client, "POST", f"/posts/{theirs['id']}/comments", y, {"body": "Thanks"})
    on_xenas = await call(client, "POST", f"/posts/{post['id']}/comments", y, {"body": "Nice"})
    await call(client, "POST", f"/posts/{post['id']}/reactions", y, {"kind": "love"})
    await call(client, "POST", f"/posts/{theirs['id']}/reactions", x, {"kind": "helpful"})

    idea = await call(
        client,
        "POST",
        "/ideas",
        x,
        {"title": f"{MARK}'s refill idea", "body": f"From {MARK}", "category": "product"},
        key="idea-1",
    )
    await call(client, "POST", f"/ideas/{idea['id']}/vote", y)
    await call(client, "POST", f"/ideas/{idea['id']}/comments", y, {"body": "Yes please"})
    await call(client, "POST", f"/ideas/{idea['id']}/comments", x, {"body": f"{MARK} thanks"})
    await call(
        client,
        "POST",
        "/reports",
        x,
        {"target_kind": "post", "target_id": theirs["id"], "reason": "other", "text": MARK},
    )
    await call(
        client,
        "POST",
        "/testimonials",
        staff,
        {"post_id": review["id"], "note": f"Dear {MARK}, may we show this?"},
    )

    hosted = await create_experience(
        client,
        x,
        title=f"Brunch with {MARK}",
        description=f"At {MARK}'s flat",
        tags=["brunch"],
    )
    place = {"kind": "address", "address": f"{MARK}'s flat, 1 Main St"}
    upcoming = await create_session(client, x, hosted["id"], place=place)
    past = await create_session(client, x, hosted["id"], place=place)
    guest = (await book(client, yusuf, upcoming["id"], key="guest")).json()

    brand_experience = await create_experience(client, staff)
    one_seat = await create_session(client, staff, brand_experience["id"], capacity=1)
    seat = (await book(client, xena, one_seat["id"], key="seat")).json()
    waiting = (await book(client, zoe, one_seat["id"], key="wait", join_waitlist=True)).json()
    assert (seat["status"], waiting["status"]) == ("confirmed", "waitlisted")
    reviewed = await create_session(client, staff, brand_experience["id"])
    bookings = [(await book(client, m, reviewed["id"], key="attend")).json() for m in (xena, yusuf)]
    await move_session(session, reviewed["id"], utcnow() - timedelta(minutes=20))
    for booking in bookings:
        await call(client, "POST", f"/bookings/{booking['id']}/check-in", staff)
    await move_session(session, reviewed["id"], utcnow() - timedelta(hours=3))
    await move_session(session, past["id"], utcnow() - timedelta(days=3))
    for who, words in ((x, f"{MARK} had fun"), (y, "Great class")):
        await call(
            client, "POST", f"/sessions/{reviewed['id']}/reviews", who, {"rating": 4, "body": words}
        )

    # Relations, last: a block stops the interactions above.
    await call(client, "PUT", f"/me/following/{yusuf.id}", x)
    await call(client, "PUT", f"/me/following/{xena.id}", z)
    await call(client, "PUT", f"/me/following/{zoe.id}", y)
    await call(client, "PUT", f"/me/mutes/{zoe.id}", x)
    await call(client, "PUT", f"/me/blocks/{xena.id}", y)
    await call(client, "PUT", f"/posts/{theirs['id']}/bookmark", x)
    await call(client, "PUT", f"/posts/{post['id']}/bookmark", z)

    def ids(found: dict[str, Any]) -> uuid.UUID:
        return uuid.UUID(found["id"])

    return World(
        xena=xena,
        yusuf=yusuf,
        zoe=zoe,
        posts={
            "post": ids(post),
            "held": ids(held),
            "review": ids(review),
            "answer": ids(answer),
            "yusuf": ids(theirs),
        },
        comments={
            "xena": ids(on_theirs),
            "reply": ids(reply),
            "yusuf_own": ids(own),
            "yusuf_on_xenas": ids(on_xenas),
        },
        idea=ids(idea),
        hosted=ids(hosted),
        hosted_upcoming=ids(upcoming),
        hosted_past=ids(past),
        yusuf_guest=ids(guest),
        brand_session=ids(one_seat),
        xena_seat=ids(seat),
        zoe_waiting=ids(waiting),
        reviewed=ids(reviewed),
    )


async def erase(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> Event:
    """The members service erases the member; the community's consumer handles its event."""
    response = await client.post(f"/members/v1/members/{member.id}/erase", headers=brand.headers)
    assert response.status_code == 200, response.text
    table = MEMBERS_OUTBOX.table
    payload = await session.scalar(
        select(table.c.payload).where(
            table.c.type == "member.erased", table.c.subject_id == member.id
        )
    )
    event = parse_event(orjson.dumps(payload))
    assert await deliver(session, MEMBERS_PROJECTION, event)
    return event


async def tables_holding(session: AsyncSession, needle: str) -> set[str]:
    """The community tables with a row that holds `needle` anywhere: as PostgreSQL prints the
    row (text, JSON, arrays), and in binary columns (stored answers) decoded byte for byte."""
    found = set()
    for table in COMMUNITY.metadata.sorted_tables:
        where = ["strpos(lower(r::text), :needle) > 0"]
        where += [
            f"strpos(lower(encode(r.\"{c.name}\", 'escape')), :needle) > 0"
            for c in table.c
            if isinstance(c.type, LargeBinary)
        ]
        statement = (
            f'SELECT count(*) FROM "{table.schema}"."{table.name}" AS r '  # noqa: S608
            f"WHERE {' OR '.join(where)}"
        )
        if await session.scalar(text(statement), {"needle": needle.lower()}):
            found.add(table.name)
    return found


async def digests(session: AsyncSession, brand_id: uuid.UUID) -> dict[str, str]:
    """Every community table's rows of the brand (all of the inbox), as an md5 of their text."""
    found = {}
    for table in COMMUNITY.metadata.sorted_tables:
        where = "WHERE r.brand_id = :brand" if "brand_id" in table.c else ""
        found[table.name] = str(
            await session.scalar(
                text(
                    "SELECT md5(coalesce(string_agg(r::text, E'\\n' ORDER BY r::text), '')) "  # noqa: S608
                    f'FROM "{table.schema}"."{table.name}" AS r {where}'
                ),
                {"brand": brand_id} if where else {},
            )
        )
    return found


async def outbox_since(
    session: AsyncSession, brand_id: uuid.UUID, count: int
) -> list[tuple[str, dict[str, Any]]]:
    """The brand's community events after the first `count` (ids are time-ordered)."""
    table = OUTBOX.table
    rows = await session.execute(
        select(table.c.type, table.c.payload)
        .where(table.c.brand_id == brand_id)
        .order_by(table.c.id)
        .offset(count)
    )
    return [(t, p["data"]) for t, p in rows]


async def stored_keys(session: AsyncSession, brand_id: uuid.UUID) -> list[str]:
    table = IDEMPOTENCY.table
    keys = await session.scalars(
        select(table.c.key).where(table.c.brand_id == brand_id).order_by(table.c.key)
    )
    return list(keys)


async def outbox_size(session: AsyncSession, brand_id: uuid.UUID) -> int:
    table = OUTBOX.table
    statement = select(func.count()).select_from(table).where(table.c.brand_id == brand_id)
    return int(await session.scalar(statement) or 0)


async def row(session: AsyncSession, model: Any, **where: Any) -> Any:
    found = (await session.scalars(select(model).filter_by(**where))).one()
    await session.refresh(found)
    return found


def columns(entity: Any) -> dict[str, Any]:
    return {c.key: getattr(entity, c.key) for c in entity.__mapper__.column_attrs}


@pytest.fixture
async def world(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, make_member: MakeMember
) -> World:
    return await build(client, session, brand, make_member)


async def test_the_members_text_is_nowhere_and_each_thing_is_in_its_erased_state(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, world: World
) -> None:
    xena_id = world.xena.id
    # Everywhere her text went: the scan below would find it.
    assert await tables_holding(session, MARK) == {
        "members",
        "posts",
        "comments",
        "ideas",
        "idea_comments",
        "reports",
        "testimonials",
        "experiences",
        "experience_sessions",
        "experience_reviews",
        "idempotency_keys",
        "outbox",
    }
    before = await outbox_size(session, brand.id)
    keys_before = await stored_keys(session, brand.id)

    await erase(client, session, brand, world.xena)

    assert await tables_holding(session, MARK) == set()
    member = await row(session, CommunityMember, member_id=xena_id)
    assert (member.display_name, member.member_status) == (None, "erased")

    blank_hash = body_hash(REMOVED)
    for name in ("post", "held", "review", "answer"):
        post = await row(session, Post, id=world.posts[name])
        assert (post.status, post.body, post.body_hash, post.media, post.tags) == (
            ContentStatus.REMOVED,
            REMOVED,
            blank_hash,
            [],
            [],
        ), name
        assert post.author_id == xena_id  # the id stays, as the members service keeps it
    comment = await row(session, Comment, id=world.comments["xena"])
    assert (comment.status, comment.body, comment.body_hash) == (
        ContentStatus.REMOVED,
        REMOVED,
        blank_hash,
    )
    idea = await row(session, Idea, id=world.idea)
    assert (idea.title, idea.body) == (REMOVED, REMOVED)
    xenas_idea_comments = await session.scalars(
        select(IdeaComment.body).where(IdeaComment.author_id == xena_id)
    )
    assert list(xenas_idea_comments) == [REMOVED]
    report = await row(session, Report, reporter_id=xena_id)
    assert (report.reason, report.note, report.target_id) == (
        "other",
        None,
        world.posts["yusuf"],
    )
    testimonial = await row(session, FeaturedPost, post_id=world.posts["review"])
    assert (testimonial.note, testimonial.status) == (None, "requested")
    review = await row(session, ExperienceReview, member_id=xena_id)
    assert (review.body, review.rating) == ("", 4)

    hosted = await row(session, Experience, id=world.hosted)
    assert (hosted.title, hosted.description, hosted.tags) == (REMOVED, "", [])
    upcoming = await row(session, ExperienceSession, id=world.hosted_upcoming)
    assert (upcoming.status, upcoming.cancel_reason, upcoming.address, upcoming.seats_taken) == (
        "cancelled",
        HOST_LEFT,
        REMOVED,
        0,
    )
    past = await row(session, ExperienceSession, id=world.hosted_past)
    # Already held: it stays as it happened, without the place.
    assert (past.status, past.address, past.cancel_reason) == ("scheduled", REMOVED, None)
    guest = await row(session, Booking, id=world.yusuf_guest)
    assert (guest.status, guest.cancelled_by) == ("cancelled", "host")
    seat = await row(session, Booking, id=world.xena_seat)
    assert (seat.status, seat.cancelled_by) == ("cancelled", "member")
    waiting = await row(session, Booking, id=world.zoe_waiting)
    assert (waiting.status, waiting.promoted) == ("confirmed", True)

    for model, one, other in (
        (Follow, Follow.follower_id, Follow.followee_id),
        (Block, Block.blocker_id, Block.blocked_id),
        (Mute, Mute.muter_id, Mute.muted_id),
    ):
        assert (
            await session.scalar(
                select(func.count()).select_from(model).where((one == xena_id) | (other == xena_id))
            )
            == 0
        ), model.__name__
    assert (
        await session.scalar(
            select(func.count()).select_from(Bookmark).where(Bookmark.member_id == xena_id)
        )
        == 0
    )
    # Kept under her id only: her reaction is one of the post's `reaction_count`.
    reactions = select(func.count()).select_from(Reaction).where(Reaction.member_id == xena_id)
    assert await session.scalar(reactions) == 1
    xenas = f"member:{xena_id}:"
    # Her posts, answer, comment, idea and two bookings; the others' stay.
    assert [k for k in keys_before if k.startswith(xenas)] == [
        xenas + k for k in sorted(["post-1", "a", "c-1", "idea-1", "seat", "attend"])
    ]
    assert await stored_keys(session, brand.id) == [
        k for k in keys_before if not k.startswith(xenas)
    ]

    # What other services learn: each live post of hers removed (rewards voids its points, the
    # recommender drops it), her hosted session cancelled with its guest's booking, her own
    # booking cancelled and the waitlist moved up. No comment event: no one else keeps comments.
    written = await outbox_since(session, brand.id, before)
    removed = sorted(
        (d["post_id"], d["removed_by"], d["reason"], d["tags"])
        for t, d in written
        if t == "post.removed"
    )
    assert removed == sorted(
        (str(world.posts[n]), "author", ERASURE_REASON, [])
        for n in ("post", "held", "review", "answer")
    )
    assert sorted(t for t, _ in written) == sorted(
        ["post.removed"] * 4
        + ["experience.session_cancelled", "experience.cancelled", "experience.cancelled"]
        + ["experience.booked"]
    )
    cancelled = next(d for t, d in written if t == "experience.session_cancelled")
    assert (cancelled["title"], cancelled["tags"], cancelled["reason"]) == (REMOVED, [], HOST_LEFT)
    booked = next(d for t, d in written if t == "experience.booked")
    assert (booked["booking_id"], booked["promoted_from_waitlist"]) == (
        str(world.zoe_waiting),
        True,
    )

    await replay(session, CATALOG_CONSUMER)
    items = {
        item.item_id: (item.active, item.title)
        for item in await session.scalars(select(Item).where(Item.brand_id == brand.id))
    }
    for name in ("post", "held", "review", "answer"):
        assert items[f"post:{world.posts[name]}"] == (False, ""), name
    assert items[f"post:{world.posts['yusuf']}"] == (True, "")
    assert items[f"experience:{world.hosted}"][1] == REMOVED


async def test_the_others_content_stays_and_every_count_matches_what_it_counts(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, world: World
) -> None:
    theirs = [
        (Post, world.posts["yusuf"]),
        (Comment, world.comments["reply"]),
        (Comment, world.comments["yusuf_own"]),
        (Comment, world.comments["yusuf_on_xenas"]),
    ]
    before = {key: columns(await row(session, model, id=key)) for model, key in theirs}
    others = (world.yusuf.id, world.zoe.id)
    their_rows = {
        model.__name__: sorted(
            str(columns(r)) for r in await session.scalars(select(model).where(column.in_(others)))
        )
        for model, column in (
            (IdeaComment, IdeaComment.author_id),
            (IdeaVote, IdeaVote.member_id),
            (ExperienceReview, ExperienceReview.member_id),
            (Reaction, Reaction.member_id),
            (Follow, Follow.follower_id),
            (Bookmark, Bookmark.member_id),
        )
    }
    assert (
        await session.scalar(select(Post.comment_count).where(Post.id == world.posts["yusuf"])) == 3
    )

    await erase(client, session, brand, world.xena)

    after = {key: columns(await row(session, model, id=key)) for model, key in theirs}
    # Yusuf's post lost Xena's comment from its count, and nothing else.
    assert after[world.posts["yusuf"]] == {**before[world.posts["yusuf"]], "comment_count": 2}
    for key in (
        world.comments["reply"],
        world.comments["yusuf_own"],
        world.comments["yusuf_on_xenas"],
    ):
        assert after[key] == before[key]
    # Zoe's reply to the removed comment is still in the thread, under it.
    assert after[world.comments["reply"]]["parent_id"] == world.comments["xena"]
    thread = await client.get(
        f"{API}/posts/{world.posts['yusuf']}/comments", headers=world.zoe.headers
    )
    assert [c["id"] for c in thread.json()["items"]] == [
        str(world.comments["reply"]),
        str(world.comments["yusuf_own"]),
    ]
    kept = {
        model.__name__: sorted(
            str(columns(r)) for r in await session.scalars(select(model).where(column.in_(others)))
        )
        for model, column in (
            (IdeaComment, IdeaComment.author_id),
            (IdeaVote, IdeaVote.member_id),
            (ExperienceReview, ExperienceReview.member_id),
            (Reaction, Reaction.member_id),
            (Follow, Follow.follower_id),
            (Bookmark, Bookmark.member_id),
        )
    }
    # Zoe's follow of Xena went (Xena is gone), and her bookmark of Xena's post stays (it
    # drops out of her list with the post).
    expected = dict(their_rows)
    expected["Follow"] = [r for r in their_rows["Follow"] if str(world.xena.id) not in r]
    assert kept == expected
    assert len(kept["Follow"]) == 1

    # Counts: each post's comments, each idea's votes and comments, each session's seats,
    # each experience's rating summary.
    counted = {
        post.id: post.comment_count
        for post in await session.scalars(select(Post).where(Post.brand_id == brand.id))
    }
    rows = await session.execute(
        select(Comment.post_id, func.count())
        .where(Comment.brand_id == brand.id, Comment.status == ContentStatus.PUBLISHED)
        .group_by(Comment.post_id)
    )
    published: dict[uuid.UUID, int] = {}
    for post_id, number in rows:
        published[post_id] = number
    assert counted == {post_id: published.get(post_id, 0) for post_id in counted}
    idea = await row(session, Idea, id=world.idea)
    assert (idea.vote_count, idea.comment_count) == (2, 2)
    assert (
        await session.scalar(
            select(func.count()).select_from(IdeaVote).where(IdeaVote.idea_id == world.idea)
        )
        == 2
    )
    for session_id in (world.brand_session, world.hosted_upcoming, world.reviewed):
        held = await session.scalar(
            select(func.coalesce(func.sum(Booking.seats), 0)).where(
                Booking.session_id == session_id,
                Booking.status.in_(["confirmed", "awaiting_payment"]),
            )
        )
        seats = await session.scalar(
            select(ExperienceSession.seats_taken).where(ExperienceSession.id == session_id)
        )
        assert seats == held, session_id
    brand_experience = await session.scalar(
        select(ExperienceSession.experience_id).where(ExperienceSession.id == world.reviewed)
    )
    summary = await row(session, Experience, id=brand_experience)
    assert (summary.review_count, summary.rating_total) == (2, 8)


async def test_a_replayed_erasure_changes_no_row_and_writes_no_event(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, world: World
) -> None:
    event = await erase(client, session, brand, world.xena)
    before = await digests(session, brand.id)
    written = await outbox_size(session, brand.id)

    # The handler itself, past the inbox (a restored backup's replay, a second consumer).
    await apply_member_events(session, [event])
    await apply_member_events(session, [event, event])
    assert not await deliver(session, MEMBERS_PROJECTION, event)  # the inbox has it

    assert await digests(session, brand.id) == before
    assert await outbox_size(session, brand.id) == written
