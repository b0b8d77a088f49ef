"""The ledger core: every movement through `post()`, lots spent oldest first, balances cached
exactly as the entries sum, negative balances only where allowed and paid back first."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.rewards.errors import InsufficientPoints, MemberNotFound
from services.rewards.ledger import service as ledger
from services.rewards.ledger.schemas import ProgramSettings
from services.rewards.models import (
    Account,
    Bucket,
    EntryKind,
    ExpiryPolicy,
    LedgerEntry,
    Lot,
    Program,
)
from tests.conftest import BrandFixture, MemberFixture
from tests.rewards.conftest import MakeMember, rewards_events

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def movement(
    member: MemberFixture,
    points: int,
    kind: EntryKind = EntryKind.EARN,
    bucket: Bucket = Bucket.AVAILABLE,
    at: datetime = T0,
) -> ledger.Movement:
    return ledger.Movement(
        member_id=member.id,
        kind=kind,
        bucket=bucket,
        points=points,
        reason=f"{kind.value} {points}",
        source_type="test",
        source_id=None,
        occurred_at=at,
    )


async def lots(session: AsyncSession, member: MemberFixture) -> list[tuple[int, int]]:
    rows = await session.execute(
        select(Lot.points, Lot.remaining).where(Lot.member_id == member.id).order_by(Lot.earned_at)
    )
    return [(r.points, r.remaining) for r in rows]


async def account(session: AsyncSession, member: MemberFixture) -> Account:
    found = await session.get(Account, member.id, populate_existing=True)
    assert found is not None
    return found


async def test_earning_and_spending_keep_lots_oldest_first(
    session: AsyncSession, program: Program, member: MemberFixture
) -> None:
    await ledger.post(session, member.brand_id, program, movement(member, 100, at=T0))
    await ledger.post(session, member.brand_id, program, movement(member, 50, at=T0 + timedelta(1)))
    posted = await ledger.post(
        session, member.brand_id, program, movement(member, -120, EntryKind.REDEEM)
    )
    assert (posted.balances.available, posted.balances.pending) == (30, 0)
    assert await lots(session, member) == [(100, 0), (50, 30)]
    state = await account(session, member)
    assert (state.available, state.lifetime_earned) == (30, 150)
    # The latest activity, not the last one posted: a late event never moves it backwards.
    assert state.last_activity_at == T0 + timedelta(1)
    assert await ledger.ledger_matches(session, member.id)


async def test_a_redemption_never_overdraws_and_writes_nothing_when_refused(
    session: AsyncSession, program: Program, member: MemberFixture
) -> None:
    await ledger.post(session, member.brand_id, program, movement(member, 40))
    events_before = await rewards_events(session)
    with pytest.raises(InsufficientPoints):
        await ledger.post(
            session, member.brand_id, program, movement(member, -41, EntryKind.REDEEM)
        )
    assert (await account(session, member)).available == 40
    assert await session.scalar(select(func.count()).select_from(LedgerEntry)) == 1
    assert await lots(session, member) == [(40, 40)]
    assert await rewards_events(session) == events_before


async def test_only_an_allowed_reversal_goes_negative_and_new_points_pay_it_back_first(
    session: AsyncSession, program: Program, member: MemberFixture
) -> None:
    await ledger.post(session, member.brand_id, program, movement(member, 100))
    await ledger.post(session, member.brand_id, program, movement(member, -100, EntryKind.REDEEM))
    reversed_ = await ledger.post(
        session,
        member.brand_id,
        program,
        movement(member, -60, EntryKind.REVERSE),
        allow_negative=True,
    )
    assert reversed_.balances.available == -60
    assert await lots(session, member) == [(100, 0)]
    # 50 points all go to paying back the deficit: no spendable lot.
    await ledger.post(session, member.brand_id, program, movement(member, 50, at=T0 + timedelta(1)))
    assert (await account(session, member)).available == -10
    assert await lots(session, member) == [(100, 0)]
    # The next 25: 10 pay back the rest, 15 become a lot.
    await ledger.post(session, member.brand_id, program, movement(member, 25, at=T0 + timedelta(2)))
    assert (await account(session, member)).available == 15
    assert await lots(session, member) == [(100, 0), (15, 15)]
    with pytest.raises(InsufficientPoints):
        await ledger.post(
            session, member.brand_id, program, movement(member, -16, EntryKind.REDEEM)
        )
    assert await ledger.ledger_matches(session, member.id)


async def test_pending_points_are_released_as_a_pair_of_entries(
    session: AsyncSession, program: Program, member: MemberFixture
) -> None:
    await ledger.post(
        session, member.brand_id, program, movement(member, 70, bucket=Bucket.PENDING)
    )
    state = await account(session, member)
    assert (state.available, state.pending, state.lifetime_earned) == (0, 70, 0)
    assert await lots(session, member) == []
    released = await ledger.release_pending(
        session,
        member.brand_id,
        program,
        member_id=member.id,
        points=70,
        reason="Return window closed",
        source_type="purchase",
        source_id="A-1",
        occurred_at=T0 + timedelta(days=30),
    )
    assert (released.balances.available, released.balances.pending) == (70, 0)
    assert (await account(session, member)).lifetime_earned == 70
    assert await lots(session, member) == [(70, 70)]
    kinds = (
        await session.execute(
            select(LedgerEntry.kind, LedgerEntry.bucket, LedgerEntry.points).order_by(
                LedgerEntry.id
            )
        )
    ).all()
    assert kinds == [
        (EntryKind.EARN, Bucket.PENDING, 70),
        (EntryKind.RELEASE, Bucket.PENDING, -70),
        (EntryKind.RELEASE, Bucket.AVAILABLE, 70),
    ]
    with pytest.raises(InsufficientPoints):  # pending never goes negative
        await ledger.post(
            session, member.brand_id, program, movement(member, -1, EntryKind.VOID, Bucket.PENDING)
        )
    assert await ledger.ledger_matches(session, member.id)


async def test_every_movement_emits_its_event_with_the_balances_after_it(
    session: AsyncSession, program: Program, member: MemberFixture
) -> None:
    await ledger.post(
        session, member.brand_id, program, movement(member, 10, bucket=Bucket.PENDING)
    )
    await ledger.post(session, member.brand_id, program, movement(member, 100))
    await ledger.post(session, member.brand_id, program, movement(member, -30, EntryKind.REDEEM))
    await ledger.post(session, member.brand_id, program, movement(member, -5, EntryKind.EXPIRE))
    await ledger.post(session, member.brand_id, program, movement(member, 7, EntryKind.ADJUST))
    events = await rewards_events(session)
    assert [(t, d["points"], d["available"], d["pending"]) for t, d in events] == [
        ("points.pending", 10, 0, 10),
        ("points.earned", 100, 100, 10),
        ("points.redeemed", -30, 70, 10),
        ("points.expired", -5, 65, 10),
        ("points.adjusted", 7, 72, 10),
    ]
    assert {d["member_id"] for _, d in events} == {str(member.id)}


async def test_lots_carry_their_expiry_under_the_days_after_earning_policy(
    session: AsyncSession, brand: BrandFixture, make_member: MakeMember
) -> None:
    program = await ledger.configure_program(
        session,
        brand.id,
        ProgramSettings(
            currency="EUR",
            points_per_unit=1,
            expiry_policy=ExpiryPolicy.DAYS_AFTER_EARNING,
            expiry_days=365,
        ),
    )
    member = await make_member("crm-9")
    await ledger.post(session, brand.id, program, movement(member, 10, at=T0))
    expires = await session.scalar(select(Lot.expires_at).where(Lot.member_id == member.id))
    assert expires == T0 + timedelta(days=365)


async def test_accounts_are_found_by_id_or_external_id_within_their_brand_only(
    session: AsyncSession,
    program: Program,
    member: MemberFixture,
    other_brand: BrandFixture,
) -> None:
    by_external = await ledger.account_for(
        session, member.brand_id, external_id="crm-1", members=None
    )
    assert by_external.member_id == member.id
    assert (
        await ledger.account_for(session, member.brand_id, member_id=member.id, members=None)
    ) is by_external
    for lookup in (
        {"member_id": member.id},
        {"external_id": "crm-1"},
    ):
        with pytest.raises(MemberNotFound):
            await ledger.account_for(session, other_brand.id, **lookup, members=None)  # type: ignore[arg-type]
    with pytest.raises(MemberNotFound):
        await ledger.account_for(session, member.brand_id, member_id=uuid.uuid4(), members=None)


async def test_zero_point_movements_are_a_programming_error(
    session: AsyncSession, program: Program, member: MemberFixture
) -> None:
    with pytest.raises(ValueError, match="non-zero"):
        await ledger.post(session, member.brand_id, program, movement(member, 0))
