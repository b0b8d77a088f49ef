"""Refusals of the bulk history path that the online path has no need for (everything else is
refused with the online path's own errors)."""

from __future__ import annotations

from services.kernel.errors import Conflict, ValidationFailed


class ContentInFuture(ValidationFailed):
    """History holds what has happened: this content is dated after now."""

    code = "ContentInFuture"


class ContentOutOfOrder(ValidationFailed):
    """A comment or reaction dated before the post it responds to."""

    code = "ContentOutOfOrder"


class ContentRepeated(Conflict):
    """The same post key, reaction or follow twice in a batch, or already in the brand (a
    reaction or follow given twice online changes nothing the second time: history has it
    once)."""

    code = "ContentRepeated"
