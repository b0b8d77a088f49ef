"""How much each kind of interaction says about a member's taste: the one place these numbers live.

A weight is the evidence one interaction adds to the member-item cell the models learn from. Acts
that cost the member something (points, a seat, a trip) weigh more than a tap; an act undone (a
return, a cancelled redemption or booking, a reaction taken back) is a row of the opposite sign,
so the sum over a member and an item is what stands.
"""

from __future__ import annotations

from recommender.store.models import InteractionKind

WEIGHTS: dict[InteractionKind, float] = {
    InteractionKind.PURCHASE: 1.0,  # per unit bought, up to PURCHASE_QUANTITY_CAP
    InteractionKind.RETURN: -1.0,  # per unit returned, the same cap
    InteractionKind.REDEMPTION: 3.0,  # points spent: a strong, deliberate choice
    InteractionKind.DROP_ENTRY: 1.5,  # wanted it, may not have won it
    InteractionKind.POST: 2.0,  # wrote it
    InteractionKind.COMMENT: 1.5,
    InteractionKind.REACTION: 1.0,
    InteractionKind.ANSWER: 2.0,  # answered a prompt
    InteractionKind.BOOKING: 2.5,
    InteractionKind.CHECK_IN: 3.0,  # went: more than booking
    InteractionKind.CLICK: 0.5,  # from a served list
    InteractionKind.DISMISS: -2.0,  # "not for me" on a served list
}

# Ten lipsticks in one order are a stock-up, not ten times the taste: units beyond the cap add
# nothing.
PURCHASE_QUANTITY_CAP = 3


def weight(kind: InteractionKind) -> float:
    """The weight of one interaction of `kind`."""
    return WEIGHTS[kind]


def undone(kind: InteractionKind) -> float:
    """The weight of the row that takes one interaction of `kind` back (a cancelled redemption
    or booking, a reaction removed)."""
    return -WEIGHTS[kind]


def units(quantity: int) -> int:
    """How many units of a purchase line count (at least none, at most the cap)."""
    return max(0, min(quantity, PURCHASE_QUANTITY_CAP))


def purchase(quantity: int) -> float:
    return WEIGHTS[InteractionKind.PURCHASE] * units(quantity)


def returned(quantity: int) -> float:
    return WEIGHTS[InteractionKind.RETURN] * units(quantity)
