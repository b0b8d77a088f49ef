"""Points as payment for another service's sale: charged once, declined with an event when the
member cannot pay, refunded at most what was charged."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.experiences.events import (
    CancelledData,
    CancelReason,
    ExperienceCancelled,
    ExperiencePaymentRequested,
    PaymentRequestedData,
)
from services.community.experiences.models import BookingStatus
from services.kernel.ids import new_id
from services.rewards.models import EntryKind, Program
from services.rewards.payments.consumer import handle_payment_event
from services.rewards.payments.service import Charge, ChargeOutcome, charge, refund
from tests.conftest import BrandFixture, MemberFixture
from tests.rewards.conftest import rewards_events
from tests.rewards.points_helpers import account_of, at, entries_of, move

WHEN = at("2024-05-01T10:00:00+00:00")


def booking(
    brand: BrandFixture, member: MemberFixture, points: int, source_id: str = "b-1"
) -> Charge:
    return Charge(brand.id, member.id, points, "experience_booking", source_id, "Masterclass", WHEN)


async def test_a_charge_takes_available_points_once(
    session: AsyncSession, brand: BrandFixture, member: MemberFixture, program: Program
) -> None:
    await move(session, program, member.id, 100, WHEN)
    assert await charge(session, booking(brand, member, 60)) == ChargeOutcome.CHARGED
    assert await charge(session, booking(brand, member, 60)) == ChargeOutcome.ALREADY_CHARGED
    assert (await account_of(session, member.id)).available == 40
    redeems = [e for e in await entries_of(session, member.id) if e.kind == EntryKind.REDEEM]
    assert [(e.points, e.source_type, e.source_id, e.reason) for e in redeems] == [
        (-60, "experience_booking", "b-1", "Masterclass")
    ]


async def test_a_charge_the_member_cannot_pay_is_declined_with_an_event_and_moves_nothing(
    session: AsyncSession, brand: BrandFixture, member: MemberFixture, program: Program
) -> None:
    await move(session, program, member.id, 50, WHEN)
    before = await rewards_events(session)
    assert await charge(session, booking(brand, member, 60)) == ChargeOutcome.DECLINED
    assert (await account_of(session, member.id)).available == 50
    assert [e.kind for e in await entries_of(session, member.id)] == [EntryKind.EARN]
    assert (await rewards_events(session))[len(before) :] == [
        (
            "points.payment_declined",
            {
                "member_id": str(member.id),
                "source_type": "experience_booking",
                "source_id": "b-1",
                "points": 60,
                "reason": "insufficient_points",
                "available": 50,
            },
        )
    ]


async def test_a_refund_gives_back_what_was_charged_once_and_nothing_when_unpaid(
    session: AsyncSession, brand: BrandFixture, member: MemberFixture, program: Program
) -> None:
    await move(session, program, member.id, 100, WHEN)
    await charge(session, booking(brand, member, 60))

    async def give_back(source_id: str = "b-1", points: int = 60) -> int:
        return await refund(
            session,
            brand_id=brand.id,
            member_id=member.id,
            source_type="experience_booking",
            source_id=source_id,
            points=points,
            reason="Booking cancelled",
            occurred_at=WHEN,
        )

    assert await give_back(points=500) == 60  # never more than was charged
    assert await give_back() == 0
    assert await give_back("never-paid") == 0
    assert (await account_of(session, member.id)).available == 100


async def test_the_consumer_charges_a_booking_once_and_refunds_what_the_cancellation_says(
    session: AsyncSession, brand: BrandFixture, member: MemberFixture, program: Program
) -> None:
    await move(session, program, member.id, 100, WHEN)
    booking_id, session_id, experience_id = new_id(), new_id(), new_id()
    requested = ExperiencePaymentRequested(
        brand_id=brand.id,
        occurred_at=WHEN,
        data=PaymentRequestedData(
            booking_id=booking_id,
            member_id=member.id,
            session_id=session_id,
            experience_id=experience_id,
            points=40,
            title="Fragrance masterclass",
        ),
    )
    await handle_payment_event(session, requested)
    await handle_payment_event(session, requested)
    assert (await account_of(session, member.id)).available == 60
    redeemed = [e for e in await rewards_events(session) if e[0] == "points.redeemed"]
    assert [(d["points"], d["source_type"], d["source_id"]) for _, d in redeemed] == [
        (-40, "experience_booking", str(booking_id))
    ]

    def cancelled(refund_points: int) -> ExperienceCancelled:
        return ExperienceCancelled(
            brand_id=brand.id,
            occurred_at=WHEN,
            data=CancelledData(
                booking_id=booking_id,
                member_id=member.id,
                session_id=session_id,
                experience_id=experience_id,
                seats=2,
                previous_status=BookingStatus.CONFIRMED,
                reason=CancelReason.MEMBER,
                refund_points=refund_points,
            ),
        )

    await handle_payment_event(session, cancelled(0))  # past the cut-off: nothing back
    assert (await account_of(session, member.id)).available == 60
    await handle_payment_event(session, cancelled(40))
    await handle_payment_event(session, cancelled(40))
    assert (await account_of(session, member.id)).available == 100
