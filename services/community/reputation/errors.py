"""Errors about badges and trust levels."""

from __future__ import annotations

from services.kernel.errors import Conflict, NotFound


class BadgeNotFound(NotFound):
    """No such badge in this brand: use an id from `GET /community/v1/badges`."""

    code = "BadgeNotFound"


class BadgeNameTaken(Conflict):
    """The brand already has a badge of that name: choose another name or change that badge."""

    code = "BadgeNameTaken"


class BadgeInUse(Conflict):
    """Members hold this badge or a challenge awards it, so it stays: clear its
    `reputation_threshold` (or the challenge's badge) to stop awarding it."""

    code = "BadgeInUse"
