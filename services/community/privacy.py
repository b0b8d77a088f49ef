"""What the community keeps on a member, for their privacy export (`kernel.privacy`): their
profile and standing, what they wrote (posts, reviews and answers, comments, ideas, testimonials),
what they did (reactions, votes, bookmarks, follows, blocks and mutes they made, groups joined or
made, challenges, bookings, reviews of experiences, reports they filed, experiences they host),
and what they earned (badges, milestones, reputation). Not who follows, blocks, mutes or reported
them: that is the other members' doing, and blocks, mutes and reports are not told."""

from __future__ import annotations

from services.community.models import SCHEMA, Base
from services.kernel.privacy import owned

_tables = Base.metadata.tables


def _table(name: str) -> str:
    return f"{SCHEMA}.{name}"


PRIVACY_SECTIONS = (
    owned("profile", _tables[_table("members")]),
    owned("posts", _tables[_table("posts")], "author_id"),
    owned("comments", _tables[_table("comments")], "author_id"),
    owned("reactions", _tables[_table("reactions")]),
    owned("bookmarks", _tables[_table("bookmarks")]),
    owned("following", _tables[_table("follows")], "follower_id"),
    owned("blocks", _tables[_table("blocks")], "blocker_id"),
    owned("mutes", _tables[_table("mutes")], "muter_id"),
    owned("groups_owned", _tables[_table("groups")], "owner_id"),
    owned("group_memberships", _tables[_table("group_memberships")]),
    owned("ideas", _tables[_table("ideas")], "author_id"),
    owned("idea_comments", _tables[_table("idea_comments")], "author_id"),
    owned("idea_votes", _tables[_table("idea_votes")]),
    owned("challenges", _tables[_table("challenge_participants")]),
    owned("challenge_actions", _tables[_table("challenge_actions")]),
    owned("experiences_hosted", _tables[_table("experiences")], "host_member_id"),
    owned("bookings", _tables[_table("experience_bookings")]),
    owned("experience_reviews", _tables[_table("experience_reviews")]),
    owned("reports_made", _tables[_table("reports")], "reporter_id"),
    owned("testimonials", _tables[_table("testimonials")], "author_id"),
    owned("badges", _tables[_table("member_badges")]),
    owned("milestones", _tables[_table("milestones")]),
    owned("reputation_events", _tables[_table("reputation_events")]),
)
