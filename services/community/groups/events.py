"""Events of the community's groups."""

from __future__ import annotations

import uuid
from typing import Literal

from services.community.models import GroupKind
from services.kernel.events import Event, EventData


class GroupJoinedData(EventData):
    group_id: uuid.UUID
    member_id: uuid.UUID
    group_kind: GroupKind
    # The group's slug and name as they were when the member joined (for CRMs and webhooks).
    slug: str
    name: str
    # True when the member joined by creating the group (they are then its first moderator).
    created_group: bool


class GroupJoined(Event):
    """A member joined a group (or came back after leaving it). The subject is the member."""

    type: Literal["group.joined"] = "group.joined"
    version: Literal[1] = 1
    data: GroupJoinedData


EVENTS: tuple[type[Event], ...] = (GroupJoined,)
