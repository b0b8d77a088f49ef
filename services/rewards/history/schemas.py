"""What the bulk history path takes: purchases already validated by their producer, in any
order (the loader sorts each member's purchases by time), and the redemptions and returns that
happened among them; and what a load reports."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class HistoricLine:
    sku: str
    category: str | None
    quantity: int
    amount_minor: int


@dataclass(frozen=True, slots=True)
class HistoricPurchase:
    member_id: uuid.UUID  # rewards' member id (the account must exist)
    order_id: str  # unique per brand, as for the API
    occurred_at: datetime  # timezone-aware
    currency: str  # the program's currency
    amount_minor: int
    lines: tuple[HistoricLine, ...]


@dataclass(frozen=True, slots=True)
class HistoricRedemption:
    """A member asking to redeem a perk at `occurred_at` (replayed as the member's own
    `POST /rewards/v1/me/redemptions` then: done, or refused as the API would refuse it)."""

    member_id: uuid.UUID
    perk_id: uuid.UUID
    occurred_at: datetime  # timezone-aware
    key: str  # names the redemption in this load (unique in it): refusals are reported by it


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoricReturn:
    """A return of (part of) a purchase of the same load, as `POST /rewards/v1/returns` takes
    it: by `lines`, by `amount_minor`, or both (adding up)."""

    order_id: str
    return_id: str  # unique per brand, as for the API
    occurred_at: datetime  # timezone-aware
    amount_minor: int | None = None
    lines: tuple[HistoricLine, ...] = ()


@dataclass(frozen=True, slots=True)
class RefusedRedemption:
    """A redemption the online path would have refused at its time: nothing was written."""

    key: str
    member_id: uuid.UUID
    perk_id: uuid.UUID
    occurred_at: datetime
    reason: str  # the API's error code: InsufficientPoints, TierNotEligible, ...
    detail: str  # the API's message


@dataclass(frozen=True, slots=True)
class HistoryReport:
    purchases: int
    ledger_entries: int
    points_earned: int
    tier_changes: int
    events: int
    members: int = 0
    lots: int = 0
    points_expired: int = 0
    redemptions: int = 0  # done (refused ones are in `refused`)
    points_redeemed: int = 0
    returns: int = 0
    points_reversed: int = 0
    refused: tuple[RefusedRedemption, ...] = ()

    def refused_by_reason(self) -> dict[str, int]:
        return dict(Counter(refusal.reason for refusal in self.refused))
