"""Errors about prompts and answering them."""

from __future__ import annotations

from services.kernel.errors import Conflict, Forbidden, NotFound, ValidationFailed


class PromptNotFound(NotFound):
    """No such prompt in this brand."""

    code = "PromptNotFound"


class PromptClosed(Conflict):
    """The prompt is not open now: it has not started yet or it has ended (see the window in
    `detail`). Answer an open prompt from `GET /community/v1/me/prompts`."""

    code = "PromptClosed"


class NotInAudience(Forbidden):
    """This prompt is for other members (certain tiers, groups or a milestone): answer one from
    `GET /community/v1/me/prompts`."""

    code = "NotInAudience"


class PromptHasAnswers(Conflict):
    """Members have answered this prompt, so it stays with their answers: close it instead by
    setting `ends_at`."""

    code = "PromptHasAnswers"


class InvalidAudience(ValidationFailed):
    """The audience does not fit its kind: `tiers` needs `audience_tier_ids`, `groups` needs
    `audience_group_ids` of this brand's groups, `milestone` a milestone the community records
    in `audience_milestone`, and `all` none of them."""

    code = "InvalidAudience"
