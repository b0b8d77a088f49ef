"""Trust levels from reputation, as Discourse earns them from participation.

| level | name    | reputation at least |
| ----- | ------- | ------------------- |
| 0     | new     | 0                   |
| 1     | basic   | 20                  |
| 2     | member  | 100                 |
| 3     | regular | 300                 |
| 4     | leader  | 1000                |

A member's level follows their reputation both ways (content removed for breaking the rules
costs the reputation it earned, and with it the abilities it unlocked) unless staff have set the
level, which locks it until they unlock it. What each level unlocks is in
`services.community.members.abilities`.
"""

from __future__ import annotations

from services.community.models import TrustLevel

THRESHOLDS: dict[int, int] = {
    TrustLevel.NEW: 0,
    TrustLevel.BASIC: 20,
    TrustLevel.MEMBER: 100,
    TrustLevel.REGULAR: 300,
    TrustLevel.LEADER: 1000,
}

MAX_LEVEL = TrustLevel.LEADER


def level_for(reputation: int) -> int:
    """The highest level whose threshold the reputation reaches."""
    return max(
        (level for level, needed in THRESHOLDS.items() if reputation >= needed),
        default=TrustLevel.NEW,
    )


def next_threshold(level: int) -> tuple[int, int] | None:
    """The level after `level` and the reputation it needs; None at the top."""
    if level >= MAX_LEVEL:
        return None
    return level + 1, THRESHOLDS[level + 1]
