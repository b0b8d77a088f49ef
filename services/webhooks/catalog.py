"""The public event types endpoints may ask for: every event the services publish."""

from __future__ import annotations

from recommender.events import RECOMMENDER_EVENTS
from services.community.events import COMMUNITY_EVENTS
from services.kernel.consumer import type_matches
from services.kernel.events import Event
from services.marketing.events import MARKETING_EVENTS
from services.members.events import MEMBER_EVENTS
from services.rewards.events import REWARDS_EVENTS
from services.webhooks.events import WEBHOOKS_EVENTS

PUBLIC_EVENTS: tuple[type[Event], ...] = tuple(
    cls
    for cls in (
        *MEMBER_EVENTS,
        *REWARDS_EVENTS,
        *COMMUNITY_EVENTS,
        *RECOMMENDER_EVENTS,
        *MARKETING_EVENTS,
        *WEBHOOKS_EVENTS,
    )
    if cls.public  # internal events only flow between services
)
EVENT_TYPES: frozenset[str] = frozenset(cls.event_type() for cls in PUBLIC_EVENTS)


def known_pattern(pattern: str) -> bool:
    """An exact type that exists, a `prefix.*` that matches at least one, or `*`."""
    return any(type_matches(pattern, event_type) for event_type in EVENT_TYPES)
