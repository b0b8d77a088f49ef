"""Errors of moderation: reports, decisions, the blocklist and the classifier."""

from __future__ import annotations

from services.kernel.errors import Conflict, Forbidden, NotFound, ValidationFailed


class TargetNotFound(NotFound):
    """No such post, comment or member in this brand (or it was removed): check `target_kind`
    and `target_id`."""

    code = "TargetNotFound"


class CannotReportSelf(ValidationFailed):
    """Members cannot report themselves or their own content; delete it instead."""

    code = "CannotReportSelf"


class NotAModerator(Forbidden):
    """Only the brand's staff and the group moderators of the content's group may do this."""

    code = "NotAModerator"


class SuspendNeedsStaff(Forbidden):
    """Only the brand's staff may suspend a member; group moderators can remove or warn."""

    code = "SuspendNeedsStaff"


class CannotModerateSelf(Forbidden):
    """A moderator cannot decide on their own content or account; another moderator or staff
    must."""

    code = "CannotModerateSelf"


class ActionNotApplicable(ValidationFailed):
    """`approve` and `remove` apply to posts and comments only; for a member, `warn` or
    `suspend`."""

    code = "ActionNotApplicable"


class AlreadyRemoved(Conflict):
    """The content was already removed; a removed post or comment cannot be approved or removed
    again."""

    code = "AlreadyRemoved"


class TermExists(Conflict):
    """The blocklist already has this term."""

    code = "TermExists"


class TermNotFound(NotFound):
    """No such blocklist term in this brand."""

    code = "TermNotFound"


class NotEnoughExamples(ValidationFailed):
    """Upload more labelled examples (`POST /community/v1/moderation/classifier/examples`): at
    least two labelled `ok` and two labelled `spam` or `abusive`."""

    code = "NotEnoughExamples"


class ClassifierNotTrained(NotFound):
    """This brand has no trained classifier yet: upload examples, then
    `POST /community/v1/moderation/classifier/train`."""

    code = "ClassifierNotTrained"


class ExampleNotFound(NotFound):
    """No such training example in this brand."""

    code = "ExampleNotFound"
