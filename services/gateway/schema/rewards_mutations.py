"""The rewards area's mutations: redeem a perk, cancel a redemption, reveal its code, enter a drop.

Each refuses a malformed global id before calling anything, and returns the rewards service's
refusals (which it makes before writing) as `userErrors`, so a userError means nothing changed.
"""

from __future__ import annotations

import strawberry

from services.gateway.calls import Rejected, input_uuid, send
from services.gateway.context import GatewayInfo
from services.gateway.errors import UserError
from services.gateway.schema.rewards_types import (
    Drop,
    DropEntry,
    Redemption,
    entry_from_json,
    load_drop,
    redemption_from_json,
)


@strawberry.input
class RedeemPerkInput:
    perk_id: strawberry.ID = strawberry.field(description="The `id` of a `Perk`.")
    idempotency_key: str = strawberry.field(
        description="A key of the app's choosing, sent again when retrying: a replay returns "
        "the first redemption and spends nothing twice."
    )


@strawberry.type
class RedeemPerkPayload:
    redemption: Redemption | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class CancelRedemptionInput:
    redemption_id: strawberry.ID = strawberry.field(description="The `id` of a `Redemption`.")


@strawberry.type
class CancelRedemptionPayload:
    redemption: Redemption | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class RevealRedemptionCodeInput:
    redemption_id: strawberry.ID = strawberry.field(description="The `id` of a `Redemption`.")


@strawberry.type
class RevealRedemptionCodePayload:
    redemption: Redemption | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class EnterDropInput:
    drop_id: strawberry.ID = strawberry.field(
        description="The `id` of a `Drop`. Entering again returns the same entry."
    )


@strawberry.type
class EnterDropPayload:
    entry: DropEntry | None = None
    drop: Drop | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class RewardsMutation:
    @strawberry.mutation(description="Spend points on a perk.")
    async def redeem_perk(self, info: GatewayInfo, input: RedeemPerkInput) -> RedeemPerkPayload:
        try:
            perk_id = input_uuid(input.perk_id, "perkId", "Perk")
            data = await send(
                info.context,
                "rewards",
                "POST",
                "/rewards/v1/me/redemptions",
                json={"perk_id": str(perk_id)},
                idempotency_key=input.idempotency_key,
                subject="perkId",
            )
        except Rejected as rejected:
            return RedeemPerkPayload(user_errors=rejected.errors)
        return RedeemPerkPayload(redemption=redemption_from_json(data))

    @strawberry.mutation(
        description="Cancel one of the member's redemptions within 15 minutes of making it "
        "(not drop wins, gifts or revealed codes): the points come back."
    )
    async def cancel_redemption(
        self, info: GatewayInfo, input: CancelRedemptionInput
    ) -> CancelRedemptionPayload:
        try:
            redemption = await _act_on_redemption(info, input.redemption_id, "cancel")
        except Rejected as rejected:
            return CancelRedemptionPayload(user_errors=rejected.errors)
        return CancelRedemptionPayload(redemption=redemption)

    @strawberry.mutation(
        description="Show the discount code of a redemption granted to the member (a drop win, "
        "a birthday gift); from then on it cannot be cancelled."
    )
    async def reveal_redemption_code(
        self, info: GatewayInfo, input: RevealRedemptionCodeInput
    ) -> RevealRedemptionCodePayload:
        try:
            redemption = await _act_on_redemption(info, input.redemption_id, "reveal")
        except Rejected as rejected:
            return RevealRedemptionCodePayload(user_errors=rejected.errors)
        return RevealRedemptionCodePayload(redemption=redemption)

    @strawberry.mutation(description="Enter a drop (free); entering again changes nothing.")
    async def enter_drop(self, info: GatewayInfo, input: EnterDropInput) -> EnterDropPayload:
        try:
            drop_id = input_uuid(input.drop_id, "dropId", "Drop")
            data = await send(
                info.context,
                "rewards",
                "POST",
                f"/rewards/v1/me/drops/{drop_id}/entries",
                subject="dropId",
            )
        except Rejected as rejected:
            return EnterDropPayload(user_errors=rejected.errors)
        return EnterDropPayload(
            entry=entry_from_json(data), drop=await load_drop(info.context, drop_id)
        )


async def _act_on_redemption(info: GatewayInfo, global_id: str, action: str) -> Redemption:
    redemption_id = input_uuid(global_id, "redemptionId", "Redemption")
    data = await send(
        info.context,
        "rewards",
        "POST",
        f"/rewards/v1/me/redemptions/{redemption_id}/{action}",
        subject="redemptionId",
    )
    return redemption_from_json(data)
