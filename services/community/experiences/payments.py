"""The community's consumer of rewards' answers to `experience.payment_requested`.

Rewards answers each request with one of two events, both naming the booking as
`source_type` "experience_booking" and `source_id` its id:

- `points.redeemed`: the points were taken (its `points` is the signed ledger amount, negative
  for a debit); the booking is confirmed, or refunded if it ended meanwhile;
- `points.payment_declined`: the member could not pay; the booking ends and frees its seats.

Events are matched by their type and payload fields rather than by class, so this consumer needs
nothing from the rewards package, and `points.redeemed` for anything else (perks, say) is
ignored. The consumer runtime records each event id in the community inbox in the same
transaction, so a redelivered answer has no second effect.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.experiences import bookings
from services.community.models import INBOX
from services.kernel.consumer import ConsumerSpec
from services.kernel.events import Event

SOURCE_TYPE = "experience_booking"
POINTS_REDEEMED = "points.redeemed"
PAYMENT_DECLINED = "points.payment_declined"


def _booking_id(event: Event) -> uuid.UUID | None:
    """The booking an answer is about, or None if it is not about an experience booking."""
    if getattr(event.data, "source_type", None) != SOURCE_TYPE:
        return None
    try:
        return uuid.UUID(str(getattr(event.data, "source_id", "")))
    except ValueError:
        return None


async def apply_payment_answer(session: AsyncSession, event: Event) -> None:
    booking_id = _booking_id(event)
    if booking_id is None:
        return
    if event.type == POINTS_REDEEMED:
        points = abs(int(getattr(event.data, "points", 0)))
        await bookings.payment_taken(session, event.brand_id, booking_id, points)
    elif event.type == PAYMENT_DECLINED:
        await bookings.payment_declined(session, event.brand_id, booking_id)


EXPERIENCE_PAYMENTS = ConsumerSpec(
    name="community.experience-payments",
    services=["rewards"],
    handler=apply_payment_answer,
    inbox=INBOX,
    event_types=frozenset({POINTS_REDEEMED, PAYMENT_DECLINED}),
)
