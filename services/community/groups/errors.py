"""Errors about groups and acting in them."""

from __future__ import annotations

from services.kernel.errors import Forbidden, NotFound


class GroupNotFound(NotFound):
    """No such group in this brand."""

    code = "GroupNotFound"


class NotAGroupMember(Forbidden):
    """Join the group first (`POST /community/v1/groups/{id}/members`)."""

    code = "NotAGroupMember"


class RemovedFromGroup(Forbidden):
    """The member was removed from this group and may not act in it."""

    code = "RemovedFromGroup"
