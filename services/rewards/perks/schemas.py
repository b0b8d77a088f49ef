"""Pydantic I/O of the perks catalog and redemptions. Inputs refuse unknown fields.

Points, inventories and limits are strict integers: `"5"` and `5.0` are refused, not coerced.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    StrictBool,
    StrictFloat,
    StrictInt,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from services.kernel.schemas import Input, UtcDatetime
from services.rewards.models import PerkKind, Redemption, RedemptionStatus

MAX_TAGS = 30
MAX_CATEGORY = 100
MAX_TAG = 50
MAX_TIERS = 50
MAX_FULFILMENT_KEYS = 30
MAX_CODES_PER_UPLOAD = 10_000
MAX_POINTS = 1_000_000_000


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _tags(values: list[str]) -> list[str]:
    """Tags compare ignoring case and spacing: lower-cased, spaces collapsed, duplicates dropped."""
    seen: dict[str, None] = {}
    for value in values:
        tag = " ".join(value.split()).lower()
        if not tag:
            continue
        if len(tag) > MAX_TAG:
            raise ValueError(f"each tag must be at most {MAX_TAG} characters")
        seen.setdefault(tag, None)
    if len(seen) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags")
    return list(seen)


def _unique_ids(values: list[uuid.UUID]) -> list[uuid.UUID]:
    return list(dict.fromkeys(values))


def _fulfilment(values: dict[str, Any]) -> dict[str, Any]:
    for key in values:
        if not 1 <= len(key) <= 64:
            raise ValueError("fulfilment keys must be 1 to 64 characters")
    return values


Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Category = Annotated[str, StringConstraints(min_length=1, max_length=MAX_CATEGORY)]
Description = Annotated[str, StringConstraints(max_length=5_000)]
Tags = Annotated[list[str], Field(max_length=MAX_TAGS * 4), AfterValidator(_tags)]
TierIds = Annotated[
    list[uuid.UUID],
    Field(max_length=MAX_TIERS, description="Tiers that may redeem; empty means every member."),
    AfterValidator(_unique_ids),
]
Points = Annotated[StrictInt, Field(ge=1, le=MAX_POINTS)]
FulfilmentValue = (
    StrictBool
    | StrictInt
    | Annotated[StrictFloat, Field(allow_inf_nan=False)]
    | Annotated[str, StringConstraints(max_length=2_000)]
    | None
)
Fulfilment = Annotated[
    dict[str, FulfilmentValue],
    Field(
        max_length=MAX_FULFILMENT_KEYS,
        description=(
            "How the brand fulfils the perk, kept as given: e.g. `sku` for a free product, "
            "`charity` for a donation, `webhook_event` and settings for a custom perk."
        ),
    ),
    AfterValidator(_fulfilment),
]
Inventory = Annotated[
    StrictInt,
    Field(ge=0, le=MAX_POINTS, description="Total units; null means unlimited."),
]
Limit = Annotated[
    StrictInt, Field(ge=1, le=10_000, description="Redemptions per member; null means no limit.")
]


class _Window(Input):
    @field_validator("valid_until", mode="after", check_fields=False)
    @classmethod
    def _after_start(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        start = info.data.get("valid_from")
        if value is not None and start is not None and value <= start:
            raise ValueError("must be after valid_from")
        return value


class PerkCreate(_Window):
    """A perk in the catalog."""

    name: Name
    description: Description = ""
    image_url: HttpUrl | None = Field(default=None, description="An http or https URL.")
    category: Category
    tags: Tags = Field(default_factory=list)
    kind: PerkKind
    cost_points: Points = Field(description="What a redemption costs, in points.")
    tier_ids: TierIds = Field(default_factory=list)
    valid_from: UtcDatetime | None = Field(default=None, description="Opens at; null: now.")
    valid_until: UtcDatetime | None = Field(default=None, description="Closes at; null: never.")
    inventory_total: Inventory | None = None
    per_member_limit: Limit | None = None
    is_birthday_gift: StrictBool = Field(
        default=False,
        description="Granted automatically (0 points) in the member's birthday month, once a year.",
    )
    fulfilment: Fulfilment = Field(default_factory=dict)
    active: StrictBool = True


class PerkUpdate(_Window):
    """Changes to a perk: omitted fields stay, null clears a nullable field.

    Changing `inventory_total` recomputes `inventory_remaining` as the new total minus the
    redemptions that hold a unit (completed, not cancelled).
    """

    name: Name | None = None
    description: Description | None = None
    image_url: HttpUrl | None = None
    category: Category | None = None
    tags: Tags | None = None
    cost_points: Points | None = None
    tier_ids: TierIds | None = None
    valid_from: UtcDatetime | None = None
    valid_until: UtcDatetime | None = None
    inventory_total: Inventory | None = None
    per_member_limit: Limit | None = None
    is_birthday_gift: StrictBool | None = None
    fulfilment: Fulfilment | None = None
    active: StrictBool | None = None

    @field_validator(
        "name",
        "description",
        "category",
        "tags",
        "cost_points",
        "tier_ids",
        "is_birthday_gift",
        "fulfilment",
        "active",
        mode="after",
    )
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null; omit the field to keep it")
        return value


class PerkRead(Output):
    id: uuid.UUID
    name: str
    description: str
    image_url: str | None
    category: str
    tags: list[str]
    kind: PerkKind
    cost_points: int
    tier_ids: list[uuid.UUID]
    valid_from: datetime | None
    valid_until: datetime | None
    inventory_total: int | None
    inventory_remaining: int | None
    per_member_limit: int | None
    is_birthday_gift: bool
    fulfilment: dict[str, Any]
    active: bool
    created_at: datetime


class PerkOffer(BaseModel):
    """A perk as one member sees it: whether they can redeem it now, and if not, why."""

    id: uuid.UUID
    name: str
    description: str
    image_url: str | None
    category: str
    tags: list[str]
    kind: PerkKind
    cost_points: int
    valid_from: datetime | None
    valid_until: datetime | None
    inventory_remaining: int | None = Field(description="Units left; null means unlimited.")
    per_member_limit: int | None
    redeemed_by_me: int = Field(description="My redemptions of it that still hold (not cancelled).")
    redeemable: bool
    reason: str | None = Field(
        default=None,
        description=(
            "Why not, as the error code a redemption would get, the first rule that fails in "
            "this order: PerkNotFound (withdrawn from the catalog: shown only when asked for by "
            "id), MemberSuspended, BirthdayGiftOnly, DropOnly, PerkNotAvailable, "
            "TierNotEligible, RedemptionLimitReached, OutOfStock, InsufficientPoints."
        ),
    )
    reason_detail: str | None = None


class CodesUpload(Input):
    codes: Annotated[
        list[Annotated[str, StringConstraints(min_length=1, max_length=100)]],
        Field(min_length=1, max_length=MAX_CODES_PER_UPLOAD),
    ]


class CodesReport(BaseModel):
    added: int = Field(description="New codes put in the pool.")
    duplicates: int = Field(description="Codes sent twice or already in the pool; ignored.")
    total: int = Field(description="Codes of this perk, handed out or not.")
    available: int = Field(description="Codes not yet handed to a redemption.")


class RedemptionCreate(Input):
    perk_id: uuid.UUID


class RedemptionRead(BaseModel):
    id: uuid.UUID
    member_id: uuid.UUID
    perk_id: uuid.UUID
    points: int = Field(description="Points it cost: 0 for gifts.")
    status: RedemptionStatus
    has_code: bool = Field(description="A discount code belongs to it (shown once revealed).")
    code: str | None = Field(
        description="The discount code, once revealed: at once for a redemption you make, "
        "on `POST .../reveal` for one granted to you (a drop win, a birthday gift)."
    )
    drop_id: uuid.UUID | None
    created_at: datetime
    cancelled_at: datetime | None

    @classmethod
    def of(cls, redemption: Redemption) -> RedemptionRead:
        revealed = redemption.code_revealed_at is not None
        return cls(
            id=redemption.id,
            member_id=redemption.member_id,
            perk_id=redemption.perk_id,
            points=redemption.points,
            status=redemption.status,
            has_code=redemption.code is not None,
            code=redemption.code if revealed else None,
            drop_id=redemption.drop_id,
            created_at=redemption.created_at,
            cancelled_at=redemption.cancelled_at,
        )
