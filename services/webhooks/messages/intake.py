"""`webhooks.messages`: every public event, from every service, becomes a message with a
delivery for each enabled endpoint of its brand that wants its type (and, for an endpoint
filtered by a segment, whose member is in that segment now). Marketing's `segment.entered` /
`segment.exited` also keep webhooks' own view of who is in which segment, applied before the
batch's messages are matched, in stream order. `member.erased` drops the member's earlier
messages (their payloads carry personal data) and keeps its own, so CRMs learn of it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.kernel.consumer import ConsumerSpec, type_matches
from services.kernel.events import Event
from services.marketing.events import SegmentEntered, SegmentExited
from services.members.events import MemberErased
from services.webhooks.messages.repository import IntakeRepository
from services.webhooks.models import INBOX, DeliveryStatus, Endpoint

# Every service that publishes events (the gateway publishes none; webhooks' own tell of
# disabled endpoints, which the brand's other endpoints may want).
PUBLISHERS = ("members", "rewards", "community", "recommender", "marketing", "webhooks")


def _wants(endpoint: Endpoint, event: Event) -> bool:
    if not event.public:
        return False
    return any(type_matches(pattern, event.type) for pattern in endpoint.event_types)


async def _apply_segments(repository: IntakeRepository, events: Sequence[Event]) -> None:
    """Runs of entries and exits, each run written at once, in the order they came."""
    run: list[tuple[uuid.UUID, uuid.UUID]] = []
    entering = True
    for event in events:
        if not isinstance(event, SegmentEntered | SegmentExited):
            continue
        this = isinstance(event, SegmentEntered)
        if run and this != entering:
            await (repository.enter_segment if entering else repository.exit_segment)(run)
            run = []
        entering = this
        run.append((event.data.segment_id, event.data.member_id))
    if run:
        await (repository.enter_segment if entering else repository.exit_segment)(run)


async def take_events(session: AsyncSession, events: Sequence[Event]) -> None:
    repository = IntakeRepository(session)
    await _apply_segments(repository, events)
    endpoints: dict[uuid.UUID, list[Endpoint]] = {}
    for endpoint in await repository.enabled_endpoints({e.brand_id for e in events}):
        endpoints.setdefault(endpoint.brand_id, []).append(endpoint)
    matches = [
        (event, endpoint)
        for event in events
        for endpoint in endpoints.get(event.brand_id, ())
        if _wants(endpoint, event)
    ]
    filtered = {
        (endpoint.segment_id, event.subject_id)
        for event, endpoint in matches
        if endpoint.segment_id is not None and event.subject_id is not None
    }
    members = await repository.in_segments(filtered)
    now = utcnow()
    messages: dict[uuid.UUID, dict[str, Any]] = {}
    deliveries: list[dict[str, Any]] = []
    for event, endpoint in matches:
        if (
            endpoint.segment_id is not None
            and (endpoint.segment_id, event.subject_id) not in members
        ):
            continue
        messages.setdefault(
            event.id,
            {
                "id": event.id,
                "brand_id": event.brand_id,
                "event_type": event.type,
                "member_id": event.subject_id,
                "occurred_at": event.occurred_at,
                "payload": event.model_dump(mode="json"),
                "created_at": now,
            },
        )
        deliveries.append(
            {
                "brand_id": event.brand_id,
                "message_id": event.id,
                "endpoint_id": endpoint.id,
                "member_id": event.subject_id,
                "status": DeliveryStatus.PENDING,
                "next_attempt_at": now,
                "created_at": now,
            }
        )
    await repository.add(list(messages.values()), deliveries)
    for event in events:
        if isinstance(event, MemberErased):
            await repository.forget_member(event.brand_id, event.data.member_id, keep=event.id)


async def take_event(session: AsyncSession, event: Event) -> None:
    await take_events(session, [event])


MESSAGES_CONSUMER = ConsumerSpec(
    name="webhooks.messages",
    services=PUBLISHERS,
    handler=take_event,
    handle_many=take_events,
    inbox=INBOX,
)
