"""The community's root query fields: feeds, groups, prompts, challenges, the ideas board and
members' public profiles. Lists are connections over the service's keyset pages."""

from __future__ import annotations

from enum import Enum
from urllib.parse import quote

import strawberry

from services.community.ideas.models import IdeaCategory, IdeaStatus
from services.gateway.calls import read_connection
from services.gateway.connections import Connection, page_args
from services.gateway.context import GatewayInfo
from services.gateway.ids import decode_global_id
from services.gateway.schema.community_types import (
    Challenge,
    Group,
    Idea,
    Member,
    Post,
    Prompt,
    challenge_cursor,
    challenge_from_json,
    group_by_id,
    group_from_json,
    idea_cursor,
    idea_from_json,
    member_by_id,
    post_from_json,
    prompt_from_json,
)


@strawberry.enum
class IdeaSort(Enum):
    VOTES = "votes"
    NEWEST = "newest"


@strawberry.type
class CommunityQuery:
    @strawberry.field(description="Published posts with a tag, newest first.")
    async def posts_by_tag(
        self,
        info: GatewayInfo,
        tag: str,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Post]:
        args = page_args(first, after, last, before)
        return await read_connection(
            info.context,
            "community",
            f"/community/v1/feeds/tags/{quote(tag, safe='')}",
            args,
            post_from_json,
        )

    @strawberry.field(description="Posts by the members I follow, newest first.")
    async def following_feed(
        self,
        info: GatewayInfo,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Post]:
        args = page_args(first, after, last, before)
        return await read_connection(
            info.context, "community", "/community/v1/feeds/following", args, post_from_json
        )

    @strawberry.field(description="The brand's groups, oldest first.")
    async def groups(
        self,
        info: GatewayInfo,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Group]:
        args = page_args(first, after, last, before)
        return await read_connection(
            info.context, "community", "/community/v1/groups", args, group_from_json
        )

    @strawberry.field(description="A group by its id; null if there is none for me to see.")
    async def group(self, info: GatewayInfo, id: strawberry.ID) -> Group | None:
        _, raw = decode_global_id(id, expected="Group")
        return await group_by_id(info.context, raw)

    @strawberry.field(description="Prompts I can answer now, newest first.")
    async def prompts(
        self,
        info: GatewayInfo,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Prompt]:
        args = page_args(first, after, last, before)
        return await read_connection(
            info.context, "community", "/community/v1/me/prompts", args, prompt_from_json
        )

    @strawberry.field(
        description="Challenges open to join or in progress, with my progress, newest first."
    )
    async def challenges(
        self,
        info: GatewayInfo,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Challenge]:
        args = page_args(first, after, last, before)
        return await read_connection(
            info.context,
            "community",
            "/community/v1/me/challenges",
            args,
            challenge_from_json,
            cursor=challenge_cursor,
        )

    @strawberry.field(description="The ideas board: most voted first, or newest first.")
    async def ideas(
        self,
        info: GatewayInfo,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        sort: IdeaSort = IdeaSort.VOTES,
        status: IdeaStatus | None = None,
        category: IdeaCategory | None = None,
    ) -> Connection[Idea]:
        args = page_args(first, after, last, before)
        params = {
            "sort": sort.value,
            "status": status.value if status is not None else None,
            "category": category.value if category is not None else None,
        }
        return await read_connection(
            info.context,
            "community",
            "/community/v1/ideas",
            args,
            idea_from_json,
            params=params,
            cursor=idea_cursor,
        )

    @strawberry.field(description="A member's public profile; null if there is none for me.")
    async def member(self, info: GatewayInfo, id: strawberry.ID) -> Member | None:
        _, raw = decode_global_id(id, expected="Member")
        return await member_by_id(info.context, raw)
