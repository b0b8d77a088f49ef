"""Events of the community's social graph: who follows whom (for the recommender, milestones
and marketing)."""

from __future__ import annotations

import uuid
from typing import Literal

from services.kernel.events import Event, EventData


class FollowData(EventData):
    follower_id: uuid.UUID
    followee_id: uuid.UUID


class MemberFollowed(Event):
    """`follower_id` started following `followee_id` (the subject is the follower)."""

    type: Literal["member.followed"] = "member.followed"
    version: Literal[1] = 1
    data: FollowData


class MemberUnfollowed(Event):
    """`follower_id` stopped following `followee_id`: unfollowed, or a block between the two
    ended the follow."""

    type: Literal["member.unfollowed"] = "member.unfollowed"
    version: Literal[1] = 1
    data: FollowData


EVENTS: tuple[type[Event], ...] = (MemberFollowed, MemberUnfollowed)
