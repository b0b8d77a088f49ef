"""Events of reputation and badges."""

from __future__ import annotations

import uuid
from typing import Literal

from services.community.reputation.models import BadgeSource
from services.kernel.events import Event, EventData


class BadgeAwardedData(EventData):
    badge_id: uuid.UUID
    member_id: uuid.UUID
    name: str
    source: BadgeSource
    challenge_id: uuid.UUID | None  # the challenge completed, when `source` is challenge


class BadgeAwarded(Event):
    """A member earned a badge (once per member and badge): by completing a challenge or by
    reaching the badge's reputation threshold."""

    type: Literal["badge.awarded"] = "badge.awarded"
    version: Literal[1] = 1
    data: BadgeAwardedData


EVENTS: tuple[type[Event], ...] = (BadgeAwarded,)
