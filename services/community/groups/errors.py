"""Errors about groups and acting in them."""

from __future__ import annotations

from services.kernel.errors import Conflict, Forbidden, NotFound


class GroupNotFound(NotFound):
    """No such group in this brand."""

    code = "GroupNotFound"


class NotAGroupMember(Forbidden):
    """Join the group first (`POST /community/v1/groups/{id}/members`)."""

    code = "NotAGroupMember"


class RemovedFromGroup(Forbidden):
    """The member was removed from this group and may not act in it."""

    code = "RemovedFromGroup"


class GroupSlugTaken(Conflict):
    """Another group of this brand already uses this slug; choose another `slug`."""

    code = "GroupSlugTaken"


class NotGroupModerator(Forbidden):
    """Only the brand's staff and this group's moderators may do this."""

    code = "NotGroupModerator"


class LastModerator(Conflict):
    """A member-run group needs a moderator: promote someone else before stepping down or
    leaving."""

    code = "LastModerator"


class NotActiveInGroup(Conflict):
    """The member is not an active member of this group: they must join (or be reinstated)
    first."""

    code = "NotActiveInGroup"


class CannotRemoveSelf(Conflict):
    """Leave the group instead (`DELETE /community/v1/groups/{id}/members/me`)."""

    code = "CannotRemoveSelf"


class NotRemoved(Conflict):
    """Only a member removed from the group can be reinstated."""

    code = "NotRemoved"
