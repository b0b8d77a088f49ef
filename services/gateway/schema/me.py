"""`me`: the member calling, and everything that hangs off them.

`Me` is the hub of the member's own data; its fields' resolvers live with their area's module
(rewards, community, recommendations) so each area's calls and types stay in one place.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import strawberry
from strawberry.scalars import JSON

from services.gateway.calls import read
from services.gateway.context import GatewayContext, GatewayInfo
from services.gateway.ids import Node, encode_global_id
from services.gateway.json_values import maybe_day, when
from services.gateway.schema import community_me, experiences, members, recommendations, rewards


async def profile(context: GatewayContext) -> dict[str, Any]:
    """The member's own profile from the members service (one call per request)."""
    data: dict[str, Any] = await read(context, "members", "/members/v1/me")
    return data


@strawberry.type(description="The member calling: their profile and everything that is theirs.")
class Me(Node):
    member_id: strawberry.Private[uuid.UUID]

    @strawberry.field
    async def display_name(self, info: GatewayInfo) -> str | None:
        return (await profile(info.context)).get("display_name")

    @strawberry.field
    async def email(self, info: GatewayInfo) -> str | None:
        return (await profile(info.context)).get("email")

    @strawberry.field
    async def locale(self, info: GatewayInfo) -> str | None:
        return (await profile(info.context)).get("locale")

    @strawberry.field
    async def time_zone(self, info: GatewayInfo) -> str | None:
        return (await profile(info.context)).get("time_zone")

    @strawberry.field
    async def birthday(self, info: GatewayInfo) -> dt.date | None:
        return maybe_day((await profile(info.context)).get("birthday"))

    @strawberry.field(description="What the member told the brand they are into.")
    async def interests(self, info: GatewayInfo) -> list[str]:
        return list((await profile(info.context)).get("interests", []))

    @strawberry.field(description="Profile traits (skin type, shade, ...), as the brand defines.")
    async def traits(self, info: GatewayInfo) -> JSON:
        traits: JSON = (await profile(info.context)).get("traits", {})
        return traits

    @strawberry.field
    async def joined_at(self, info: GatewayInfo) -> dt.datetime:
        return when((await profile(info.context))["created_at"])

    # Each area's fields of `Me` live with the area's calls and types, mounted here.
    # --- members ----------------------------------------------------------------------------
    consents = members.consents_field

    # --- rewards ----------------------------------------------------------------------------
    tier_status = rewards.tier_status_field
    points = rewards.points_field
    ledger = rewards.ledger_field
    redemptions = rewards.redemptions_field

    # --- community and experiences ---------------------------------------------------------
    bookings = experiences.bookings_field
    badges = community_me.badges_field
    challenges = community_me.challenges_field
    followers = community_me.followers_field
    following = community_me.following_field
    posts = community_me.posts_field
    bookmarks = community_me.bookmarks_field
    standing = community_me.standing_field
    community_profile = community_me.community_profile_field

    # --- recommendations --------------------------------------------------------------------
    recommended_perks = recommendations.recommended_perks_field
    recommended_prompts = recommendations.recommended_prompts_field
    recommended_experiences = recommendations.recommended_experiences_field
    for_you = recommendations.for_you_field
    discover = recommendations.discover_field
    new_for_you = recommendations.new_for_you_field


def me_of(context: GatewayContext) -> Me:
    member = context.member
    return Me(id=encode_global_id("Me", member.member_id), member_id=member.member_id)


@strawberry.type
class MeQuery:
    @strawberry.field(description="The member calling. Needs a member token.")
    def me(self, info: GatewayInfo) -> Me:
        return me_of(info.context)
