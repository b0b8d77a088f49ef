"""Events of the community's ideas board.

Voters hear when an idea's status changes through `idea.status_changed`: one event per change
(the public fact webhooks and marketing see once), whose data names the voters directly, up to
`VOTER_IDS_LIMIT`, in the order they voted. That covers almost every idea in one self-contained
message the gateway can fan out as notifications with no further call. For the rare idea with more
voters, `voters_next` is the keyset cursor of `GET /community/v1/ideas/{idea_id}/voters` right after
the last listed voter, so the gateway pages the rest instead of the event growing without bound
(one event per voter would flood webhook subscribers with copies of the same change and write
thousands of outbox rows in the staff request's transaction).
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field

from services.community.ideas.models import IdeaCategory, IdeaStatus
from services.kernel.events import Event, EventData

# How many voter ids `idea.status_changed` carries itself (about 20 KB of JSON at most).
VOTER_IDS_LIMIT = 500


class IdeaData(EventData):
    idea_id: uuid.UUID
    author_id: uuid.UUID
    title: str
    category: IdeaCategory
    status: IdeaStatus
    vote_count: int


class IdeaCreated(Event):
    """A member proposed an idea (their own vote is counted from the start)."""

    type: Literal["idea.created"] = "idea.created"
    version: Literal[1] = 1
    data: IdeaData


class IdeaVotedData(EventData):
    idea_id: uuid.UUID
    author_id: uuid.UUID  # whose idea it is
    member_id: uuid.UUID  # who voted
    vote_count: int  # the idea's votes after this one


class IdeaVoted(Event):
    """A member voted for someone's idea; the subject is the voter."""

    type: Literal["idea.voted"] = "idea.voted"
    version: Literal[1] = 1
    data: IdeaVotedData


class IdeaStatusChangedData(EventData):
    idea_id: uuid.UUID
    author_id: uuid.UUID
    title: str
    from_status: IdeaStatus
    to_status: IdeaStatus
    reply: str | None
    voter_count: int
    voter_ids: list[uuid.UUID] = Field(
        description=f"The voters to notify, in voting order: all of them, or the first "
        f"{VOTER_IDS_LIMIT} when `voters_next` is set."
    )
    voters_next: str | None = Field(
        description="Set when more voters than `voter_ids` lists: pass it as `after` to "
        "`GET /community/v1/ideas/{idea_id}/voters` to page the others."
    )


class IdeaStatusChanged(Event):
    """The brand answered an idea with a new status; the subject is its author. Everyone who
    voted for it (the author included) is to be told."""

    type: Literal["idea.status_changed"] = "idea.status_changed"
    version: Literal[1] = 1
    data: IdeaStatusChangedData


EVENTS: tuple[type[Event], ...] = (IdeaCreated, IdeaVoted, IdeaStatusChanged)
