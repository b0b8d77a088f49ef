"""The rewards area's GraphQL types, built from the rewards service's JSON.

Perks, drops and redemptions are `Node`s: each loads by id through its batch read
(`GET /rewards/v1/me/<kind>?ids=...`), which answers as the member sees them, so `node(id:)`
shows nothing of another brand or another member. Other areas build a `Perk` from the same JSON
with `perk_from_json` (e.g. recommendations, which load perks through `by_id("perk")`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from enum import Enum
from functools import partial
from typing import Any, Literal

import strawberry

from services.gateway.calls import load, read
from services.gateway.context import GatewayContext, GatewayInfo
from services.gateway.ids import Node, encode_global_id, register_node
from services.gateway.json_values import maybe_uuid, maybe_when, when
from services.gateway.loaders import BatchRead, register_batch_read

# --- Tiers ----------------------------------------------------------------------------------


@strawberry.enum
class QualificationWindow(Enum):
    CALENDAR_YEAR = "calendar_year"
    ROLLING_12_MONTHS = "rolling_12_months"


@strawberry.enum(description="When a member who no longer spends enough leaves their tier.")
class DowngradeRule(Enum):
    NEVER = "never"
    END_OF_WINDOW = "end_of_window"
    SPEND_DROPS = "spend_drops"


@strawberry.type(description="A tier of the brand's program, as shown to members.")
class Tier(Node):
    name: str
    rank: int = strawberry.field(description="0 is the entry tier; higher ranks are higher.")
    threshold_minor: int = strawberry.field(
        description="Qualifying spend in the window to reach it, in minor currency units."
    )
    multiplier: float = strawberry.field(description="Applies to points earned on purchases.")
    priority_booking: bool
    benefits: list[str]


def tier_from_json(data: dict[str, Any]) -> Tier:
    return Tier(
        id=encode_global_id("Tier", data["id"]),
        name=data["name"],
        rank=data["rank"],
        threshold_minor=data["threshold_minor"],
        multiplier=float(data["multiplier"]),
        priority_booking=data["priority_booking"],
        benefits=list(data["benefits"]),
    )


@strawberry.type(description="What it takes to reach the next tier.")
class NextTier:
    tier: Tier
    remaining_minor: int = strawberry.field(
        description="What more to spend in the window to reach it, in minor currency units."
    )
    by: dt.datetime | None = strawberry.field(
        description="When the window closes (calendar year); null for a rolling window."
    )


@strawberry.type(description="What it takes to keep the current tier.")
class KeepTier:
    rule: DowngradeRule
    threshold_minor: int
    spend_minor: int = strawberry.field(description="The spend that counts for keeping it so far.")
    remaining_minor: int = strawberry.field(description="What more to spend to keep it.")
    by: dt.datetime | None = strawberry.field(description="The spend must be reached by then.")
    reviewed_at: dt.datetime | None = strawberry.field(
        description="When a shortfall would take effect; null: never."
    )


@strawberry.type(description="Where the member stands in the program's tiers.")
class TierStatus:
    tier: Tier | None = strawberry.field(description="The current tier; null before the first.")
    since: dt.datetime | None
    currency: str = strawberry.field(description="ISO 4217 currency of every *Minor amount.")
    qualification_window: QualificationWindow
    window_starts_at: dt.datetime
    window_closes_at: dt.datetime | None = strawberry.field(
        description="When the window closes (calendar year); null for a rolling window."
    )
    spend_minor: int = strawberry.field(
        description="Qualifying spend in the window so far (after returns), in minor units."
    )
    next_tier: NextTier | None = strawberry.field(description="Null at the top tier.")
    keep: KeepTier | None = strawberry.field(description="Null without a tier.")


def tier_status_from_json(data: dict[str, Any]) -> TierStatus:
    next_tier = data.get("next_tier")
    keep = data.get("keep")
    return TierStatus(
        tier=tier_from_json(data["tier"]) if data.get("tier") else None,
        since=maybe_when(data.get("since")),
        currency=data["currency"],
        qualification_window=QualificationWindow(data["qualification_window"]),
        window_starts_at=when(data["window_starts_at"]),
        window_closes_at=maybe_when(data.get("window_closes_at")),
        spend_minor=data["spend_minor"],
        next_tier=NextTier(
            tier=tier_from_json(next_tier["tier"]),
            remaining_minor=next_tier["remaining_minor"],
            by=maybe_when(next_tier.get("by")),
        )
        if next_tier
        else None,
        keep=KeepTier(
            rule=DowngradeRule(keep["rule"]),
            threshold_minor=keep["threshold_minor"],
            spend_minor=keep["spend_minor"],
            remaining_minor=keep["remaining_minor"],
            by=maybe_when(keep.get("by")),
            reviewed_at=maybe_when(keep.get("reviewed_at")),
        )
        if keep
        else None,
    )


MyRewards = Literal["summary", "tier"]


async def _my_rewards(context: GatewayContext, parts: list[MyRewards]) -> list[dict[str, Any]]:
    # The points summary and the tier status asked for in one tick (the home screen asks for
    # both) are one call: the summary with the tier included.
    if set(parts) == {"tier"}:
        return [await read(context, "rewards", "/rewards/v1/me/tier")]
    include = {"include": ("tier",)} if "tier" in parts else None
    summary: dict[str, Any] = await read(context, "rewards", "/rewards/v1/me/summary", include)
    return [summary["tier"] if part == "tier" else summary for part in parts]


async def my_rewards(context: GatewayContext, part: MyRewards) -> dict[str, Any]:
    """The member's points summary or tier status, as rewards answers `/me/summary` and
    `/me/tier`; both asked for in one tick cost one call."""
    loader = context.loaders.batched("my_rewards", partial(_my_rewards, context))
    answer: dict[str, Any] = await loader.load(part)
    return answer


async def _tier_node(context: GatewayContext, raw_id: uuid.UUID) -> Tier | None:
    # Members see the brand's ladder only through their own status: their tier and the next.
    status = await my_rewards(context, "tier")
    for summary in (status.get("tier"), (status.get("next_tier") or {}).get("tier")):
        if summary and uuid.UUID(summary["id"]) == raw_id:
            return tier_from_json(summary)
    return None


# --- Points ---------------------------------------------------------------------------------


@strawberry.enum
class ExpiryPolicy(Enum):
    NONE = "none"
    DAYS_AFTER_EARNING = "days_after_earning"
    INACTIVITY = "inactivity"


@strawberry.type
class ExpiringPoints:
    points: int
    expires_at: dt.datetime


@strawberry.type(description="Points that expire soon under the program's policy.")
class ExpiringSoon:
    points: int = strawberry.field(description="Points that expire within the window.")
    window_days: int = strawberry.field(description="How far ahead 'soon' looks.")
    policy: ExpiryPolicy
    next: list[ExpiringPoints] = strawberry.field(
        description="The next expiry dates within the window, soonest first (at most 5)."
    )
    inactivity_expires_at: dt.datetime | None = strawberry.field(
        description="Under the inactivity policy: when the whole balance expires unless the "
        "member earns or redeems before then."
    )


@strawberry.type(description="The member's points.")
class Points:
    available: int = strawberry.field(description="Spendable now.")
    pending: int = strawberry.field(description="Earned, not yet spendable (e.g. returns window).")
    lifetime_earned: int
    expiring_soon: ExpiringSoon
    last_activity_at: dt.datetime | None = strawberry.field(
        description="The last earn or redemption."
    )


def points_from_json(data: dict[str, Any]) -> Points:
    balance, soon = data["balance"], data["expiring_soon"]
    return Points(
        available=balance["available"],
        pending=balance["pending"],
        lifetime_earned=balance["lifetime_earned"],
        expiring_soon=ExpiringSoon(
            points=soon["points"],
            window_days=soon["window_days"],
            policy=ExpiryPolicy(soon["policy"]),
            next=[
                ExpiringPoints(points=item["points"], expires_at=when(item["expires_at"]))
                for item in soon["next"]
            ],
            inactivity_expires_at=maybe_when(soon.get("inactivity_expires_at")),
        ),
        last_activity_at=maybe_when(data.get("last_activity_at")),
    )


# --- Perks ----------------------------------------------------------------------------------


@strawberry.enum
class PerkKind(Enum):
    DISCOUNT_CODE = "discount_code"
    FREE_PRODUCT = "free_product"
    EXPERIENCE_ACCESS = "experience_access"
    DONATION = "donation"
    CUSTOM = "custom"


@strawberry.type(description="A perk of the catalog as the member sees it: can they redeem it now?")
class Perk(Node):
    perk_id: strawberry.Private[uuid.UUID]
    name: str
    description: str
    image_url: str | None
    category: str
    tags: list[str]
    kind: PerkKind
    cost_points: int
    valid_from: dt.datetime | None
    valid_until: dt.datetime | None
    inventory_remaining: int | None = strawberry.field(description="Units left; null: unlimited.")
    per_member_limit: int | None
    redeemed_by_me: int = strawberry.field(
        description="The member's redemptions of it that still hold (not cancelled)."
    )
    redeemable: bool = strawberry.field(description="Whether the member can redeem it now.")
    reason: str | None = strawberry.field(
        description="Why not: the code `redeemPerk` would answer (e.g. InsufficientPoints, "
        "TierNotEligible, OutOfStock); null when redeemable."
    )
    reason_detail: str | None = strawberry.field(description="The reason, in words.")


def perk_from_json(data: dict[str, Any]) -> Perk:
    """A `Perk` from the rewards service's view of a perk for the member (`PerkOffer`)."""
    perk_id = uuid.UUID(str(data["id"]))
    return Perk(
        id=encode_global_id("Perk", perk_id),
        perk_id=perk_id,
        name=data["name"],
        description=data["description"],
        image_url=data.get("image_url"),
        category=data["category"],
        tags=list(data["tags"]),
        kind=PerkKind(data["kind"]),
        cost_points=data["cost_points"],
        valid_from=maybe_when(data.get("valid_from")),
        valid_until=maybe_when(data.get("valid_until")),
        inventory_remaining=data.get("inventory_remaining"),
        per_member_limit=data.get("per_member_limit"),
        redeemed_by_me=data["redeemed_by_me"],
        redeemable=data["redeemable"],
        reason=data.get("reason"),
        reason_detail=data.get("reason_detail"),
    )


async def load_perk(context: GatewayContext, perk_id: uuid.UUID) -> Perk | None:
    data = await load(context, "perk", perk_id)
    return perk_from_json(data) if data is not None else None


# --- Redemptions ----------------------------------------------------------------------------


@strawberry.enum
class RedemptionStatus(Enum):
    COMPLETED = "completed"
    CANCELLED = "cancelled"


@strawberry.type(description="A perk the member redeemed (or was granted: a drop win, a gift).")
class Redemption(Node):
    redemption_id: strawberry.Private[uuid.UUID]
    perk_id: strawberry.Private[uuid.UUID]
    drop_id: strawberry.Private[uuid.UUID | None]
    points: int = strawberry.field(description="What it cost: 0 for gifts.")
    status: RedemptionStatus
    has_code: bool = strawberry.field(description="A discount code belongs to it.")
    code: str | None = strawberry.field(
        description="The discount code once revealed (at once for a perk the member redeems; "
        "with `revealRedemptionCode` for one granted to them)."
    )
    created_at: dt.datetime
    cancelled_at: dt.datetime | None

    @strawberry.field(description="The perk redeemed.")
    async def perk(self, info: GatewayInfo) -> Perk | None:
        return await load_perk(info.context, self.perk_id)

    @strawberry.field(description="The drop it was won in, if any.")
    async def drop(self, info: GatewayInfo) -> Drop | None:
        if self.drop_id is None:
            return None
        return await load_drop(info.context, self.drop_id)


def redemption_from_json(data: dict[str, Any]) -> Redemption:
    redemption_id = uuid.UUID(str(data["id"]))
    return Redemption(
        id=encode_global_id("Redemption", redemption_id),
        redemption_id=redemption_id,
        perk_id=uuid.UUID(str(data["perk_id"])),
        drop_id=maybe_uuid(data.get("drop_id")),
        points=data["points"],
        status=RedemptionStatus(data["status"]),
        has_code=data["has_code"],
        code=data.get("code"),
        created_at=when(data["created_at"]),
        cancelled_at=maybe_when(data.get("cancelled_at")),
    )


async def load_redemption(context: GatewayContext, redemption_id: uuid.UUID) -> Redemption | None:
    data = await load(context, "redemption", redemption_id)
    return redemption_from_json(data) if data is not None else None


# --- Drops ----------------------------------------------------------------------------------


@strawberry.enum
class DropMethod(Enum):
    DRAW = "draw"
    QUEUE = "queue"


@strawberry.enum
class DropStatus(Enum):
    SCHEDULED = "scheduled"
    DRAWN = "drawn"


@strawberry.type(description="The member's entry in a drop.")
class DropEntry:
    drop_id: strawberry.Private[uuid.UUID]
    redemption_id: strawberry.Private[uuid.UUID | None]
    entered_at: dt.datetime
    position: int | None = strawberry.field(description="Place in the draw's order, once drawn.")
    won: bool
    outcome: str | None = strawberry.field(
        description="Once drawn: `won`, `skipped:<code>` (e.g. skipped:InsufficientPoints), or "
        "null when the draw ended before reaching this entry."
    )

    @strawberry.field(description="What the member won, once drawn.")
    async def redemption(self, info: GatewayInfo) -> Redemption | None:
        if self.redemption_id is None:
            return None
        return await load_redemption(info.context, self.redemption_id)

    @strawberry.field
    async def drop(self, info: GatewayInfo) -> Drop | None:
        return await load_drop(info.context, self.drop_id)


def entry_from_json(data: dict[str, Any]) -> DropEntry:
    return DropEntry(
        drop_id=uuid.UUID(str(data["drop_id"])),
        redemption_id=maybe_uuid(data.get("redemption_id")),
        entered_at=when(data["entered_at"]),
        position=data.get("position"),
        won=data["won"],
        outcome=data.get("outcome"),
    )


@strawberry.type(description="A scarce perk handed out by a draw or a queue among entrants.")
class Drop(Node):
    drop_id: strawberry.Private[uuid.UUID]
    perk_id: strawberry.Private[uuid.UUID]
    method: DropMethod
    units: int = strawberry.field(description="How many winners at most.")
    opens_at: dt.datetime = strawberry.field(
        description="When the member may enter (earlier if their tier has early access)."
    )
    closes_at: dt.datetime
    early_access: bool
    status: DropStatus
    my_entry: DropEntry | None

    @strawberry.field
    async def perk(self, info: GatewayInfo) -> Perk | None:
        return await load_perk(info.context, self.perk_id)


def drop_from_json(data: dict[str, Any]) -> Drop:
    drop_id = uuid.UUID(str(data["id"]))
    entry = data.get("entry")
    return Drop(
        id=encode_global_id("Drop", drop_id),
        drop_id=drop_id,
        perk_id=uuid.UUID(str(data["perk_id"])),
        method=DropMethod(data["method"]),
        units=data["units"],
        opens_at=when(data["opens_at"]),
        closes_at=when(data["closes_at"]),
        early_access=data["early_access"],
        status=DropStatus(data["status"]),
        my_entry=entry_from_json(entry) if entry else None,
    )


async def load_drop(context: GatewayContext, drop_id: uuid.UUID) -> Drop | None:
    data = await load(context, "drop", drop_id)
    return drop_from_json(data) if data is not None else None


# --- The ledger -----------------------------------------------------------------------------


@strawberry.enum
class LedgerEntryKind(Enum):
    EARN = "earn"
    REDEEM = "redeem"
    REFUND = "refund"
    ADJUST = "adjust"
    EXPIRE = "expire"
    REVERSE = "reverse"
    RELEASE = "release"
    VOID = "void"


@strawberry.enum
class PointsBucket(Enum):
    AVAILABLE = "available"
    PENDING = "pending"


@strawberry.type(description="One line of the member's points history.")
class LedgerEntry:
    source_id: strawberry.Private[str | None]
    kind: LedgerEntryKind
    bucket: PointsBucket
    points: int = strawberry.field(description="Positive adds, negative takes.")
    reason: str = strawberry.field(description="Why, in words shown to the member.")
    source_type: str = strawberry.field(description="What caused it: purchase, redemption...")
    occurred_at: dt.datetime

    @strawberry.field(description="The redemption it paid for or refunded, if any.")
    async def redemption(self, info: GatewayInfo) -> Redemption | None:
        if self.source_type != "redemption" or self.source_id is None:
            return None
        return await load_redemption(info.context, uuid.UUID(self.source_id))


def ledger_entry_from_json(data: dict[str, Any]) -> LedgerEntry:
    return LedgerEntry(
        source_id=data.get("source_id"),
        kind=LedgerEntryKind(data["kind"]),
        bucket=PointsBucket(data["bucket"]),
        points=data["points"],
        reason=data["reason"],
        source_type=data["source_type"],
        occurred_at=when(data["occurred_at"]),
    )


# --- Fetching by id -------------------------------------------------------------------------

register_batch_read("perk", BatchRead("rewards", "/rewards/v1/me/perks"))
register_batch_read("drop", BatchRead("rewards", "/rewards/v1/me/drops"))
register_batch_read("redemption", BatchRead("rewards", "/rewards/v1/me/redemptions"))
register_node("Perk", load_perk)
register_node("Drop", load_drop)
register_node("Redemption", load_redemption)
register_node("Tier", _tier_node)
