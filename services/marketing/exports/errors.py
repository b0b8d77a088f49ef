"""What can be wrong with an export or a schedule. A problem in the request names the bad part
as segments' rule errors do: `detail` is `{"path": "fields[2]", "message": ...}`."""

from __future__ import annotations

import uuid
from typing import Any

from services.kernel.errors import Forbidden, NotFound, ValidationFailed


class _AtPath:
    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        detail: dict[str, Any] = {"path": path, "message": message}
        super().__init__(detail)  # type: ignore[call-arg]


class ExportNotFound(NotFound):
    code = "ExportNotFound"

    def __init__(self, export_id: uuid.UUID) -> None:
        super().__init__(f"No export {export_id} in this brand.")


class ScheduleNotFound(NotFound):
    code = "ExportScheduleNotFound"

    def __init__(self, schedule_id: uuid.UUID) -> None:
        super().__init__(f"No export schedule {schedule_id} in this brand.")


class UnknownField(_AtPath, ValidationFailed):
    """A field that is not in the member-360 catalog (`GET` the OpenAPI schema for the list)."""

    code = "UnknownField"


class DuplicateField(_AtPath, ValidationFailed):
    code = "DuplicateField"


class FieldNotReadable(_AtPath, Forbidden):
    """Personal fields (who the member is, how to reach them) need the `members:read` scope."""

    code = "FieldNotReadable"


class SinceVersionRequired(_AtPath, ValidationFailed):
    code = "SinceVersionRequired"


class SinceVersionNotForFull(_AtPath, ValidationFailed):
    code = "SinceVersionNotForFull"


class UnknownVersion(_AtPath, ValidationFailed):
    code = "UnknownVersion"


class LawfulBasisNotForDelta(_AtPath, ValidationFailed):
    """A delta says who entered and exited the segment's consented audience; a lawful basis
    exports the rule's members without the consent filter, which has no versions to diff."""

    code = "LawfulBasisNotForDelta"


class DestinationNotAllowed(_AtPath, ValidationFailed):
    code = "DestinationNotAllowed"


class ExportLinkInvalid(Forbidden):
    """The link was not made by this server or was changed: ask `GET /exports/{id}` again."""

    code = "ExportLinkInvalid"


class ExportLinkExpired(Forbidden):
    """The link has expired: `GET /exports/{id}` gives a fresh one."""

    code = "ExportLinkExpired"


class ExportNotReady(NotFound):
    """The export has no file (yet): it is queued, running or failed."""

    code = "ExportNotReady"
