"""Errors about challenges."""

from __future__ import annotations

from services.kernel.errors import Conflict, NotFound, ValidationFailed


class ChallengeNotFound(NotFound):
    """No such challenge in this brand."""

    code = "ChallengeNotFound"


class ChallengeClosed(Conflict):
    """The challenge has ended: it cannot be joined any more."""

    code = "ChallengeClosed"


class ChallengeStarted(Conflict):
    """The challenge has started: its steps and start are fixed now (members are counting on
    them). Change the title, description, end, points or badge, or start a new challenge."""

    code = "ChallengeStarted"


class ChallengeHasParticipants(Conflict):
    """Members have joined this challenge, so it stays for their record: end it early by
    setting `ends_at` instead."""

    code = "ChallengeHasParticipants"


class UnknownBadge(ValidationFailed):
    """`badge_id` is not a badge of this brand: use an id from `GET /community/v1/badges`."""

    code = "UnknownBadge"
