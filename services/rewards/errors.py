"""Errors the rewards service answers with: each a 4xx with a code and what to fix."""

from __future__ import annotations

from services.kernel.errors import Conflict, Forbidden, NotFound, ValidationFailed


class MemberNotFound(NotFound):
    """No such member in this brand (rewards learns of new members within a moment; retry)."""

    code = "MemberNotFound"


class ProgramNotConfigured(Conflict):
    """This brand has no loyalty program yet: `PUT /rewards/v1/program` first."""

    code = "ProgramNotConfigured"


class InsufficientPoints(Conflict):
    """The member does not have enough available points."""

    code = "InsufficientPoints"


class PointsOutOfRange(ValidationFailed):
    """The purchase would earn more points than one purchase may."""

    code = "PointsOutOfRange"


class UnknownCurrency(ValidationFailed):
    """The currency is not an ISO 4217 code this program accepts."""

    code = "UnknownCurrency"


# --- Perks, redemptions, drops ----------------------------------------------------------------


class MemberSuspended(Forbidden):
    """This member is suspended: they cannot redeem perks or enter drops until reactivated."""

    code = "MemberSuspended"


class UnknownTier(ValidationFailed):
    """A tier id does not name one of this brand's tiers."""

    code = "UnknownTier"


class UnknownPerk(ValidationFailed):
    """The perk id does not name one of this brand's perks."""

    code = "UnknownPerk"


class InventoryTooLow(ValidationFailed):
    """The inventory cannot be below what is already redeemed or promised to drops."""

    code = "InventoryTooLow"


class PerkNotFound(NotFound):
    """No such perk in this brand, or it is not active."""

    code = "PerkNotFound"


class PerkInUse(Conflict):
    """The perk has redemptions, codes or drops: deactivate it (`active: false`) instead."""

    code = "PerkInUse"


class PerkKindMismatch(Conflict):
    """This operation needs a perk of another kind (codes only go to `discount_code` perks)."""

    code = "PerkKindMismatch"


class PerkNotAvailable(Conflict):
    """The perk is not open for redemption now (see `valid_from` / `valid_until`)."""

    code = "PerkNotAvailable"


class OutOfStock(Conflict):
    """No units (or no discount codes) of this perk are left."""

    code = "OutOfStock"


class RedemptionLimitReached(Conflict):
    """The member already redeemed this perk as many times as it allows."""

    code = "RedemptionLimitReached"


class TierNotEligible(Forbidden):
    """The member's tier may not redeem this perk."""

    code = "TierNotEligible"


class DropOnly(Conflict):
    """This perk is offered only through its drop: enter the drop instead."""

    code = "DropOnly"


class BirthdayGiftOnly(Conflict):
    """This perk is a birthday gift: it is granted automatically, never redeemed."""

    code = "BirthdayGiftOnly"


class RedemptionNotFound(NotFound):
    """No such redemption in this brand (or not yours)."""

    code = "RedemptionNotFound"


class NotCancellable(Conflict):
    """This redemption cannot be cancelled by the member (ask the brand's staff)."""

    code = "NotCancellable"


class DropNotFound(NotFound):
    """No such drop in this brand."""

    code = "DropNotFound"


class DropNotOpenYet(Conflict):
    """The drop's entry window has not opened for this member yet: come back at `opens_at`."""

    code = "DropNotOpenYet"


class DropClosed(Conflict):
    """The drop's entry window has closed."""

    code = "DropClosed"


class DropStillOpen(Conflict):
    """A drop is drawn only once its entry window has closed (`closes_at`)."""

    code = "DropStillOpen"


class DropStarted(Conflict):
    """The drop's entry window has opened (or it was drawn): it can no longer change."""

    code = "DropStarted"


# --- Purchases, returns, earning rules, campaigns, tiers --------------------------------------


class CurrencyMismatch(ValidationFailed):
    """The purchase is in another currency than the program's: send amounts in the program's."""

    code = "CurrencyMismatch"


class LinesDoNotAddUp(ValidationFailed):
    """The lines' amounts must add up to `amount_minor` (or send no lines)."""

    code = "LinesDoNotAddUp"


class OrderIdReused(Conflict):
    """This order id was already recorded with a different body: an order id names one purchase."""

    code = "OrderIdReused"


class PurchaseNotFound(NotFound):
    """No purchase with this order id in this brand."""

    code = "PurchaseNotFound"


class ReturnExceedsPurchase(ValidationFailed):
    """The return is larger than what remains of its purchase (after earlier returns)."""

    code = "ReturnExceedsPurchase"


class ReturnLineNotInPurchase(ValidationFailed):
    """A returned line names a sku the purchase did not have."""

    code = "ReturnLineNotInPurchase"


class ReturnBeforePurchase(ValidationFailed):
    """A return cannot happen before its purchase."""

    code = "ReturnBeforePurchase"


class ReturnIdReused(Conflict):
    """This return id was already recorded with a different body: a return id names one return."""

    code = "ReturnIdReused"


class RuleNotFound(NotFound):
    """No earning rule with this id in this brand."""

    code = "RuleNotFound"


class FieldNotForRuleKind(ValidationFailed):
    """This field does not apply to the rule's kind (a rule's kind cannot change)."""

    code = "FieldNotForRuleKind"


class RuleInUse(Conflict):
    """The rule has awarded points: deactivate it (`active: false`) instead of deleting it."""

    code = "RuleInUse"


class CampaignNotFound(NotFound):
    """No campaign with this id in this brand."""

    code = "CampaignNotFound"


class InvalidWindow(ValidationFailed):
    """A campaign must end after it starts."""

    code = "InvalidWindow"


class InvalidAudience(ValidationFailed):
    """The audience and its targets disagree (tiers need `tier_ids`, a segment a `segment_id`)."""

    code = "InvalidAudience"


class NoMultiplierOrBonus(ValidationFailed):
    """A campaign needs a `multiplier`, a `bonus_points`, or both."""

    code = "NoMultiplierOrBonus"


class TierNotFound(NotFound):
    """No tier with this id in this brand."""

    code = "TierNotFound"


class DuplicateTierRank(Conflict):
    """Another tier of this brand has this rank: ranks are unique."""

    code = "DuplicateTierRank"


class DuplicateTierName(Conflict):
    """Another tier of this brand has this name: names are unique."""

    code = "DuplicateTierName"


class TierThresholdsOutOfOrder(ValidationFailed):
    """A higher-ranked tier must have a higher spend threshold than every lower-ranked one."""

    code = "TierThresholdsOutOfOrder"


class TierInUse(Conflict):
    """Members hold or have held this tier: it stays in their history and cannot be deleted."""

    code = "TierInUse"


class InconsistentCaps(ValidationFailed):
    """An activity rule's caps contradict each other (per day ≤ per month ≤ lifetime)."""

    code = "InconsistentCaps"


# --- Bulk history -----------------------------------------------------------------------------


class HistoryNotEmpty(Conflict):
    """A member already has purchases, points or a tier: history is loaded before anything else."""

    code = "HistoryNotEmpty"


class PurchaseInFuture(ValidationFailed):
    """A purchase is dated after now: history holds what has happened."""

    code = "PurchaseInFuture"


class HistoryInFuture(ValidationFailed):
    """A redemption or return is dated after now: history holds what has happened."""

    code = "HistoryInFuture"


class PerkNotReplayable(ValidationFailed):
    """History cannot replay redemptions of this perk (limited stock, a code pool, a drop, a
    birthday gift, or inactive): redeem it live instead."""

    code = "PerkNotReplayable"
