"""The community part of the schema (issue #7): posts and comments, groups, prompts, challenges,
ideas, badges and members' public profiles; the feeds and lists as root fields; what members do
as mutations; and the community fields of `me` (mounted by `schema.me`).

The parts live in `community_*` modules; this one is what the rest of the schema imports. The
recommendations part loads posts and prompts by id (`context.loaders.by_id("post"/"prompt")`,
registered here) and builds them with `post_from_json` / `prompt_from_json`.
"""

from __future__ import annotations

from services.gateway.schema.community_mutations import CommunityMutation
from services.gateway.schema.community_queries import CommunityQuery
from services.gateway.schema.community_types import (
    Badge,
    Challenge,
    Comment,
    Group,
    Idea,
    Member,
    Post,
    Prompt,
    post_from_json,
    prompt_from_json,
)

__all__ = [
    "Badge",
    "Challenge",
    "Comment",
    "CommunityMutation",
    "CommunityQuery",
    "Group",
    "Idea",
    "Member",
    "Post",
    "Prompt",
    "post_from_json",
    "prompt_from_json",
]
