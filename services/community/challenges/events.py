"""Events of the community's challenges."""

from __future__ import annotations

import uuid
from typing import Literal

from services.kernel.events import Event, EventData


class ChallengeCompletedData(EventData):
    challenge_id: uuid.UUID
    member_id: uuid.UUID
    points: int | None  # the challenge's advertised points; rewards' activity rules pay them
    badge_id: uuid.UUID | None  # awarded with it (a `badge.awarded` follows in the transaction)


class ChallengeCompleted(Event):
    """A member completed every step of a challenge: once per member and challenge."""

    type: Literal["challenge.completed"] = "challenge.completed"
    version: Literal[1] = 1
    data: ChallengeCompletedData


EVENTS: tuple[type[Event], ...] = (ChallengeCompleted,)
