"""Pydantic I/O of groups and their members. Inputs refuse unknown fields and trim text."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.community.models import GroupKind, GroupRole, MembershipStatus
from services.kernel.schemas import Input

GroupName = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Slug = Annotated[
    str,
    StringConstraints(min_length=1, max_length=60, pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$"),
    Field(description="Lower-case letters, digits and single hyphens, e.g. `curly-hair`."),
]
Description = Annotated[str, StringConstraints(max_length=2_000)]


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class GroupCreate(Input):
    """A new group. Staff create brand-run groups; members (trust level 2 and up) create
    member-run groups and become their first moderator."""

    name: GroupName
    slug: Slug | None = Field(
        default=None, description="Unique within the brand; derived from the name when omitted."
    )
    description: Description = ""


class GroupUpdate(Input):
    """Changes to a group: omitted fields stay."""

    name: GroupName | None = None
    description: Description | None = None


class GroupRead(Output):
    id: uuid.UUID
    slug: str
    name: str
    description: str
    kind: GroupKind
    owner_id: uuid.UUID | None
    member_count: int
    archived: bool
    created_at: datetime


class MembershipRead(Output):
    group_id: uuid.UUID
    member_id: uuid.UUID
    role: GroupRole
    status: MembershipStatus
    joined_at: datetime
    updated_at: datetime


class ModeratorAdd(Input):
    member_id: uuid.UUID = Field(description="An active member of the group.")
