"""Pydantic I/O of the ledger core: program settings, balances, history, staff adjustments."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.kernel.schemas import Input
from services.rewards.currencies import exponent
from services.rewards.models import Bucket, EntryKind, ExpiryPolicy, QualificationWindow


class ProgramSettings(Input):
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217, e.g. EUR")
    points_per_unit: int = Field(ge=1, le=1000, description="Base rate: points per currency unit")
    pending_days: int = Field(
        default=0, ge=0, le=365, description="Purchase points stay pending this long (returns)"
    )
    expiry_policy: ExpiryPolicy = ExpiryPolicy.NONE
    expiry_days: int | None = Field(default=None, ge=1, le=3650)
    inactivity_months: int | None = Field(default=None, ge=1, le=120)
    expiry_reminder_days: int = Field(default=30, ge=0, le=365)
    qualification_window: QualificationWindow = QualificationWindow.CALENDAR_YEAR

    @field_validator("currency")
    @classmethod
    def _iso_4217(cls, code: str) -> str:
        if exponent(code) is None:
            raise ValueError(
                f"{code} is not an ISO 4217 currency with a minor unit (e.g. EUR, USD)"
            )
        return code

    @model_validator(mode="after")
    def _policy_has_its_number(self) -> ProgramSettings:
        if self.expiry_policy == ExpiryPolicy.DAYS_AFTER_EARNING and self.expiry_days is None:
            raise ValueError("expiry_policy days_after_earning needs expiry_days")
        if self.expiry_policy == ExpiryPolicy.INACTIVITY and self.inactivity_months is None:
            raise ValueError("expiry_policy inactivity needs inactivity_months")
        return self


class ProgramRead(ProgramSettings):
    model_config = ConfigDict(from_attributes=True, extra="ignore")
    brand_id: uuid.UUID


class BalanceRead(BaseModel):
    member_id: uuid.UUID
    available: int = Field(description="Spendable now; negative only after a return")
    pending: int = Field(description="Earned, not yet spendable (e.g. inside the return window)")
    lifetime_earned: int


class EntryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: EntryKind
    bucket: Bucket
    points: int
    reason: str
    source_type: str
    source_id: str | None
    occurred_at: datetime


class AdjustmentCreate(Input):
    points: int = Field(
        ge=-1_000_000_000, le=1_000_000_000, description="Positive adds, negative takes; not zero"
    )
    reason: str = Field(min_length=3, max_length=500, description="Shown to the member")

    @model_validator(mode="after")
    def _not_zero(self) -> AdjustmentCreate:
        if self.points == 0:
            raise ValueError("points must not be zero")
        return self


class AdjustmentRead(BaseModel):
    entry_id: uuid.UUID
    balance: BalanceRead
