"""Errors shared across the community service; each package adds its own in its `service.py`."""

from __future__ import annotations

from services.kernel.errors import Forbidden, NotFound


class MemberNotFound(NotFound):
    """No such member in this brand (the community learns of new members within a moment)."""

    code = "MemberNotFound"


class MemberSuspended(Forbidden):
    """This member is suspended from the community and cannot post, comment, react or book."""

    code = "MemberSuspended"


class TrustLevelTooLow(Forbidden):
    """The member has not reached the trust level this needs yet."""

    code = "TrustLevelTooLow"
