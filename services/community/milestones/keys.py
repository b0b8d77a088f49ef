"""The names of milestones, as stored, emitted and used as prompt audiences."""

from __future__ import annotations

import re

FIRST_POST = "first_post"
# The reactions-received count that is a milestone ("a hundredth reaction received").
REACTIONS_MILESTONE = 100

_TIER_NAME_MAX = 100
_PATTERN = re.compile(
    rf"anniversary:[1-9][0-9]{{0,2}}|tier:\S.{{0,{_TIER_NAME_MAX - 1}}}|{FIRST_POST}"
    rf"|reactions:{REACTIONS_MILESTONE}",
    re.DOTALL,
)


def anniversary(years: int) -> str:
    return f"anniversary:{years}"


def tier(name: str) -> str:
    return f"tier:{name}"


def reactions(count: int) -> str:
    return f"reactions:{count}"


def is_known(milestone: str) -> bool:
    """Whether the community records this milestone (so a prompt for it can ever have an
    audience): an anniversary in whole years, a tier by name, the first post, 100 reactions."""
    return _PATTERN.fullmatch(milestone) is not None and "\x00" not in milestone
