"""The consumer that takes and gives back points for experience bookings.

`experience.payment_requested` → `charge` (answered by `points.redeemed` or
`points.payment_declined`, which the community consumes); `experience.cancelled` with
`refund_points` → `refund`. The booking id is the source id, so a redelivered request charges
once and a refund never exceeds the charge.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.experiences.events import ExperienceCancelled, ExperiencePaymentRequested
from services.kernel.consumer import ConsumerSpec
from services.kernel.events import Event
from services.rewards.models import INBOX
from services.rewards.payments.service import Charge, charge, refund

EXPERIENCE_BOOKING = "experience_booking"


async def handle_payment_event(session: AsyncSession, event: Event) -> None:
    if isinstance(event, ExperiencePaymentRequested):
        data = event.data
        await charge(
            session,
            Charge(
                brand_id=event.brand_id,
                member_id=data.member_id,
                points=data.points,
                source_type=EXPERIENCE_BOOKING,
                source_id=str(data.booking_id),
                reason=data.title,
                occurred_at=event.occurred_at,
            ),
        )
    elif isinstance(event, ExperienceCancelled) and event.data.refund_points > 0:
        await refund(
            session,
            brand_id=event.brand_id,
            member_id=event.data.member_id,
            source_type=EXPERIENCE_BOOKING,
            source_id=str(event.data.booking_id),
            points=event.data.refund_points,
            reason="Booking cancelled",
            occurred_at=event.occurred_at,
        )


PAYMENTS_CONSUMER = ConsumerSpec(
    name="rewards.payments",
    services=["community"],
    handler=handle_payment_event,
    inbox=INBOX,
    event_types=frozenset({"experience.payment_requested", "experience.cancelled"}),
)
