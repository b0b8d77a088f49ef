"""Errors the recommender's API answers with: each a 4xx with a code and what to do instead."""

from __future__ import annotations

from services.kernel.errors import Conflict, NotFound, ValidationFailed


class UnknownSurface(ValidationFailed):
    """There is no such surface: use perks, prompts, experiences, posts, discover or new."""

    code = "UnknownSurface"


class MemberNotFound(NotFound):
    """No such member here: a member token reads only its own member's recommendations."""

    code = "MemberNotFound"


class ExposureNotFound(NotFound):
    """No such list was served in this brand (or it was served to another member)."""

    code = "ExposureNotFound"


class ItemNotInExposure(ValidationFailed):
    """That item was not in this list: send the `item_id` of one of the list's items."""

    code = "ItemNotInExposure"


class ExperimentNotFound(NotFound):
    """No such experiment in this brand."""

    code = "ExperimentNotFound"


class ExperimentRunning(Conflict):
    """Another experiment is running in this brand: end it before starting a new one."""

    code = "ExperimentRunning"


class ExperimentEnded(Conflict):
    """The experiment has already ended."""

    code = "ExperimentEnded"


class UnknownModelVersion(ValidationFailed):
    """A `version` arm's `version_id` does not name one of this brand's model versions."""

    code = "UnknownModelVersion"
