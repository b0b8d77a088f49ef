"""The community's types as members see them: posts, comments, groups, prompts, challenges,
ideas, badges and members' public profiles, each built from the community service's JSON.

Every type a member can fetch by itself implements `Node` and registers how `node(id:)` loads it:
posts, prompts and profiles through their batch reads (`by_id`), the rest through the service's
single read (`read_or_none`, one call per object and request). Nothing here writes.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

import strawberry

from services.community.challenges.models import ChallengeAction
from services.community.ideas.models import IdeaCategory, IdeaStatus
from services.community.ideas.paging import BoardPosition, encode_position
from services.community.models import ContentStatus, GroupKind, PostKind
from services.community.moderation.models import ReportReason, ReportStatus, TargetKind
from services.community.posts.events import ReactionKind
from services.community.reputation.models import BadgeSource
from services.gateway.calls import load, read_connection, read_or_none
from services.gateway.connections import Connection, keyed_by, page_args
from services.gateway.context import GatewayContext, GatewayInfo
from services.gateway.ids import Node, encode_global_id, register_node
from services.gateway.json_values import maybe_day, maybe_uuid, maybe_when, when
from services.gateway.loaders import BatchRead, register_batch_read

Json = dict[str, Any]

# The service's enums are the API's: one definition, so a value the service adds is never one
# the gateway cannot say.
strawberry.enum(PostKind, name="PostKind")
strawberry.enum(ContentStatus, name="ContentStatus", description="Held: awaiting review.")
strawberry.enum(ReactionKind, name="ReactionKind")
strawberry.enum(GroupKind, name="GroupKind")
strawberry.enum(ChallengeAction, name="ChallengeAction")
strawberry.enum(IdeaCategory, name="IdeaCategory")
strawberry.enum(IdeaStatus, name="IdeaStatus")
strawberry.enum(BadgeSource, name="BadgeSource")
strawberry.enum(ReportReason, name="ReportReason")
strawberry.enum(ReportStatus, name="ReportStatus")
strawberry.enum(TargetKind, name="ReportTargetKind")

register_batch_read("post", BatchRead("community", "/community/v1/posts"))
register_batch_read("prompt", BatchRead("community", "/community/v1/prompts"))
register_batch_read("member", BatchRead("community", "/community/v1/members"))


# --- Members' public profiles ---------------------------------------------------------------


@strawberry.type(
    description="A member as other members see them: name, reputation, badges, follows and "
    "posts. Nothing private (email, tier) is here."
)
class Member(Node):
    member_id: strawberry.Private[uuid.UUID]
    # The name, when the JSON the member came with carried it (a post's author, a follower).
    known_name: strawberry.Private[str | None] = None
    name_known: strawberry.Private[bool] = False

    async def _profile(self, context: GatewayContext) -> Json | None:
        return await load(context, "member", self.member_id)

    @strawberry.field
    async def display_name(self, info: GatewayInfo) -> str | None:
        if self.name_known:
            return self.known_name
        profile = await self._profile(info.context)
        return profile["display_name"] if profile is not None else None

    @strawberry.field(description="Earned from approved contributions and reactions to them.")
    async def reputation(self, info: GatewayInfo) -> int | None:
        profile = await self._profile(info.context)
        return profile["reputation"] if profile is not None else None

    @strawberry.field(description="0 new, 1 basic, 2 member, 3 regular, 4 leader.")
    async def trust_level(self, info: GatewayInfo) -> int | None:
        profile = await self._profile(info.context)
        return profile["trust_level"] if profile is not None else None

    @strawberry.field
    async def follower_count(self, info: GatewayInfo) -> int | None:
        profile = await self._profile(info.context)
        return profile["follower_count"] if profile is not None else None

    @strawberry.field
    async def following_count(self, info: GatewayInfo) -> int | None:
        profile = await self._profile(info.context)
        return profile["following_count"] if profile is not None else None

    @strawberry.field(description="Badges the member holds, newest first.")
    async def badges(
        self,
        info: GatewayInfo,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[MemberBadge]:
        args = page_args(first, after, last, before)
        return await read_connection(
            info.context,
            "community",
            f"/community/v1/members/{self.member_id}/badges",
            args,
            member_badge_from_json,
        )

    @strawberry.field(description="The member's published posts, newest first.")
    async def posts(
        self,
        info: GatewayInfo,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Post]:
        args = page_args(first, after, last, before)
        return await read_connection(
            info.context,
            "community",
            f"/community/v1/members/{self.member_id}/posts",
            args,
            post_from_json,
        )

    @strawberry.field(description="Who follows the member, newest first.")
    async def followers(
        self,
        info: GatewayInfo,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Follow]:
        args = page_args(first, after, last, before)
        return await read_connection(
            info.context,
            "community",
            f"/community/v1/members/{self.member_id}/followers",
            args,
            follow_from_json,
            cursor=keyed_by("relation_id"),
        )

    @strawberry.field(description="Whom the member follows, newest first.")
    async def following(
        self,
        info: GatewayInfo,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Follow]:
        args = page_args(first, after, last, before)
        return await read_connection(
            info.context,
            "community",
            f"/community/v1/members/{self.member_id}/following",
            args,
            follow_from_json,
            cursor=keyed_by("relation_id"),
        )


def member_of(member_id: uuid.UUID | str, name: str | None = None, *, named: bool) -> Member:
    raw = member_id if isinstance(member_id, uuid.UUID) else uuid.UUID(member_id)
    return Member(
        id=encode_global_id("Member", raw), member_id=raw, known_name=name, name_known=named
    )


def author_from_json(data: Json) -> Member:
    """A post's or comment's `author` ({member_id, display_name})."""
    return member_of(data["member_id"], data["display_name"], named=True)


def member_from_profile(data: Json) -> Member:
    return member_of(data["id"], data["display_name"], named=True)


@strawberry.type(description="One follow: the member on the other side, and since when.")
class Follow:
    member: Member
    since: datetime


def follow_from_json(data: Json) -> Follow:
    return Follow(
        member=member_of(data["member_id"], data["display_name"], named=True),
        since=when(data["since"]),
    )


# --- Badges -----------------------------------------------------------------------------------


@strawberry.type(description="A badge the brand awards, for a challenge or for reputation.")
class Badge(Node):
    badge_id: strawberry.Private[uuid.UUID]
    name: str
    description: str
    icon_url: str | None
    reputation_threshold: int | None = strawberry.field(
        description="Awarded on reaching this reputation; null: not awarded for reputation."
    )
    created_at: datetime


def badge_from_json(data: Json) -> Badge:
    raw = uuid.UUID(data["id"])
    return Badge(
        id=encode_global_id("Badge", raw),
        badge_id=raw,
        name=data["name"],
        description=data["description"],
        icon_url=data["icon_url"],
        reputation_threshold=data["reputation_threshold"],
        created_at=when(data["created_at"]),
    )


@strawberry.type(description="A badge a member holds, and how they earned it.")
class MemberBadge:
    badge: Badge
    source: BadgeSource
    awarded_at: datetime


def member_badge_from_json(data: Json) -> MemberBadge:
    return MemberBadge(
        badge=badge_from_json(data["badge"]),
        source=BadgeSource(data["source"]),
        awarded_at=when(data["awarded_at"]),
    )


# --- Posts and comments -----------------------------------------------------------------------


@strawberry.type
class Media:
    url: str
    alt: str


@strawberry.type(description="A post or a review, as the member calling may see it.")
class Post(Node):
    post_id: strawberry.Private[uuid.UUID]
    group_id: strawberry.Private[uuid.UUID | None]
    prompt_id: strawberry.Private[uuid.UUID | None]
    # What the member did to it, when the JSON carried it (posts read by id do).
    viewer: strawberry.Private[Json | None]
    author: Member
    kind: PostKind
    body: str
    media: list[Media]
    tags: list[str]
    skus: list[str] = strawberry.field(description="Product skus the post mentions.")
    review_sku: str | None = strawberry.field(description="The sku a review is of.")
    rating: int | None = strawberry.field(description="A review's rating, 1 to 5.")
    incentivised: bool = strawberry.field(
        description="Written for points (a prompt's answer): shown as such, as the law asks."
    )
    status: ContentStatus = strawberry.field(
        description="HELD only in the author's own views: awaiting review, seen by no one else."
    )
    held_reasons: list[str] = strawberry.field(description="Why it is held; empty otherwise.")
    comment_count: int
    reaction_count: int
    created_at: datetime
    updated_at: datetime

    async def _viewer(self, context: GatewayContext) -> Json | None:
        if self.viewer is not None:
            return self.viewer
        return await load(context, "post", self.post_id)

    @strawberry.field(description="The kinds I reacted to this post with.")
    async def my_reactions(self, info: GatewayInfo) -> list[ReactionKind]:
        seen = await self._viewer(info.context)
        return [ReactionKind(kind) for kind in seen["my_reactions"]] if seen is not None else []

    @strawberry.field(description="Whether the post is in my bookmarks.")
    async def bookmarked(self, info: GatewayInfo) -> bool:
        seen = await self._viewer(info.context)
        return bool(seen["bookmarked"]) if seen is not None else False

    @strawberry.field(description="The group it was posted in, if any.")
    async def group(self, info: GatewayInfo) -> Group | None:
        if self.group_id is None:
            return None
        return await group_by_id(info.context, self.group_id)

    @strawberry.field(description="The prompt it answers, if any (null if not mine to see).")
    async def prompt(self, info: GatewayInfo) -> Prompt | None:
        if self.prompt_id is None:
            return None
        return await prompt_by_id(info.context, self.prompt_id)

    @strawberry.field(description="Its comments, oldest first (replies name their parent).")
    async def comments(
        self,
        info: GatewayInfo,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Comment]:
        args = page_args(first, after, last, before)
        return await read_connection(
            info.context,
            "community",
            f"/community/v1/posts/{self.post_id}/comments",
            args,
            comment_from_json,
        )


def post_from_json(data: Json) -> Post:
    """A `Post` from the community's post JSON (any of its reads or writes)."""
    raw = uuid.UUID(data["id"])
    viewer = data if "my_reactions" in data else None
    return Post(
        id=encode_global_id("Post", raw),
        post_id=raw,
        group_id=maybe_uuid(data["group_id"]),
        prompt_id=maybe_uuid(data["prompt_id"]),
        viewer=viewer,
        author=author_from_json(data["author"]),
        kind=PostKind(data["kind"]),
        body=data["body"],
        media=[Media(url=m["url"], alt=m.get("alt", "")) for m in data["media"]],
        tags=list(data["tags"]),
        skus=list(data["skus"]),
        review_sku=data["review_sku"],
        rating=data["rating"],
        incentivised=data["incentivised"],
        status=ContentStatus(data["status"]),
        held_reasons=list(data["held_reasons"]),
        comment_count=data["comment_count"],
        reaction_count=data["reaction_count"],
        created_at=when(data["created_at"]),
        updated_at=when(data["updated_at"]),
    )


async def post_by_id(context: GatewayContext, post_id: uuid.UUID) -> Post | None:
    data = await load(context, "post", post_id)
    return post_from_json(data) if data is not None else None


@strawberry.type(description="A comment on a post, or a reply to one (`parent`).")
class Comment(Node):
    comment_id: strawberry.Private[uuid.UUID]
    post_id: strawberry.Private[uuid.UUID]
    parent_id: strawberry.Private[uuid.UUID | None]
    author: Member
    body: str
    status: ContentStatus
    reaction_count: int
    created_at: datetime

    @strawberry.field(description="The post it is on (null if it is no longer mine to see).")
    async def post(self, info: GatewayInfo) -> Post | None:
        return await post_by_id(info.context, self.post_id)

    @strawberry.field(description="The comment it replies to, if any.")
    async def parent(self, info: GatewayInfo) -> Comment | None:
        if self.parent_id is None:
            return None
        return await comment_by_id(info.context, self.parent_id)


def comment_from_json(data: Json) -> Comment:
    raw = uuid.UUID(data["id"])
    return Comment(
        id=encode_global_id("Comment", raw),
        comment_id=raw,
        post_id=uuid.UUID(data["post_id"]),
        parent_id=maybe_uuid(data["parent_id"]),
        author=author_from_json(data["author"]),
        body=data["body"],
        status=ContentStatus(data["status"]),
        reaction_count=data["reaction_count"],
        created_at=when(data["created_at"]),
    )


async def comment_by_id(context: GatewayContext, comment_id: uuid.UUID) -> Comment | None:
    data = await read_or_none(context, "community", f"/community/v1/comments/{comment_id}")
    return comment_from_json(data) if data is not None else None


@strawberry.type(description="A post I saved, and when.")
class Bookmark:
    post: Post
    bookmarked_at: datetime


def bookmark_from_json(data: Json) -> Bookmark:
    return Bookmark(post=post_from_json(data["post"]), bookmarked_at=when(data["bookmarked_at"]))


# --- Groups -----------------------------------------------------------------------------------


@strawberry.type(description="An interest community members join and post in.")
class Group(Node):
    group_id: strawberry.Private[uuid.UUID]
    owner_id: strawberry.Private[uuid.UUID | None]
    slug: str
    name: str
    description: str
    kind: GroupKind
    member_count: int
    archived: bool
    created_at: datetime

    @strawberry.field(description="The member who started it (null for the brand's groups).")
    def owner(self) -> Member | None:
        return member_of(self.owner_id, named=False) if self.owner_id is not None else None

    @strawberry.field(description="Its published posts, newest first.")
    async def posts(
        self,
        info: GatewayInfo,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Post]:
        args = page_args(first, after, last, before)
        return await read_connection(
            info.context,
            "community",
            f"/community/v1/feeds/groups/{self.group_id}",
            args,
            post_from_json,
        )


def group_from_json(data: Json) -> Group:
    raw = uuid.UUID(data["id"])
    return Group(
        id=encode_global_id("Group", raw),
        group_id=raw,
        owner_id=maybe_uuid(data["owner_id"]),
        slug=data["slug"],
        name=data["name"],
        description=data["description"],
        kind=GroupKind(data["kind"]),
        member_count=data["member_count"],
        archived=data["archived"],
        created_at=when(data["created_at"]),
    )


async def group_by_id(context: GatewayContext, group_id: uuid.UUID) -> Group | None:
    data = await read_or_none(context, "community", f"/community/v1/groups/{group_id}")
    return group_from_json(data) if data is not None else None


# --- Prompts ----------------------------------------------------------------------------------


@strawberry.type(description="A question or task from the brand, answered with posts.")
class Prompt(Node):
    prompt_id: strawberry.Private[uuid.UUID]
    title: str
    body: str
    tags: list[str]
    starts_at: datetime
    ends_at: datetime | None = strawberry.field(description="Null: open-ended.")
    points: int | None = strawberry.field(description="Points an answer earns; null: none.")
    answer_count: int

    @strawberry.field(description="Its published answers, newest first.")
    async def answers(
        self,
        info: GatewayInfo,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Post]:
        args = page_args(first, after, last, before)
        return await read_connection(
            info.context,
            "community",
            f"/community/v1/prompts/{self.prompt_id}/answers",
            args,
            post_from_json,
        )


def prompt_from_json(data: Json) -> Prompt:
    """A `Prompt` from the community's prompt JSON (as members or staff read it)."""
    raw = uuid.UUID(data["id"])
    return Prompt(
        id=encode_global_id("Prompt", raw),
        prompt_id=raw,
        title=data["title"],
        body=data["body"],
        tags=list(data["tags"]),
        starts_at=when(data["starts_at"]),
        ends_at=maybe_when(data["ends_at"]),
        points=data["points"],
        answer_count=data["answer_count"],
    )


async def prompt_by_id(context: GatewayContext, prompt_id: uuid.UUID) -> Prompt | None:
    data = await load(context, "prompt", prompt_id)
    return prompt_from_json(data) if data is not None else None


# --- Challenges -------------------------------------------------------------------------------


@strawberry.type
class ChallengeStep:
    action: ChallengeAction
    target: int


@strawberry.type
class ChallengeStepProgress:
    action: ChallengeAction
    target: int
    count: int = strawberry.field(description="Counted so far, up to the target.")
    done: bool


@strawberry.type
class Streak:
    current: int = strawberry.field(description="Consecutive UTC days with a counted action.")
    longest: int
    last_active_day: date | None


@strawberry.type(description="My progress in a challenge I joined.")
class ChallengeProgress:
    joined_at: datetime
    completed_at: datetime | None
    steps: list[ChallengeStepProgress]
    streak: Streak


@strawberry.type(description="A challenge from the brand: steps to complete in a window.")
class Challenge(Node):
    challenge_id: strawberry.Private[uuid.UUID]
    badge_id: strawberry.Private[uuid.UUID | None]
    title: str
    description: str
    starts_at: datetime
    ends_at: datetime
    points: int | None
    steps: list[ChallengeStep]
    participant_count: int
    completed_count: int
    created_at: datetime
    my_progress: ChallengeProgress | None = strawberry.field(description="Null until I join.")

    @strawberry.field(description="The badge completing it awards, if any.")
    async def badge(self, info: GatewayInfo) -> Badge | None:
        if self.badge_id is None:
            return None
        return await badge_by_id(info.context, self.badge_id)


def _progress(data: Json | None) -> ChallengeProgress | None:
    if data is None:
        return None
    streak = data["streak"]
    return ChallengeProgress(
        joined_at=when(data["joined_at"]),
        completed_at=maybe_when(data["completed_at"]),
        steps=[
            ChallengeStepProgress(
                action=ChallengeAction(step["action"]),
                target=step["target"],
                count=step["count"],
                done=step["done"],
            )
            for step in data["steps"]
        ],
        streak=Streak(
            current=streak["current"],
            longest=streak["longest"],
            last_active_day=maybe_day(streak["last_active_day"]),
        ),
    )


def challenge_from_json(data: Json) -> Challenge:
    """A `Challenge` from the member's view of it (`{"challenge", "progress"}`)."""
    challenge = data["challenge"]
    raw = uuid.UUID(challenge["id"])
    return Challenge(
        id=encode_global_id("Challenge", raw),
        challenge_id=raw,
        badge_id=maybe_uuid(challenge["badge_id"]),
        title=challenge["title"],
        description=challenge["description"],
        starts_at=when(challenge["starts_at"]),
        ends_at=when(challenge["ends_at"]),
        points=challenge["points"],
        steps=[
            ChallengeStep(action=ChallengeAction(s["action"]), target=s["target"])
            for s in challenge["steps"]
        ],
        participant_count=challenge["participant_count"],
        completed_count=challenge["completed_count"],
        created_at=when(challenge["created_at"]),
        my_progress=_progress(data["progress"]),
    )


def challenge_cursor(data: Json) -> str:
    return keyed_by("id")(data["challenge"])


# --- Ideas ------------------------------------------------------------------------------------


@strawberry.type(description="A member's idea on the brand's ideas board.")
class Idea(Node):
    idea_id: strawberry.Private[uuid.UUID]
    author: Member
    title: str
    body: str
    category: IdeaCategory
    status: IdeaStatus
    reply: str | None = strawberry.field(description="The brand's answer, with the status.")
    status_changed_at: datetime | None
    vote_count: int
    comment_count: int
    created_at: datetime
    voted: bool = strawberry.field(description="Whether I voted for it.")


def idea_from_json(data: Json) -> Idea:
    raw = uuid.UUID(data["id"])
    return Idea(
        id=encode_global_id("Idea", raw),
        idea_id=raw,
        author=member_of(data["author_id"], data["author_name"], named=True),
        title=data["title"],
        body=data["body"],
        category=IdeaCategory(data["category"]),
        status=IdeaStatus(data["status"]),
        reply=data["reply"],
        status_changed_at=maybe_when(data["status_changed_at"]),
        vote_count=data["vote_count"],
        comment_count=data["comment_count"],
        created_at=when(data["created_at"]),
        voted=bool(data["voted"]),
    )


def idea_cursor(data: Json) -> str:
    """The board's cursor for an idea, in either order: its votes and id, as the service pages
    the board."""
    return encode_position(BoardPosition(data["vote_count"], uuid.UUID(data["id"])))


# --- Reports ----------------------------------------------------------------------------------


@strawberry.type(description="A report I filed; moderators decide on it.")
class Report:
    target_kind: TargetKind
    reason: ReportReason
    text: str | None
    status: ReportStatus
    created_at: datetime


def report_from_json(data: Json) -> Report:
    return Report(
        target_kind=TargetKind(data["target_kind"]),
        reason=ReportReason(data["reason"]),
        text=data["text"],
        status=ReportStatus(data["status"]),
        created_at=when(data["created_at"]),
    )


# --- node(id:) --------------------------------------------------------------------------------


async def badge_by_id(context: GatewayContext, badge_id: uuid.UUID) -> Badge | None:
    data = await read_or_none(context, "community", f"/community/v1/badges/{badge_id}")
    return badge_from_json(data) if data is not None else None


async def challenge_by_id(context: GatewayContext, challenge_id: uuid.UUID) -> Challenge | None:
    data = await read_or_none(context, "community", f"/community/v1/me/challenges/{challenge_id}")
    return challenge_from_json(data) if data is not None else None


async def idea_by_id(context: GatewayContext, idea_id: uuid.UUID) -> Idea | None:
    data = await read_or_none(context, "community", f"/community/v1/ideas/{idea_id}")
    return idea_from_json(data) if data is not None else None


async def member_by_id(context: GatewayContext, member_id: uuid.UUID) -> Member | None:
    data = await load(context, "member", member_id)
    return member_from_profile(data) if data is not None else None


register_node("Post", post_by_id)
register_node("Comment", comment_by_id)
register_node("Group", group_by_id)
register_node("Prompt", prompt_by_id)
register_node("Challenge", challenge_by_id)
register_node("Idea", idea_by_id)
register_node("Badge", badge_by_id)
register_node("Member", member_by_id)
