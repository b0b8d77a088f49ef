"""`marketing.audience`: every event about a member, from every service, into the journal and
the member 360 (DESIGN: marketing consumes every event)."""

from __future__ import annotations

from services.kernel.consumer import ConsumerSpec
from services.marketing.audience.service import apply_event, apply_events
from services.marketing.models import INBOX

AUDIENCE_CONSUMER = ConsumerSpec(
    name="marketing.audience",
    services=("members", "rewards", "community"),
    handler=apply_event,
    handle_many=apply_events,
    inbox=INBOX,
    event_types=frozenset(
        {
            "member.*",
            "purchase.*",
            "points.*",
            "tier.*",
            "perk.*",
            "drop.entered",
            "post.created",
            "comment.created",
            "reaction.*",
            "prompt.answered",
            "experience.*",
        }
    ),
)
