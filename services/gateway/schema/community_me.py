"""The community's fields of `me`: my badges, challenges, follows, posts, bookmarks and standing.

They are plain resolvers that `Me` mounts (see `schema.me`); the member is the caller, so none
needs `Me` itself.
"""

from __future__ import annotations

import strawberry

from services.community.members.abilities import Ability
from services.gateway.calls import read, read_connection
from services.gateway.connections import Connection, keyed_by, page_args
from services.gateway.context import GatewayInfo
from services.gateway.schema.community_types import (
    Bookmark,
    Challenge,
    Follow,
    Member,
    MemberBadge,
    Post,
    bookmark_from_json,
    challenge_cursor,
    challenge_from_json,
    follow_from_json,
    member_badge_from_json,
    member_of,
    post_from_json,
)

strawberry.enum(Ability, name="CommunityAbility")


@strawberry.type(description="My standing in the community: reputation and trust level.")
class Standing:
    reputation: int
    trust_level: int = strawberry.field(
        description="0 new, 1 basic, 2 member, 3 regular, 4 leader."
    )
    abilities: list[Ability] = strawberry.field(description="What my trust level unlocks.")
    next_level: int | None = strawberry.field(description="The next level; null at the top.")
    next_level_at: int | None = strawberry.field(description="The reputation it needs.")


async def my_badges(
    info: GatewayInfo,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Connection[MemberBadge]:
    args = page_args(first, after, last, before)
    return await read_connection(
        info.context, "community", "/community/v1/me/badges", args, member_badge_from_json
    )


async def my_challenges(
    info: GatewayInfo,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    joined: bool = True,
) -> Connection[Challenge]:
    args = page_args(first, after, last, before)
    return await read_connection(
        info.context,
        "community",
        "/community/v1/me/challenges",
        args,
        challenge_from_json,
        params={"joined": joined},
        cursor=challenge_cursor,
    )


async def my_followers(
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
        "/community/v1/me/followers",
        args,
        follow_from_json,
        cursor=keyed_by("relation_id"),
    )


async def my_following(
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
        "/community/v1/me/following",
        args,
        follow_from_json,
        cursor=keyed_by("relation_id"),
    )


async def my_posts(
    info: GatewayInfo,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Connection[Post]:
    args = page_args(first, after, last, before)
    return await read_connection(
        info.context, "community", "/community/v1/me/posts", args, post_from_json
    )


async def my_bookmarks(
    info: GatewayInfo,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Connection[Bookmark]:
    args = page_args(first, after, last, before)
    return await read_connection(
        info.context,
        "community",
        "/community/v1/me/bookmarks",
        args,
        bookmark_from_json,
        cursor=keyed_by("bookmark_id"),
    )


async def my_standing(info: GatewayInfo) -> Standing:
    data = await read(info.context, "community", "/community/v1/me/reputation")
    return Standing(
        reputation=data["reputation"],
        trust_level=data["trust_level"],
        abilities=[Ability(a) for a in data["abilities"]],
        next_level=data["next_level"],
        next_level_at=data["next_level_at"],
    )


def my_profile(info: GatewayInfo) -> Member:
    return member_of(info.context.member.member_id, named=False)


# The fields `Me` mounts, with their descriptions.
badges_field = strawberry.field(resolver=my_badges, description="My badges, newest first.")
challenges_field = strawberry.field(
    resolver=my_challenges,
    description="Challenges I joined, ended ones included (`joined: false`: those open to join "
    "or in progress), with my progress.",
)
followers_field = strawberry.field(
    resolver=my_followers, description="Who follows me, newest first."
)
following_field = strawberry.field(
    resolver=my_following, description="Whom I follow, newest first."
)
posts_field = strawberry.field(
    resolver=my_posts, description="My posts, newest first, the held ones included."
)
bookmarks_field = strawberry.field(
    resolver=my_bookmarks, description="My saved posts, newest first."
)
standing_field = strawberry.field(
    resolver=my_standing, description="My reputation and trust level."
)
community_profile_field = strawberry.field(
    resolver=my_profile, description="My public profile, as other members see it."
)
