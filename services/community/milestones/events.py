"""Events of the community's milestones."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import AwareDatetime, Field

from services.kernel.events import Event, EventData


class MilestoneData(EventData):
    member_id: uuid.UUID
    milestone: str = Field(
        description='"anniversary:<years>", "tier:<tier name>", "first_post" or "reactions:100"'
    )
    reached_at: AwareDatetime


class MilestoneReached(Event):
    """A member reached a milestone, once ever per member and milestone: the apps show a
    celebration, rewards' activity rules may pay it. The subject is the member."""

    type: Literal["milestone.reached"] = "milestone.reached"
    version: Literal[1] = 1
    data: MilestoneData


EVENTS: tuple[type[Event], ...] = (MilestoneReached,)
