"""Errors about follows, blocks and mutes."""

from __future__ import annotations

from services.kernel.errors import Forbidden, ValidationFailed


class MemberBlocked(Forbidden):
    """One of you has blocked the other: you cannot follow, comment on or react to each other's
    content. Unblock first (`DELETE /community/v1/me/blocks/{member_id}`) if it was you."""

    code = "MemberBlocked"


class CannotFollowYourself(ValidationFailed):
    """Follow other members; your own posts are always in your own list (`/me/posts`)."""

    code = "CannotFollowYourself"


class CannotBlockYourself(ValidationFailed):
    """Block other members, not yourself."""

    code = "CannotBlockYourself"


class CannotMuteYourself(ValidationFailed):
    """Mute other members, not yourself."""

    code = "CannotMuteYourself"
