"""Purchases and returns: points follow what members buy and bring back.

**Purchases.** The order id is the idempotency key. The purchase row is inserted with
`INSERT ... ON CONFLICT (brand_id, order_id) DO NOTHING` before any point moves: of two
concurrent requests with one order id, the second waits on the first's row and, once it commits,
finds the order taken. A replay (same order id, same member, amount, currency, lines and time)
answers **200** with the first answer (rebuilt from the stored row and breakdown, identical) and
the header `Idempotent-Replayed: true`; the first answer is a 201. The same order id with a
different body is refused with 409 `OrderIdReused`. Each member's purchases run one at a time
(their account row is locked first), so the tier multiplier and the window spend of one purchase
include every earlier one.

Points come from `earning.service.breakdown_for()`, the computation the simulator shows. They go
to the pending bucket while the return window (`program.pending_days` after `occurred_at`) is
open, else straight to available; `release_due()` (a job every 5 minutes) releases them later.

**Returns.** The return id is the idempotency key (a replay answers 200 with the first answer; a
different body under the same id is 409 `ReturnIdReused`). A return reverses points in
proportion to what it brings back, cumulatively:

    reversed so far = floor(points * returned value / earned value)

where the earned value is the purchase's exact points before rounding and the returned value is,
for a return with lines, each returned line's share of its sku's exact points (a 3x sku returned
takes back 3x), and for a return by amount only, its share of the purchase's amount at the
purchase's average rate; bonus points are returned in proportion to the amount. The return that
brings the returned amount to the whole purchase reverses **exactly** everything not yet
reversed. So partial returns round in the member's favour, never drift (each return reverses
`reversed so far` minus what earlier returns did), and returning everything reverses exactly what
was earned. Points come from the pending bucket while they are pending, else from available with
the balance allowed to go negative (the only way it can), which later earnings pay back first.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from math import floor
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.kernel.ids import new_id
from services.rewards.currencies import format_minor
from services.rewards.earning import service as earning
from services.rewards.earning.reference import reference_at
from services.rewards.earning.schemas import Breakdown
from services.rewards.errors import (
    LinesDoNotAddUp,
    MemberNotFound,
    OrderIdReused,
    PurchaseNotFound,
    ReturnBeforePurchase,
    ReturnExceedsPurchase,
    ReturnIdReused,
    ReturnLineNotInPurchase,
)
from services.rewards.events import (
    PurchaseData,
    PurchaseRecorded,
    PurchaseReturned,
    ReturnData,
)
from services.rewards.ledger import service as ledger
from services.rewards.ledger.members import MemberSource
from services.rewards.ledger.service import Movement
from services.rewards.models import OUTBOX, Bucket, EntryKind, Purchase, Return
from services.rewards.purchases.repository import (
    SOURCE_PURCHASE,
    SOURCE_RETURN,
    PurchaseRepository,
)
from services.rewards.purchases.schemas import (
    LineRead,
    PurchaseCreate,
    PurchaseRead,
    PurchaseResult,
    ReturnCreate,
    ReturnResult,
    ReturnSummary,
)
from services.rewards.tiers import service as tiers

RELEASE_BATCH = 500


# --- Purchases ------------------------------------------------------------------------------


def _lines(values: Sequence[dict[str, Any]]) -> list[LineRead]:
    return [LineRead.model_validate(line) for line in values]


def _result(purchase: Purchase) -> PurchaseResult:
    return PurchaseResult(
        purchase_id=purchase.id,
        order_id=purchase.order_id,
        member_id=purchase.member_id,
        amount_minor=purchase.amount_minor,
        currency=purchase.currency,
        lines=_lines(purchase.lines),
        occurred_at=purchase.occurred_at,
        points=purchase.points,
        # Recorded pending exactly when it had a pending_until (the release flips the bucket).
        points_bucket=Bucket.PENDING if purchase.pending_until is not None else Bucket.AVAILABLE,
        pending_until=purchase.pending_until,
        breakdown=Breakdown.model_validate(purchase.breakdown),
    )


def _replay(existing: Purchase, member_id: uuid.UUID, payload: PurchaseCreate) -> PurchaseResult:
    differences = [
        name
        for name, same in (
            ("member", existing.member_id == member_id),
            ("amount_minor", existing.amount_minor == payload.amount_minor),
            ("currency", existing.currency == payload.currency),
            ("lines", existing.lines == [line.model_dump() for line in payload.lines]),
            ("occurred_at", existing.occurred_at == payload.occurred_at),
        )
        if not same
    ]
    if differences:
        raise OrderIdReused(
            f"Order {payload.order_id!r} was already recorded with another "
            f"{', '.join(differences)}: an order id names one purchase. Send a new order id, or "
            "the same body to get the first answer again."
        )
    return _result(existing)


def recorded_event(
    brand_id: uuid.UUID,
    *,
    purchase_id: uuid.UUID,
    member_id: uuid.UUID,
    order_id: str,
    amount_minor: int,
    currency: str,
    lines: Sequence[dict[str, Any]],
    points: int,
    bucket: Bucket,
    occurred_at: datetime,
) -> PurchaseRecorded:
    """`purchase.recorded` for a purchase row (`lines` as stored); the bulk history loader
    writes the same event."""
    return PurchaseRecorded(
        brand_id=brand_id,
        subject_id=member_id,
        occurred_at=occurred_at,
        data=PurchaseData(
            member_id=member_id,
            purchase_id=purchase_id,
            order_id=order_id,
            amount_minor=amount_minor,
            currency=currency,
            lines=lines,  # validated into PurchaseLineData in one pass, not a call a line
            points=points,
            points_bucket=bucket,
            occurred_at=occurred_at,
        ),
    )


def release_reason(order_id: str, points: int) -> str:
    """The reason of the pair of entries that release a purchase's pending points."""
    return f"Order {order_id}: the return window closed; {points} pts are now available"


async def record_purchase(
    session: AsyncSession,
    brand_id: uuid.UUID,
    payload: PurchaseCreate,
    members: MemberSource | None,
) -> tuple[PurchaseResult, bool]:
    """Records a purchase and its points; returns the answer and whether it was new. A member
    rewards has not heard of yet is asked of `members` (see `ledger.members`)."""
    repository = PurchaseRepository(session)
    # Locked first (and the reference data's version read with it, in one statement); the
    # checks below still answer in their usual order: program, currency, lines, member.
    account, version = await repository.lock_account(
        brand_id, member_id=payload.member_id, external_id=payload.external_id
    )
    if (
        account is None
        and members is not None
        and await members.open_account(
            session, brand_id, member_id=payload.member_id, external_id=payload.external_id
        )
    ):
        account, version = await repository.lock_account(
            brand_id, member_id=payload.member_id, external_id=payload.external_id
        )
    reference = await reference_at(session, brand_id, version)
    program = reference.program
    rates = earning.rates_for(program, payload.currency)
    earning.check_lines(payload.amount_minor, payload.lines)
    if account is None or account.member_status == "erased":
        reference_to = (
            payload.member_id
            if payload.member_id is not None
            else f"external id {payload.external_id!r}"
        )
        raise MemberNotFound(f"No member {reference_to} in this brand.")
    ladder = reference.ladder
    breakdown = earning.breakdown_for(
        reference,
        rates,
        order_id=payload.order_id,
        amount_minor=payload.amount_minor,
        lines=payload.lines,
        occurred_at=payload.occurred_at,
        tier=ladder.by_id(account.tier_id),
        member=True,
    )
    now = utcnow()
    pending_until = (
        earning.pending_until(program, payload.occurred_at, now) if breakdown.points > 0 else None
    )
    bucket = Bucket.PENDING if pending_until is not None else Bucket.AVAILABLE
    purchase = Purchase(
        id=new_id(),
        brand_id=brand_id,
        member_id=account.member_id,
        order_id=payload.order_id,
        amount_minor=payload.amount_minor,
        currency=payload.currency,
        lines=[line.model_dump() for line in payload.lines],
        points=breakdown.points,
        points_bucket=bucket,
        pending_until=pending_until,
        returned_minor=0,
        returned_points=0,
        breakdown=breakdown.model_dump(mode="json"),
        occurred_at=payload.occurred_at,
        created_at=now,
    )
    values = {column.key: getattr(purchase, column.key) for column in Purchase.__table__.columns}
    if not await repository.insert_purchase(values):
        # The order id is taken (by an earlier request, or a concurrent one that committed
        # first): a replay if the body is the same.
        existing = await repository.by_order(brand_id, payload.order_id)
        assert existing is not None
        return _replay(existing, account.member_id, payload), False

    # The points event and the purchase's own are written together, in one INSERT.
    async with OUTBOX.batch(session):
        if breakdown.points > 0:
            await ledger.post(
                session,
                brand_id,
                program,
                Movement(
                    member_id=account.member_id,
                    kind=EntryKind.EARN,
                    bucket=bucket,
                    points=breakdown.points,
                    reason=breakdown.reason,
                    source_type=SOURCE_PURCHASE,
                    source_id=payload.order_id,
                    occurred_at=payload.occurred_at,
                ),
                locked=account.balances,
            )
        result = _result(purchase)
        await OUTBOX.add(
            session,
            recorded_event(
                brand_id,
                purchase_id=purchase.id,
                member_id=account.member_id,
                order_id=purchase.order_id,
                amount_minor=purchase.amount_minor,
                currency=purchase.currency,
                lines=purchase.lines,
                points=purchase.points,
                bucket=bucket,
                occurred_at=purchase.occurred_at,
            ),
        )
    await tiers.upgrade_after_purchase(
        session,
        brand_id,
        program,
        ladder,
        member_id=account.member_id,
        current_tier_id=account.tier_id,
        order_id=payload.order_id,
        now=now,
    )
    return result, True


async def get_purchase(session: AsyncSession, brand_id: uuid.UUID, order_id: str) -> PurchaseRead:
    repository = PurchaseRepository(session)
    purchase = await repository.by_order(brand_id, order_id)
    if purchase is None:
        raise PurchaseNotFound(f"No purchase with order id {order_id!r} in this brand.")
    returns = await repository.returns_of(purchase.id)
    return PurchaseRead(
        **_result(purchase).model_dump(),
        returned_minor=purchase.returned_minor,
        returned_points=purchase.returned_points,
        points_now_in=purchase.points_bucket,
        returns=[
            ReturnSummary(
                return_id=r.return_id,
                amount_minor=r.amount_minor,
                points_reversed=r.points_reversed,
                occurred_at=r.occurred_at,
            )
            for r in returns
        ],
    )


async def release_due(
    session: AsyncSession, now: datetime | None = None, batch: int = RELEASE_BATCH
) -> int:
    """The job: pending purchase points whose return window has closed become available.

    Only what returns left is released. Each purchase flips to `available` in the same
    transaction as its release, so a second run (or a concurrent one: rows are claimed with
    SKIP LOCKED) never releases it twice. Returns how many purchases were released.
    """
    now = now or utcnow()
    repository = PurchaseRepository(session)
    released = 0
    while True:
        due = await repository.due_for_release(now, batch)
        for purchase in due:
            program = await ledger.program_for(session, purchase.brand_id)
            remaining = purchase.points - purchase.returned_points
            if remaining > 0:
                await ledger.release_pending(
                    session,
                    purchase.brand_id,
                    program,
                    member_id=purchase.member_id,
                    points=remaining,
                    reason=release_reason(purchase.order_id, remaining),
                    source_type=SOURCE_PURCHASE,
                    source_id=purchase.order_id,
                    occurred_at=now,
                )
            await repository.mark_released(purchase.id)
        released += len(due)
        if len(due) < batch:
            return released


# --- Returns --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Returned:
    """One return of a purchase, as `reversed_so_far` counts it."""

    amount_minor: int
    lines: Sequence[dict[str, Any]]


# (sku, quantity, amount_minor) of a bought or returned line, for `check_returnable`.
LineAmount = tuple[str, int, int]


def reversed_so_far(
    amount_minor: int, points: int, breakdown: Breakdown, returns: Sequence[Returned]
) -> int:
    """How many of a purchase's points (of `amount_minor`, earning `points` as `breakdown`
    says) the returns together take back (see the module doc)."""
    returned = sum(r.amount_minor for r in returns)
    if returned >= amount_minor:
        return points
    earned = Fraction(breakdown.exact_points)
    if points == 0 or earned == 0:
        return 0
    line_points = sum((Fraction(line.points) for line in breakdown.lines), Fraction(0))
    sku_points: dict[str | None, Fraction] = {}
    sku_amount: dict[str | None, int] = {}
    for earned_line in breakdown.lines:
        sku = earned_line.sku
        sku_points[sku] = sku_points.get(sku, Fraction(0)) + Fraction(earned_line.points)
        sku_amount[sku] = sku_amount.get(sku, 0) + earned_line.amount_minor
    value = Fraction(0)
    for r in returns:
        share = Fraction(r.amount_minor, amount_minor)
        if r.lines:
            for back in r.lines:
                value += (
                    Fraction(back["amount_minor"], sku_amount[back["sku"]])
                    * sku_points[back["sku"]]
                )
        else:
            value += share * line_points
        value += share * breakdown.bonus_points
    return min(points, floor(points * value / earned))


def _return_result(row: Return, purchase: Purchase, reversed_from: Bucket | None) -> ReturnResult:
    return ReturnResult(
        return_id=row.return_id,
        order_id=purchase.order_id,
        purchase_id=purchase.id,
        member_id=purchase.member_id,
        amount_minor=row.amount_minor,
        currency=purchase.currency,
        lines=_lines(row.lines),
        occurred_at=row.occurred_at,
        points_reversed=row.points_reversed,
        reversed_from=reversed_from,
    )


def return_amount(amount_minor: int | None, lines_total: int, has_lines: bool) -> int:
    """What a return brings back: its amount, or its lines' total (they must agree if both)."""
    if amount_minor is None:
        return lines_total
    if has_lines and lines_total != amount_minor:
        raise LinesDoNotAddUp(
            f"The returned lines add up to {lines_total}, not amount_minor {amount_minor}:"
            " make them agree, or send only one of the two."
        )
    return amount_minor


def _amount_of(payload: ReturnCreate) -> int:
    lines_total = sum(line.amount_minor for line in payload.lines)
    return return_amount(payload.amount_minor, lines_total, bool(payload.lines))


async def _return_replay(
    session: AsyncSession, brand_id: uuid.UUID, existing: Return, payload: ReturnCreate
) -> ReturnResult:
    repository = PurchaseRepository(session)
    purchase = await repository.purchase_by_id(existing.purchase_id)
    assert purchase is not None
    lines_total = sum(line.amount_minor for line in payload.lines)
    amount = payload.amount_minor if payload.amount_minor is not None else lines_total
    differences = [
        name
        for name, same in (
            ("order_id", purchase.order_id == payload.order_id),
            ("amount_minor", existing.amount_minor == amount),
            ("lines", existing.lines == [line.model_dump() for line in payload.lines]),
            ("occurred_at", existing.occurred_at == payload.occurred_at),
        )
        if not same
    ]
    if differences:
        raise ReturnIdReused(
            f"Return {payload.return_id!r} was already recorded with another "
            f"{', '.join(differences)}: a return id names one return. Send a new return id, or "
            "the same body to get the first answer again."
        )
    bucket = await repository.reversal_bucket(brand_id, existing.return_id)
    return _return_result(existing, purchase, bucket)


def check_returnable(
    *,
    order_id: str,
    currency: str,
    bought_at: datetime,
    amount_minor: int,
    returned_minor: int,
    bought: Sequence[LineAmount],
    earlier: Sequence[LineAmount],
    occurred_at: datetime,
    amount: int,
    lines: Sequence[LineAmount],
) -> None:
    """Whether a return of `amount` (with `lines`, if by line) at `occurred_at` fits what is
    left of its purchase (of `amount_minor`, `returned_minor` already returned, lines `bought`,
    `earlier` returns' lines). Raises the API's refusal, in the API's order."""
    if occurred_at < bought_at:
        raise ReturnBeforePurchase(
            f"The return is dated {occurred_at.isoformat()}, before its purchase "
            f"({bought_at.isoformat()}): send when the goods came back."
        )
    remaining = amount_minor - returned_minor
    if amount > remaining:
        raise ReturnExceedsPurchase(
            f"Order {order_id} has {format_minor(remaining, currency)} left to "
            f"return (of {format_minor(amount_minor, currency)}); this return "
            f"is {format_minor(amount, currency)}."
        )
    if not lines:
        return
    bought_amount: dict[str, int] = {}
    bought_quantity: dict[str, int] = {}
    for sku, quantity, line_amount in bought:
        bought_amount[sku] = bought_amount.get(sku, 0) + line_amount
        bought_quantity[sku] = bought_quantity.get(sku, 0) + quantity
    back_amount: dict[str, int] = {}
    back_quantity: dict[str, int] = {}
    for sku, quantity, line_amount in (*earlier, *lines):
        back_amount[sku] = back_amount.get(sku, 0) + line_amount
        back_quantity[sku] = back_quantity.get(sku, 0) + quantity
    for sku in back_amount:
        if sku not in bought_amount:
            skus = ", ".join(sorted(bought_amount)) or "none: return it by amount_minor"
            raise ReturnLineNotInPurchase(
                f"Order {order_id} has no sku {sku!r} (its skus: {skus})."
            )
    for sku, back in back_amount.items():
        if back > bought_amount[sku] or back_quantity[sku] > bought_quantity[sku]:
            raise ReturnExceedsPurchase(
                f"Sku {sku!r} of order {order_id} was bought {bought_quantity[sku]} "
                f"time(s) for {format_minor(bought_amount[sku], currency)}; with this "
                f"return {back_quantity[sku]} for "
                f"{format_minor(back, currency)} would be returned."
            )


def _line_amounts(lines: Sequence[dict[str, Any]]) -> list[LineAmount]:
    return [(line["sku"], line["quantity"], line["amount_minor"]) for line in lines]


def new_return(
    brand_id: uuid.UUID,
    *,
    purchase_id: uuid.UUID,
    return_id: str,
    amount_minor: int,
    lines: list[dict[str, Any]],
    points_reversed: int,
    occurred_at: datetime,
    created_at: datetime,
) -> Return:
    """A return's row (the bulk history loader writes the same)."""
    return Return(
        id=new_id(),
        brand_id=brand_id,
        purchase_id=purchase_id,
        return_id=return_id,
        amount_minor=amount_minor,
        lines=lines,
        points_reversed=points_reversed,
        occurred_at=occurred_at,
        created_at=created_at,
    )


def reversal_movement(
    *,
    member_id: uuid.UUID,
    bucket: Bucket,
    points: int,
    order_id: str,
    return_id: str,
    currency: str,
    amount: int,
    returned_total: int,
    purchase_amount: int,
    occurred_at: datetime,
) -> Movement:
    """The ledger line of a return that takes back `points` from `bucket` (posted with the
    balance allowed below zero: the points may be spent already)."""
    return Movement(
        member_id=member_id,
        kind=EntryKind.REVERSE,
        bucket=bucket,
        points=-points,
        reason=(
            f"Return {return_id} of order {order_id}: "
            f"{format_minor(amount, currency)} back "
            f"({format_minor(returned_total, currency)} of "
            f"{format_minor(purchase_amount, currency)} returned), "
            f"{points} pts reversed"
        ),
        source_type=SOURCE_RETURN,
        source_id=return_id,
        occurred_at=occurred_at,
    )


def returned_event(
    brand_id: uuid.UUID,
    *,
    member_id: uuid.UUID,
    purchase_id: uuid.UUID,
    order_id: str,
    return_id: str,
    amount_minor: int,
    currency: str,
    lines: Sequence[dict[str, Any]],
    points_reversed: int,
    occurred_at: datetime,
) -> PurchaseReturned:
    """`purchase.returned` for a return row (`lines` as stored)."""
    return PurchaseReturned(
        brand_id=brand_id,
        subject_id=member_id,
        occurred_at=occurred_at,
        data=ReturnData(
            member_id=member_id,
            purchase_id=purchase_id,
            order_id=order_id,
            return_id=return_id,
            amount_minor=amount_minor,
            currency=currency,
            lines=lines,
            points_reversed=points_reversed,
            occurred_at=occurred_at,
        ),
    )


async def record_return(
    session: AsyncSession, brand_id: uuid.UUID, payload: ReturnCreate
) -> tuple[ReturnResult, bool]:
    """Records a return and reverses its share of the purchase's points."""
    program = await ledger.program_for(session, brand_id)
    repository = PurchaseRepository(session)
    # Locked: returns of one purchase, and its release, run one at a time.
    purchase = await repository.by_order(brand_id, payload.order_id, for_update=True)
    if purchase is None:
        raise PurchaseNotFound(
            f"No purchase with order id {payload.order_id!r} in this brand: check the order id "
            "(a return needs its purchase recorded first)."
        )
    existing = await repository.return_by_id(brand_id, payload.return_id)
    if existing is not None:
        return await _return_replay(session, brand_id, existing, payload), False

    amount = _amount_of(payload)
    previous = await repository.returns_of(purchase.id)
    check_returnable(
        order_id=purchase.order_id,
        currency=purchase.currency,
        bought_at=purchase.occurred_at,
        amount_minor=purchase.amount_minor,
        returned_minor=purchase.returned_minor,
        bought=_line_amounts(purchase.lines),
        earlier=[line for earlier in previous for line in _line_amounts(earlier.lines)],
        occurred_at=payload.occurred_at,
        amount=amount,
        lines=[(line.sku, line.quantity, line.amount_minor) for line in payload.lines],
    )
    lines = [line.model_dump() for line in payload.lines]
    breakdown = Breakdown.model_validate(purchase.breakdown)
    returns = [Returned(r.amount_minor, r.lines) for r in previous]
    after = reversed_so_far(
        purchase.amount_minor, purchase.points, breakdown, [*returns, Returned(amount, lines)]
    )
    # Earlier returns reversed reversed_so_far(earlier) == returned_points; this one, the rest.
    points = max(0, after - purchase.returned_points)
    row = new_return(
        brand_id,
        purchase_id=purchase.id,
        return_id=payload.return_id,
        amount_minor=amount,
        lines=lines,
        points_reversed=points,
        occurred_at=payload.occurred_at,
        created_at=utcnow(),
    )
    values = {column.key: getattr(row, column.key) for column in Return.__table__.columns}
    if not await repository.insert_return(values):
        # A concurrent request with this return id committed first (for another order).
        existing = await repository.return_by_id(brand_id, payload.return_id)
        assert existing is not None
        return await _return_replay(session, brand_id, existing, payload), False

    reversed_from: Bucket | None = None
    if points > 0:
        reversed_from = purchase.points_bucket
        await ledger.post(
            session,
            brand_id,
            program,
            reversal_movement(
                member_id=purchase.member_id,
                bucket=reversed_from,
                points=points,
                order_id=purchase.order_id,
                return_id=payload.return_id,
                currency=purchase.currency,
                amount=amount,
                returned_total=purchase.returned_minor + amount,
                purchase_amount=purchase.amount_minor,
                occurred_at=payload.occurred_at,
            ),
            # Only a return may take the balance below zero: the points may be spent already.
            allow_negative=True,
        )
    await repository.add_returned(purchase.id, amount, points)
    await OUTBOX.add(
        session,
        returned_event(
            brand_id,
            member_id=purchase.member_id,
            purchase_id=purchase.id,
            order_id=purchase.order_id,
            return_id=payload.return_id,
            amount_minor=amount,
            currency=purchase.currency,
            lines=lines,
            points_reversed=points,
            occurred_at=payload.occurred_at,
        ),
    )
    return _return_result(row, purchase, reversed_from), True
