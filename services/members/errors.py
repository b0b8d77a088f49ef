"""The members service's own error codes, on top of the kernel's."""

from __future__ import annotations

from services.kernel.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized


class MemberNotFound(NotFound):
    """No member with this id in your brand."""


class ApiKeyNotFound(NotFound):
    """No API key with this id in your brand."""


class DuplicateExternalId(Conflict):
    """A member with this external id already exists in your brand."""

    code = "DuplicateExternalId"


class MemberErased(Conflict):
    """This member has been erased; their profile can no longer change."""

    code = "MemberErased"


class MemberSuspended(Forbidden):
    """This member is suspended."""

    code = "MemberSuspended"


class MemberGone(Unauthorized):
    """The token's member has been erased or does not exist."""


class InvalidImportFile(BadRequest):
    """The file as a whole cannot be imported (its header or encoding); nothing was imported."""

    code = "InvalidImportFile"
