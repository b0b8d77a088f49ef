"""The rewards area's reads: the member's tier status, points, history and redemptions (fields
of `Me`), and the catalog of perks and drops (on `Query`).

Lists are the rewards service's own keyset pages; the catalog's filters are query parameters of
`GET /rewards/v1/me/perks`, applied in SQL there, so every page is full and cursors stay valid.
The items of a page also prime their kind's by-id loader: a redemption or drop naming a perk
already on the page costs no second call.
"""

from __future__ import annotations

from typing import Any

import strawberry

from services.gateway.calls import read_connection
from services.gateway.connections import Connection, page_args
from services.gateway.context import GatewayInfo
from services.gateway.ids import decode_global_id
from services.gateway.schema.rewards_types import (
    Drop,
    LedgerEntry,
    Perk,
    Points,
    Redemption,
    RedemptionStatus,
    TierStatus,
    drop_from_json,
    ledger_entry_from_json,
    my_rewards,
    perk_from_json,
    points_from_json,
    redemption_from_json,
    tier_status_from_json,
)

# Other areas build perks from the same JSON (recommendations load them through `by_id("perk")`).
__all__ = [
    "Perk",
    "PerkFilter",
    "RewardsQuery",
    "ledger_field",
    "perk_from_json",
    "points_field",
    "redemptions_field",
    "tier_status_field",
]

# --- Fields of `Me` -------------------------------------------------------------------------


async def _tier_status(info: GatewayInfo) -> TierStatus:
    return tier_status_from_json(await my_rewards(info.context, "tier"))


async def _points(info: GatewayInfo) -> Points:
    return points_from_json(await my_rewards(info.context, "summary"))


async def _ledger(
    info: GatewayInfo,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Connection[LedgerEntry]:
    args = page_args(first, after, last, before)
    return await read_connection(
        info.context, "rewards", "/rewards/v1/me/ledger", args, ledger_entry_from_json
    )


async def _redemptions(
    info: GatewayInfo,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    status: RedemptionStatus | None = None,
) -> Connection[Redemption]:
    args = page_args(first, after, last, before)
    return await read_connection(
        info.context,
        "rewards",
        "/rewards/v1/me/redemptions",
        args,
        redemption_from_json,
        params={"status": status.value if status is not None else None},
        prime="redemption",
    )


tier_status_field: Any = strawberry.field(
    resolver=_tier_status,
    description="The member's tier, their qualifying spend in the window, what it takes to "
    "reach the next tier and to keep this one.",
)
points_field: Any = strawberry.field(
    resolver=_points, description="Available and pending points, and what expires soon."
)
ledger_field: Any = strawberry.field(
    resolver=_ledger, description="The member's points history, newest first."
)
redemptions_field: Any = strawberry.field(
    resolver=_redemptions, description="The member's redemptions, newest first."
)


# --- The catalog ----------------------------------------------------------------------------


@strawberry.input(description="Narrows the catalog; every filter given must hold.")
class PerkFilter:
    category: str | None = None
    affordable: bool | None = strawberry.field(
        default=None,
        description="true: only perks that cost at most the member's available points; "
        "false: only those that cost more.",
    )
    tier_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="Only perks members of this tier may redeem (the id of a `Tier`).",
    )
    redeemable_only: bool = strawberry.field(
        default=False, description="Only perks the member can redeem right now."
    )

    def params(self) -> dict[str, Any]:
        tier = decode_global_id(self.tier_id, expected="Tier")[1] if self.tier_id else None
        return {
            "all": not self.redeemable_only,
            "category": self.category,
            "affordable": self.affordable,
            "tier_id": str(tier) if tier is not None else None,
        }


@strawberry.type
class RewardsQuery:
    @strawberry.field(
        description="The brand's perks in catalog order, each saying whether the member can "
        "redeem it now and, if not, why."
    )
    async def perks(
        self,
        info: GatewayInfo,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: PerkFilter | None = None,
    ) -> Connection[Perk]:
        args = page_args(first, after, last, before)
        params = (filter or PerkFilter()).params()
        return await read_connection(
            info.context,
            "rewards",
            "/rewards/v1/me/perks",
            args,
            perk_from_json,
            params=params,
            prime="perk",
        )

    @strawberry.field(description="The brand's drops, newest first, each with the member's entry.")
    async def drops(
        self,
        info: GatewayInfo,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Drop]:
        args = page_args(first, after, last, before)
        return await read_connection(
            info.context, "rewards", "/rewards/v1/me/drops", args, drop_from_json, prime="drop"
        )
