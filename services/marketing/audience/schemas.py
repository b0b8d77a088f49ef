"""The member 360 as the REST API shows it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class TierStay(BaseModel):
    tier_id: uuid.UUID | None
    tier: str | None
    since: datetime
    direction: str | None


class Member360Read(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    member_id: uuid.UUID
    external_id: str | None
    email: str | None
    display_name: str | None
    locale: str | None
    time_zone: str | None
    birthday: str | None
    status: str | None
    traits: dict[str, Any]
    interests: list[str]
    consents: list[str]
    joined_at: datetime | None
    tier_id: uuid.UUID | None
    tier: str | None
    tier_since: datetime | None
    tier_history: list[TierStay]
    points_available: int
    points_pending: int
    points_lifetime: int
    spend_lifetime_minor: int
    spend_year_minor: int
    spend_30d_minor: int
    spend_90d_minor: int
    spend_365d_minor: int
    order_count: int
    first_purchase_at: datetime | None
    last_purchase_at: datetime | None
    categories_bought: list[str]
    redemptions: int
    posts: int
    comments: int
    reactions: int
    prompts_answered: int
    experiences_attended: int
    last_active_at: datetime | None
    rfm_recency: int | None
    rfm_frequency: int | None
    rfm_monetary: int | None
    churn_probability: float | None
    scored_at: datetime | None
    refreshed_at: datetime
    segments: list[uuid.UUID]


class RebuildQueued(BaseModel):
    job_id: str
