"""The reputation consumer handles a batch of events as it handles them one by one: the same
history, reputations, trust levels, badges (awarded at the same moments) and `badge.awarded`
events, whatever the batch sizes.

One random scenario (posts approved and removed, comments public, held and approved, reactions
added, repeated and taken back, reactions to oneself, an approval reported twice, an unknown
author, a member whose level staff locked) is played on three brands alike: event by event, in
batches of random sizes, and as one batch.
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.models import OUTBOX, CommunityMember, ContentStatus, PostKind
from services.community.posts.events import (
    CommentApproved,
    CommentCreated,
    CommentData,
    CommentRemoved,
    CommentRemovedData,
    PostApproved,
    PostData,
    PostRemoved,
    PostRemovedData,
    ReactionAdded,
    ReactionData,
    ReactionRemoved,
)
from services.community.reputation.consumer import (
    REPUTATION_CONSUMER,
    apply_reputation_event,
    apply_reputation_events,
)
from services.community.reputation.models import Badge, MemberBadge, ReputationEvent
from services.kernel.events import Event
from services.kernel.ids import new_id
from tests.conftest import make_brand

MEMBERS = 6
STEPS = 400
BADGES = {"Rising": 5, "Regular": 15, "Star": 40}
START = datetime(2026, 3, 1, tzinfo=UTC)
LOCKED = 5  # this member's trust level is locked by staff at 4
UNKNOWN = "unknown"  # an author the community does not know


@dataclass
class Scenario:
    """Events over abstract names ("m0", "post3", ...), turned into each brand's ids."""

    steps: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def scenario(seed: int) -> Scenario:
    rng = random.Random(seed)
    members = [f"m{i}" for i in range(MEMBERS)]
    posts: list[tuple[str, str]] = []  # (post, author)
    comments: list[tuple[str, str, str, bool]] = []  # (comment, post, author, public)
    reactions: list[dict[str, Any]] = []  # those added so far
    out = Scenario()

    def on_comment(comment: tuple[str, str, str, bool]) -> dict[str, Any]:
        name, post, author, public = comment
        return {
            "comment": name,
            "post": post,
            "post_author": dict(posts)[post],
            "author": author,
            "public": public,
        }

    for _ in range(STEPS):
        roll = rng.random()
        if roll < 0.15 or not posts:
            post = f"post{len(posts)}"
            author = rng.choice(members) if rng.random() > 0.03 else UNKNOWN
            posts.append((post, author))
            out.steps.append(("post_approved", {"post": post, "author": author}))
        elif roll < 0.18:
            post, author = rng.choice(posts)  # reported again: pays nothing more
            out.steps.append(("post_approved", {"post": post, "author": author}))
        elif roll < 0.30:
            comment = f"comment{len(comments)}"
            post, _ = rng.choice(posts)
            author, public = rng.choice(members), rng.random() < 0.7
            comments.append((comment, post, author, public))
            out.steps.append(("comment_created", on_comment(comments[-1])))
        elif roll < 0.34 and comments:
            out.steps.append(("comment_approved", on_comment(rng.choice(comments))))
        elif roll < 0.70:
            target: dict[str, Any]
            if comments and rng.random() < 0.3:
                comment, post, author, _ = rng.choice(comments)
                target = {"post": post, "comment": comment, "author": author}
            else:
                post, author = rng.choice(posts)
                target = {"post": post, "comment": None, "author": author}
            kind = rng.choice(["love", "helpful"])
            reactions.append({"reactor": rng.choice(members), "kind": kind, **target})
            out.steps.append(("reaction_added", reactions[-1]))
        elif roll < 0.85:
            if reactions and rng.random() < 0.8:
                taken_back = rng.choice(reactions)
            else:  # one never added: takes nothing
                post, author = rng.choice(posts)
                taken_back = {"reactor": rng.choice(members), "kind": "love", "post": post}
                taken_back |= {"comment": None, "author": author}
            out.steps.append(("reaction_removed", taken_back))
        elif roll < 0.93:
            post, author = rng.choice(posts)
            out.steps.append(("post_removed", {"post": post, "author": author}))
        elif comments:
            out.steps.append(("comment_removed", on_comment(rng.choice(comments))))
    return out


class World:
    """One brand's ids for the scenario's names, both ways."""

    def __init__(self, brand_id: uuid.UUID) -> None:
        self.brand_id = brand_id
        self.ids: dict[str, uuid.UUID] = {}
        self.names: dict[uuid.UUID, str] = {}
        self.events: list[Event] = []

    def id(self, name: str) -> uuid.UUID:
        if name not in self.ids:
            self.ids[name] = new_id()
            self.names[self.ids[name]] = name
        return self.ids[name]

    def name(self, value: uuid.UUID) -> str:
        return self.names.get(value, "?")

    def unname(self, text: str) -> str:
        """A key with its ids turned back into the scenario's names."""
        return re.sub(
            r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            lambda found: self.name(uuid.UUID(found.group(0))),
            text,
        )

    def play(self, played: Scenario) -> None:
        """The scenario's events for this brand, one a minute."""
        self.events = [
            self._event(kind, step, START + timedelta(minutes=index))
            for index, (kind, step) in enumerate(played.steps)
        ]

    def _post(self, step: dict[str, Any]) -> dict[str, Any]:
        return {
            "post_id": self.id(step["post"]),
            "author_id": self.id(step["author"]),
            "kind": PostKind.POST,
            "status": ContentStatus.PUBLISHED,
            "group_id": None,
            "prompt_id": None,
            "review_sku": None,
            "rating": None,
            "tags": [],
            "skus": [],
            "incentivised": False,
        }

    def _comment(self, step: dict[str, Any], public: bool = True) -> dict[str, Any]:
        return {
            "comment_id": self.id(step["comment"]),
            "post_id": self.id(step["post"]),
            "post_author_id": self.id(step["post_author"]),
            "parent_id": None,
            "author_id": self.id(step["author"]),
            "status": ContentStatus.PUBLISHED if public else ContentStatus.HELD,
        }

    def _event(self, kind: str, step: dict[str, Any], at: datetime) -> Event:
        envelope: dict[str, Any] = {"brand_id": self.brand_id, "occurred_at": at}
        removal = {"removed_by": "moderator", "reason": None}
        if kind == "post_approved":
            return PostApproved(data=PostData(**self._post(step)), **envelope)
        if kind == "post_removed":
            return PostRemoved(data=PostRemovedData(**self._post(step), **removal), **envelope)
        if kind == "comment_created":
            data = CommentData(**self._comment(step, step["public"]))
            return CommentCreated(data=data, **envelope)
        if kind == "comment_approved":
            return CommentApproved(data=CommentData(**self._comment(step)), **envelope)
        if kind == "comment_removed":
            data = CommentRemovedData(**self._comment(step), **removal)
            return CommentRemoved(data=data, **envelope)
        reaction = ReactionData(
            member_id=self.id(step["reactor"]),
            kind=step["kind"],
            post_id=self.id(step["post"]),
            comment_id=self.id(step["comment"]) if step["comment"] else None,
            target_author_id=self.id(step["author"]),
        )
        if kind == "reaction_added":
            return ReactionAdded(data=reaction, **envelope)
        return ReactionRemoved(data=reaction, **envelope)


async def world(session: AsyncSession, name: str) -> World:
    brand = await make_brand(session, name)
    made = World(brand.id)
    for i in range(MEMBERS):
        session.add(
            CommunityMember(
                member_id=made.id(f"m{i}"),
                brand_id=brand.id,
                joined_at=START - timedelta(days=30),
                trust_level=4 if i == LOCKED else 0,
                trust_level_locked=i == LOCKED,
            )
        )
    for badge, threshold in BADGES.items():
        session.add(
            Badge(id=made.id(badge), brand_id=brand.id, name=badge, reputation_threshold=threshold)
        )
    await session.flush()
    return made


async def snapshot(session: AsyncSession, made: World) -> dict[str, Any]:
    """Everything reputation wrote for the brand, in the scenario's names."""
    events = {event.id: index for index, event in enumerate(made.events)}
    members = (
        await session.execute(
            select(CommunityMember)
            .where(CommunityMember.brand_id == made.brand_id)
            .execution_options(populate_existing=True)
        )
    ).scalars()
    history = (
        await session.scalars(
            select(ReputationEvent).where(ReputationEvent.brand_id == made.brand_id)
        )
    ).all()
    held = (
        await session.scalars(select(MemberBadge).where(MemberBadge.brand_id == made.brand_id))
    ).all()
    outbox = OUTBOX.table
    awarded = (
        await session.execute(
            select(outbox.c.payload)
            .where(outbox.c.brand_id == made.brand_id, outbox.c.type == "badge.awarded")
            .order_by(outbox.c.id)
        )
    ).scalars()
    return {
        "standing": sorted((made.name(m.member_id), m.reputation, m.trust_level) for m in members),
        "history": sorted(
            (
                made.name(row.member_id),
                made.unname(row.key),
                made.name(row.content_id),
                row.delta,
                row.reason.value,
                events[row.source_event_id],
                row.created_at,
            )
            for row in history
        ),
        "badges": sorted(
            (made.name(row.member_id), made.name(row.badge_id), row.awarded_at) for row in held
        ),
        "awarded": [
            (
                made.name(uuid.UUID(payload["data"]["member_id"])),
                payload["data"]["name"],
                payload["occurred_at"],
            )
            for payload in awarded
        ],
    }


def batches(events: Sequence[Event], rng: random.Random) -> list[list[Event]]:
    out: list[list[Event]] = []
    start = 0
    while start < len(events):
        size = rng.randint(1, 25)
        out.append(list(events[start : start + size]))
        start += size
    return out


async def test_a_batch_has_the_outcome_of_its_events_one_by_one(session: AsyncSession) -> None:
    played = scenario(seed=7)
    worlds = [await world(session, name) for name in ("One", "Batches", "Whole")]
    for made in worlds:
        made.play(played)
    one, batched, whole = worlds

    for event in one.events:
        assert REPUTATION_CONSUMER.wants(event.type)
        await apply_reputation_event(session, event)
    for batch in batches(batched.events, random.Random(3)):
        await apply_reputation_events(session, batch)
    await apply_reputation_events(session, whole.events)

    expected = await snapshot(session, one)
    # The scenario exercises what the batch must get right: take-backs, skipped repeats, badges
    # reached in the middle of a batch, the locked level.
    reasons = {row[4] for row in expected["history"]}
    assert reasons == {
        "post_approved",
        "comment_approved",
        "reaction_received",
        "reaction_removed",
        "content_removed",
    }
    assert {badge for _, badge, _ in expected["badges"]} == set(BADGES)
    assert ("m5", 4) in {(m, level) for m, _, level in expected["standing"]}
    for m, reputation, _ in expected["standing"]:
        assert reputation == sum(row[3] for row in expected["history"] if row[0] == m)
    assert len(expected["awarded"]) == len(expected["badges"])

    assert await snapshot(session, batched) == expected
    assert await snapshot(session, whole) == expected
