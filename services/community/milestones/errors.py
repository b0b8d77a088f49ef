"""Errors of milestones."""

from __future__ import annotations

from services.kernel.errors import ValidationFailed


class UnknownMilestone(ValidationFailed):
    """Name a milestone the community records: "anniversary:<years>" (1 or more), "tier:<tier
    name>", "first_post" or "reactions:100"."""

    code = "UnknownMilestone"
