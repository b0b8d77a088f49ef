"""Events the rewards service publishes: the contract with marketing, webhooks and the apps."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime

from services.kernel.events import Event, EventData
from services.rewards.models import Bucket, EntryKind, PerkKind


class PointsMovement(EventData):
    """A ledger entry and the balances right after it."""

    member_id: uuid.UUID
    entry_id: uuid.UUID
    kind: EntryKind
    bucket: Bucket
    points: int
    reason: str
    source_type: str
    source_id: str | None
    available: int
    pending: int


class PointsEarned(Event):
    type: Literal["points.earned"] = "points.earned"
    version: Literal[1] = 1
    data: PointsMovement


class PointsPending(Event):
    type: Literal["points.pending"] = "points.pending"
    version: Literal[1] = 1
    data: PointsMovement


class PointsRedeemed(Event):
    type: Literal["points.redeemed"] = "points.redeemed"
    version: Literal[1] = 1
    data: PointsMovement


class PointsExpired(Event):
    type: Literal["points.expired"] = "points.expired"
    version: Literal[1] = 1
    data: PointsMovement


class PointsAdjusted(Event):
    """Any other movement: staff adjustments, refunds, reversals, releases and voids."""

    type: Literal["points.adjusted"] = "points.adjusted"
    version: Literal[1] = 1
    data: PointsMovement


class ExpiringSoonData(EventData):
    member_id: uuid.UUID
    points: int
    expires_at: AwareDatetime


class PointsExpiringSoon(Event):
    type: Literal["points.expiring_soon"] = "points.expiring_soon"
    version: Literal[1] = 1
    data: ExpiringSoonData


class TierChangedData(EventData):
    member_id: uuid.UUID
    from_tier_id: uuid.UUID | None
    from_tier: str | None
    to_tier_id: uuid.UUID | None
    to_tier: str | None
    direction: Literal["up", "down"]
    reason: str
    window_spend_minor: int


class TierChanged(Event):
    type: Literal["tier.changed"] = "tier.changed"
    version: Literal[1] = 1
    data: TierChangedData


class PurchaseLineData(EventData):
    sku: str
    category: str | None
    quantity: int
    amount_minor: int


class PurchaseData(EventData):
    member_id: uuid.UUID
    purchase_id: uuid.UUID
    order_id: str
    amount_minor: int
    currency: str
    lines: list[PurchaseLineData]
    points: int
    points_bucket: Bucket
    occurred_at: AwareDatetime


class PurchaseRecorded(Event):
    type: Literal["purchase.recorded"] = "purchase.recorded"
    version: Literal[1] = 1
    data: PurchaseData


class ReturnData(EventData):
    member_id: uuid.UUID
    purchase_id: uuid.UUID
    order_id: str
    return_id: str
    amount_minor: int
    currency: str
    lines: list[PurchaseLineData]
    points_reversed: int
    occurred_at: AwareDatetime


class PurchaseReturned(Event):
    type: Literal["purchase.returned"] = "purchase.returned"
    version: Literal[1] = 1
    data: ReturnData


class RedemptionData(EventData):
    member_id: uuid.UUID
    redemption_id: uuid.UUID
    perk_id: uuid.UUID
    perk_name: str
    category: str
    points: int
    drop_id: uuid.UUID | None


class PerkRedeemed(Event):
    type: Literal["perk.redeemed"] = "perk.redeemed"
    version: Literal[1] = 1
    data: RedemptionData


class PerkRedemptionCancelled(Event):
    type: Literal["perk.redemption_cancelled"] = "perk.redemption_cancelled"
    version: Literal[1] = 1
    data: RedemptionData


class PerkCatalogData(EventData):
    """A perk as the catalog shows it, after the change: every field, not only the changed ones,
    so a consumer keeps its copy from the last event alone."""

    perk_id: uuid.UUID
    name: str
    description: str
    category: str
    tags: list[str]
    kind: PerkKind
    cost_points: int
    tier_ids: list[uuid.UUID]  # empty: every tier may redeem
    valid_from: AwareDatetime | None
    valid_until: AwareDatetime | None
    inventory_remaining: int | None  # null: unlimited
    per_member_limit: int | None
    is_birthday_gift: bool  # granted in the birthday month, never redeemed
    active: bool  # false once deactivated or deleted


class PerkUpdated(Event):
    """A perk was created, changed or deleted (then `active` is false): the catalog's contract
    with the recommender and the brand's other systems. Redemptions move `inventory_remaining`
    without this event: `perk.redeemed` and `perk.redemption_cancelled` tell those moves."""

    type: Literal["perk.updated"] = "perk.updated"
    version: Literal[1] = 1
    data: PerkCatalogData


class DropEntryData(EventData):
    member_id: uuid.UUID
    drop_id: uuid.UUID
    perk_id: uuid.UUID
    entered_at: datetime


class DropEntered(Event):
    type: Literal["drop.entered"] = "drop.entered"
    version: Literal[1] = 1
    data: DropEntryData


class DropWonData(EventData):
    member_id: uuid.UUID
    drop_id: uuid.UUID
    perk_id: uuid.UUID
    redemption_id: uuid.UUID
    position: int


class DropWon(Event):
    type: Literal["drop.won"] = "drop.won"
    version: Literal[1] = 1
    data: DropWonData


DeclineReason = Literal["insufficient_points", "member_inactive"]


class PaymentDeclinedData(EventData):
    member_id: uuid.UUID
    source_type: str  # what the points were to pay for, e.g. "experience_booking"
    source_id: str
    points: int
    reason: DeclineReason
    available: int  # the member's available points when the payment was declined


class PointsPaymentDeclined(Event):
    """Another service asked rewards to take points as payment and rewards could not."""

    type: Literal["points.payment_declined"] = "points.payment_declined"
    version: Literal[1] = 1
    data: PaymentDeclinedData


REWARDS_EVENTS: list[type[Event]] = [
    PointsEarned,
    PointsPending,
    PointsRedeemed,
    PointsExpired,
    PointsExpiringSoon,
    PointsAdjusted,
    TierChanged,
    PerkUpdated,
    PerkRedeemed,
    PerkRedemptionCancelled,
    PurchaseRecorded,
    PurchaseReturned,
    DropEntered,
    DropWon,
    PointsPaymentDeclined,
]
