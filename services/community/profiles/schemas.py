"""Pydantic output of public profiles."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field


class ProfileRead(BaseModel):
    """A member as any member of the brand may see them."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID = Field(description="The member's id.")
    display_name: str | None
    reputation: int
    trust_level: int = Field(description="0 new, 1 basic, 2 member, 3 regular, 4 leader.")
    follower_count: int
    following_count: int


class ProfileReads(BaseModel):
    """Profiles read by id: the members of the caller's brand among the ids."""

    items: list[ProfileRead]
