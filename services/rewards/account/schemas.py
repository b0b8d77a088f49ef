"""Pydantic output of the member view (it has no inputs beyond the path)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from services.rewards.ledger.schemas import BalanceRead
from services.rewards.models import ExpiryPolicy
from services.rewards.tiers.schemas import TierStatus


class ExpiringPoints(BaseModel):
    points: int
    expires_at: datetime


class ExpiringSoonRead(BaseModel):
    policy: ExpiryPolicy = Field(description="The program's expiry policy")
    window_days: int = Field(description="How far ahead 'soon' looks: the reminder days")
    points: int = Field(description="Points that expire within the window")
    next: list[ExpiringPoints] = Field(
        description="The next expiry dates within the window, soonest first (at most 5)"
    )
    inactivity_expires_at: datetime | None = Field(
        description="Under the inactivity policy: when the whole balance expires unless the "
        "member earns or redeems before then"
    )


class SummaryRead(BaseModel):
    member_id: uuid.UUID
    balance: BalanceRead
    expiring_soon: ExpiringSoonRead
    last_activity_at: datetime | None = Field(
        description="The last earn or redemption (activity, for the inactivity expiry rule)"
    )
    tier: TierStatus | None = Field(
        default=None,
        description="The member's tier status (as `GET .../tier` answers it), when asked for "
        "with `include=tier`: a screen that shows both asks once",
    )
