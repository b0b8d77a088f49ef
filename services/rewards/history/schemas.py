"""What the bulk history path takes: purchases already validated by their producer, in any
order (the loader sorts each member's purchases by time)."""

from __future__ import annotations

import uuid
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
class HistoryReport:
    purchases: int
    ledger_entries: int
    points_earned: int
    tier_changes: int
    events: int
    members: int = 0
    lots: int = 0
    points_expired: int = 0
