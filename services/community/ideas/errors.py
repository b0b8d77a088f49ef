"""Errors of the ideas board; each says what the caller can do about it."""

from __future__ import annotations

from services.kernel.errors import Conflict, NotFound


class IdeaNotFound(NotFound):
    """No such idea in this brand; list ideas with `GET /community/v1/ideas`."""

    code = "IdeaNotFound"


class AlreadyVoted(Conflict):
    """This member has already voted for this idea (one vote per member); the vote stands."""

    code = "AlreadyVoted"


class VoteNotFound(NotFound):
    """This member has not voted for this idea, so there is no vote to take back."""

    code = "VoteNotFound"


class IdeaClosed(Conflict):
    """The idea is launched or declined: its voting is closed (comments stay open)."""

    code = "IdeaClosed"
