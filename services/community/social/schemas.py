"""Pydantic I/O of follows, blocks and mutes."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field


class RelatedMember(BaseModel):
    """A member on the other side of a follow, block or mute, and since when."""

    relation_id: uuid.UUID = Field(
        description="The follow's (block's, mute's) own id: the list's order and cursor."
    )
    member_id: uuid.UUID
    display_name: str | None
    since: datetime


class RelationState(BaseModel):
    """The answer to a follow, block or mute: whom, and whether it is new (201) or was already
    there (200)."""

    member_id: uuid.UUID
    created: bool
