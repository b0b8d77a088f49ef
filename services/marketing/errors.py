"""Errors shared across the marketing service; each package adds its own next to its rules."""

from __future__ import annotations

import uuid

from services.kernel.errors import NotFound


class MemberNotFound(NotFound):
    """No such member in this brand's member 360 (it learns of new members within a moment)."""

    code = "MemberNotFound"

    def __init__(self, member_id: uuid.UUID) -> None:
        super().__init__(f"No member {member_id} in this brand's member 360 (yet).")
