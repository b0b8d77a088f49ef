"""Events of the community's moderation."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from services.community.moderation.models import Action, ReportReason, TargetKind
from services.kernel.events import Event, EventData


class ReportedData(EventData):
    report_id: uuid.UUID
    reporter_id: uuid.UUID
    target_kind: TargetKind
    target_id: uuid.UUID
    target_author_id: uuid.UUID
    group_id: uuid.UUID | None
    reason: ReportReason


class ModerationReported(Event):
    """A member reported a post, a comment or a member. The subject is the reported author;
    the reporter's own words stay in the community (they are not in the event)."""

    type: Literal["moderation.reported"] = "moderation.reported"
    version: Literal[1] = 1
    data: ReportedData


class DecidedData(EventData):
    decision_id: uuid.UUID
    target_kind: TargetKind
    target_id: uuid.UUID
    target_author_id: uuid.UUID
    group_id: uuid.UUID | None
    action: Action
    reason: str
    # For `suspend`: until when (null: indefinitely).
    suspended_until: datetime | None
    # Who decided: a staff API key or a group moderator (exactly one is set).
    decided_by_key_id: uuid.UUID | None
    decided_by_member_id: uuid.UUID | None
    resolved_report_ids: list[uuid.UUID]


class ModerationDecided(Event):
    """A moderator or staff decided on a post, a comment or a member (approve, remove, warn or
    suspend); the open reports on it are resolved. The subject is the author, who is told."""

    type: Literal["moderation.decided"] = "moderation.decided"
    version: Literal[1] = 1
    data: DecidedData


EVENTS: tuple[type[Event], ...] = (ModerationReported, ModerationDecided)
